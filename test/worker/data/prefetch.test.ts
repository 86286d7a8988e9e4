import { setImmediate as turn } from 'node:timers/promises';
import test from 'ava';
import { deferred } from '../../../shared/abort.js';
import { isAbortError, isClusterError } from '../../../shared/errors.js';
import type { LoadedBatch, Preparer } from '../../../worker/data/batch.js';
import type { Dataset } from '../../../worker/data/dataset.js';
import {
  createPrefetcher,
  type Prefetcher,
  type PrefetchOptions,
  READ_CONCURRENCY,
} from '../../../worker/data/prefetch.js';
import { prepareSample } from '../../../worker/data/prepare.js';
import { createTaskQueue, type TaskQueue } from '../../../worker/data/task-queue.js';
import { gatedDataset } from './fixtures.js';

const SIZE = 16;
const prepare = { imageShape: SIZE, train: true, seed: 9, epoch: 0 };

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

/** A TaskQueue that counts the tasks given to it (the decodes loadBatch starts). */
function countingQueue(): TaskQueue & { runs: number } {
  const inner = createTaskQueue(64);
  const queue = {
    concurrency: inner.concurrency,
    runs: 0,
    run<T>(task: () => Promise<T>, signal?: AbortSignal): Promise<T> {
      queue.runs++;
      return inner.run(task, signal);
    },
  };
  return queue;
}

const byNumber = (a: number, b: number) => a - b;

test('the prefetcher reads `depth` batches ahead but decodes only the first `decodeDepth` of them', async (t) => {
  const dataset = await gatedDataset(t, 12);
  const steps = [0, 2, 4, 6, 8, 10].map((i) => [i, i + 1]);
  for (let i = 0; i < 8; i++) dataset.gate(i).resolve(); // batches 0-3 readable, 4-5 not yet
  const queue = countingQueue();
  const options = { ...prepare, depth: 4, decodeDepth: 1, queue };
  const prefetcher = track(t, createPrefetcher(dataset, steps, options));
  t.deepEqual((await prefetcher.next())?.indices, [0, 1]);
  await turn(); // the refill that taking batch 0 scheduled
  t.deepEqual([...dataset.readsStarted].sort(byNumber), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  t.is(queue.runs, 4, 'batches 0 and 1 decoded; 2 and 3 read but not decoded');
});

test('the prefetcher keeps at most READ_CONCURRENCY reads in flight and starts the rest in order', async (t) => {
  const size = READ_CONCURRENCY + 3;
  const dataset = await gatedDataset(t, size);
  const all = Array.from({ length: size }, (_, i) => i);
  const prefetcher = track(t, createPrefetcher(dataset, [all], { ...prepare, depth: 1 }));
  await turn();
  t.deepEqual(dataset.readsStarted, all.slice(0, READ_CONCURRENCY));
  dataset.gate(5).resolve();
  await turn();
  t.deepEqual(dataset.readsStarted, all.slice(0, READ_CONCURRENCY + 1));
  for (const i of all) dataset.gate(i).resolve();
  t.deepEqual((await prefetcher.next())?.indices, all);
});

test('next() called again and again without yielding still hands out every batch in order', async (t) => {
  const dataset = await gatedDataset(t, 5);
  for (let i = 0; i < 5; i++) dataset.gate(i).resolve();
  const prefetcher = track(t, createPrefetcher(dataset, [[0], [1], [2], [3], [4]], { ...prepare, depth: 2 }));
  const batches = await Promise.all(Array.from({ length: 6 }, () => prefetcher.next()));
  t.deepEqual(
    batches.map((b) => b?.indices ?? null),
    [[0], [1], [2], [3], [4], null],
  );
});

test('closing the prefetcher right after next() starts no further reads', async (t) => {
  const dataset = await gatedDataset(t, 4);
  const prefetcher = createPrefetcher(dataset, [[0], [1], [2], [3]], { ...prepare, depth: 2 });
  await turn();
  t.deepEqual(dataset.readsStarted, [0, 1]);
  const first = prefetcher.next();
  await prefetcher.close();
  await t.throwsAsync(first);
  await turn();
  t.deepEqual(dataset.readsStarted, [0, 1]);
});

test('createPrefetcher rejects a decodeDepth below 1', (t) => {
  t.throws(() => createPrefetcher({} as Dataset, [], { ...prepare, decodeDepth: 0 }), {
    instanceOf: RangeError,
    message: /decodeDepth/,
  });
});

test('the prefetcher prepares on the prepare thread by default, with the same result as prepareSample', async (t) => {
  const dataset = await gatedDataset(t, 6);
  for (let i = 0; i < 6; i++) dataset.gate(i).resolve();
  const steps = [
    [0, 1, 2],
    [3, 4, 5],
  ];
  const collect = async (options: PrefetchOptions) => {
    const batches: LoadedBatch[] = [];
    for await (const batch of track(t, createPrefetcher(dataset, steps, options))) batches.push(batch);
    return batches;
  };
  const onThread = await collect(prepare);
  t.is(onThread.length, 2);
  t.deepEqual(onThread, await collect({ ...prepare, preparer: prepareSample }));
});

test('next() lets the event loop turn once even when the batch it hands out is ready', async (t) => {
  const dataset = await gatedDataset(t, 3);
  for (let i = 0; i < 3; i++) dataset.gate(i).resolve();
  // Reads and preparation that finish in microtasks: only next() itself can make the loop turn.
  const preparer: Preparer = async (sample, _options, into) => ({
    index: sample.index,
    pixels: into ?? new Float32Array(SIZE * SIZE * 3),
    gt: sample.gt,
    originalWidth: 24,
    originalHeight: 24,
  });
  const prefetcher = track(t, createPrefetcher(dataset, [[0], [1], [2]], { ...prepare, preparer }));
  for (const index of [0, 1, 2]) {
    let turned = false;
    setImmediate(() => {
      turned = true;
    });
    t.deepEqual((await prefetcher.next())?.indices, [index]);
    t.true(turned, `batch ${index}`);
  }
});
