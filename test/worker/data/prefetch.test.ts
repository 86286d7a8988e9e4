import test from 'ava';
import { type Deferred, deferred, raceAbort } from '../../../shared/abort.js';
import { isAbortError, isClusterError } from '../../../shared/errors.js';
import type { Dataset, DatasetSample } from '../../../worker/data/dataset.js';
import { createPrefetcher, type Prefetcher } from '../../../worker/data/prefetch.js';
import { rectangleSample } from './fixtures.js';

const SIZE = 16;
const prepare = { imageShape: SIZE, train: true, seed: 9, epoch: 0 };

/**
 * A Dataset whose read(i) waits until the test opens gate i (or the read's signal aborts), recording
 * the order of reads and which reads saw an abort.
 */
interface GatedDataset extends Dataset {
  gate(index: number): Deferred<void>;
  readsStarted: number[];
  readsAborted: number[];
  /** Called at the start of every read, for invariants. */
  onRead?: (index: number) => void;
}

async function gatedDataset(
  t: { teardown(fn: () => Promise<void>): void },
  size: number,
): Promise<GatedDataset> {
  const template = await rectangleSample(24, 24, { x: 4, y: 4, width: 10, height: 12 });
  const gates = new Map<number, Deferred<void>>();
  const gate = (i: number) => {
    if (!gates.has(i)) gates.set(i, deferred<void>());
    return gates.get(i)!;
  };
  const dataset: GatedDataset = {
    url: 'gated://test',
    size,
    skippedAtOpen: [],
    readsStarted: [],
    readsAborted: [],
    gate,
    sourceOf: (i) => `gated-${i}.png`,
    async read(index, signal): Promise<DatasetSample> {
      dataset.readsStarted.push(index);
      dataset.onRead?.(index);
      try {
        await raceAbort(gate(index).promise, signal);
      } catch (err) {
        dataset.readsAborted.push(index);
        throw err;
      }
      return { ...template, index, source: `gated-${index}.png` };
    },
    close: async () => {},
    [Symbol.asyncDispose]: async () => {},
  };
  t.teardown(async () => {
    for (const g of gates.values()) g.resolve();
  });
  return dataset;
}

function track(t: { teardown(fn: () => Promise<void>): void }, prefetcher: Prefetcher): Prefetcher {
  t.teardown(() => prefetcher.close());
  return prefetcher;
}

test('the prefetcher hands out batches in step order even when later batches finish first', async (t) => {
  const dataset = await gatedDataset(t, 6);
  const steps = [
    [0, 1],
    [2, 3],
    [4, 5],
  ];
  let nextCalls = 0;
  const depth = 2;
  dataset.onRead = (index) => {
    const step = Math.floor(index / 2);
    t.true(step < nextCalls + depth, `step ${step} started with only ${nextCalls} next() calls`);
  };
  const prefetcher = track(t, createPrefetcher(dataset, steps, { ...prepare, depth }));
  for (const i of [3, 2, 5, 4, 1, 0]) dataset.gate(i).resolve();
  const seen: number[][] = [];
  for (;;) {
    nextCalls++;
    const batch = await prefetcher.next();
    if (batch === null) break;
    seen.push(batch.indices);
    t.is(batch.images.length, batch.indices.length * SIZE * SIZE * 3);
  }
  t.deepEqual(seen, steps);
  t.deepEqual([...dataset.readsStarted].sort(), [0, 1, 2, 3, 4, 5]);
});

test('the prefetcher starts the next step only when the consumer takes a batch', async (t) => {
  const dataset = await gatedDataset(t, 10);
  const steps = [[0], [1], [2], [3], [4]];
  let nextCalls = 0;
  const started = deferred<void>();
  dataset.onRead = (index) => {
    t.true(index < nextCalls + 2, `step ${index} started with only ${nextCalls} next() calls`);
    if (index === 2) started.resolve();
  };
  const prefetcher = track(t, createPrefetcher(dataset, steps, { ...prepare, depth: 2 }));
  dataset.gate(0).resolve();
  nextCalls++;
  t.deepEqual((await prefetcher.next())?.indices, [0]);
  await started.promise; // taking batch 0 started batch 2, and nothing beyond it
  t.deepEqual([...dataset.readsStarted].sort(), [0, 1, 2]);
});

test('closing the prefetcher mid-stream aborts the reads in flight and rejects later next() calls', async (t) => {
  const dataset = await gatedDataset(t, 8);
  const steps = [
    [0, 1],
    [2, 3],
    [4, 5],
    [6, 7],
  ];
  const prefetcher = createPrefetcher(dataset, steps, { ...prepare, depth: 2 });
  dataset.gate(0).resolve();
  dataset.gate(1).resolve();
  t.deepEqual((await prefetcher.next())?.indices, [0, 1]);
  const waiting = prefetcher.next(); // batch [2, 3], whose gates never open
  await prefetcher.close();
  const err = await t.throwsAsync(waiting);
  t.true(isAbortError(err), String(err));
  t.true(dataset.readsAborted.includes(2) && dataset.readsAborted.includes(3));
  const after = await t.throwsAsync(prefetcher.next());
  t.true(isClusterError(after, 'ABORTED'));
  await prefetcher.close(); // idempotent
});

test('a failed batch rejects only when its turn comes, after the batches before it', async (t) => {
  const dataset = await gatedDataset(t, 4);
  const prefetcher = track(t, createPrefetcher(dataset, [[0], [1], [2]], { ...prepare, depth: 3 }));
  dataset.gate(1).reject(new Error('disk on fire'));
  dataset.gate(0).resolve();
  dataset.gate(2).resolve();
  t.deepEqual((await prefetcher.next())?.indices, [0]);
  await t.throwsAsync(prefetcher.next(), { message: 'disk on fire' });
  t.deepEqual((await prefetcher.next())?.indices, [2]);
  t.is(await prefetcher.next(), null);
});

test('iterating the prefetcher with for await yields every batch, and breaking out closes it', async (t) => {
  const dataset = await gatedDataset(t, 4);
  for (let i = 0; i < 4; i++) dataset.gate(i).resolve();
  const all: number[][] = [];
  for await (const batch of track(t, createPrefetcher(dataset, [[0, 1], [2], [3]], prepare)))
    all.push(batch.indices);
  t.deepEqual(all, [[0, 1], [2], [3]]);
  const early = track(t, createPrefetcher(dataset, [[0], [1], [2]], prepare));
  for await (const batch of early) {
    t.deepEqual(batch.indices, [0]);
    break;
  }
  t.true(isClusterError(await t.throwsAsync(early.next()), 'ABORTED'));
});
