import test from 'ava';
import { deferred } from '../../../shared/abort.js';
import { ClusterError } from '../../../shared/errors.js';
import { createBatcher } from '../../../worker/inference/batcher.js';

/** A run function whose passes the test releases by index; it records each pass's items. */
function gatedRun() {
  const passes: number[][] = [];
  const gates: ReturnType<typeof deferred<void>>[] = [];
  const gate = (n: number) => {
    while (gates.length <= n) gates.push(deferred<void>());
    return gates[n]!;
  };
  let running = 0;
  let maxRunning = 0;
  const run = async (items: readonly number[]) => {
    running++;
    maxRunning = Math.max(maxRunning, running);
    passes.push([...items]);
    await gate(passes.length - 1).promise;
    running--;
    if (items.includes(-1)) throw new Error('pass failed');
    return items.map((x) => x * 10);
  };
  /** Lets the n-th pass (0-based) finish, whether or not it has started yet. */
  const release = async (n: number) => gate(n).resolve();
  return { run, passes, release, maxRunning: () => maxRunning };
}

test('batcher runs a lone item at once and batches the items that wait behind a running pass', async (t) => {
  const g = gatedRun();
  const batcher = createBatcher(g.run, { maxBatch: 3 });
  const results = [1, 2, 3, 4, 5, 6].map((x) => batcher.submit(x));
  await g.release(0);
  await g.release(1);
  await g.release(2);
  t.deepEqual(await Promise.all(results), [10, 20, 30, 40, 50, 60]);
  t.deepEqual(g.passes, [[1], [2, 3, 4], [5, 6]]);
  t.is(g.maxRunning(), 1);
});

test('batcher holds a pass for reserved items still being prepared, until the batch is full', async (t) => {
  const g = gatedRun();
  const batcher = createBatcher(g.run, { maxBatch: 3 });
  const places = [1, 2, 3, 4, 5].map(() => batcher.reserve());
  const first = places[0]!.submit(1);
  t.deepEqual(g.passes, [], 'four more items are on their way');
  const second = places[1]!.submit(2);
  const third = places[2]!.submit(3);
  t.deepEqual(g.passes, [[1, 2, 3]], 'a full batch does not wait');
  places[3]!.cancel();
  const fifth = places[4]!.submit(5);
  await g.release(0);
  await g.release(1);
  t.deepEqual(await Promise.all([first, second, third, fifth]), [10, 20, 30, 50]);
  t.deepEqual(g.passes, [[1, 2, 3], [5]]);
});

test('batcher starts the waiting items when the last reservation is cancelled, and refuses a reused one', async (t) => {
  const g = gatedRun();
  const batcher = createBatcher(g.run, { maxBatch: 4 });
  const [a, b] = [batcher.reserve(), batcher.reserve()];
  const result = a.submit(7);
  t.deepEqual(g.passes, []);
  b.cancel();
  t.deepEqual(g.passes, [[7]]);
  await g.release(0);
  t.is(await result, 70);
  t.throws(() => b.cancel(), { message: /reservation was used twice/ });
  t.throws(() => a.submit(8), { message: /reservation was used twice/ });
});

test('batcher rejects only the items of a failed pass', async (t) => {
  const g = gatedRun();
  const batcher = createBatcher(g.run, { maxBatch: 2 });
  const first = batcher.submit(1);
  const failing = [batcher.submit(-1), batcher.submit(2)];
  const later = batcher.submit(3);
  await g.release(0);
  await g.release(1);
  await g.release(2);
  t.is(await first, 10);
  for (const p of failing) await t.throwsAsync(p, { message: 'pass failed' });
  t.is(await later, 30);
});

test('batcher drops an aborted waiting item from its pass and rejects it with the reason', async (t) => {
  const g = gatedRun();
  const batcher = createBatcher(g.run, { maxBatch: 4 });
  const first = batcher.submit(1);
  const controller = new AbortController();
  const aborted = batcher.submit(2, controller.signal);
  const kept = batcher.submit(3);
  t.is(batcher.waiting, 2);
  controller.abort(new ClusterError('ABORTED', 'client went away'));
  await t.throwsAsync(aborted, { message: 'client went away' });
  t.is(batcher.waiting, 1);
  await g.release(0);
  await g.release(1);
  t.deepEqual([await first, await kept], [10, 30]);
  t.deepEqual(g.passes, [[1], [3]]);
  await t.throwsAsync(batcher.submit(4, AbortSignal.abort(new Error('already'))), { message: 'already' });
});

test('batcher close rejects waiting items, waits for the running pass and refuses new ones', async (t) => {
  const g = gatedRun();
  const batcher = createBatcher(g.run, { maxBatch: 4 });
  const running = batcher.submit(1);
  const waiting = batcher.submit(2);
  let closed = false;
  const closing = batcher.close().then(() => (closed = true));
  await t.throwsAsync(waiting, { message: /closed before this item ran/ });
  t.false(closed);
  await g.release(0);
  await closing;
  t.is(await running, 10);
  await t.throwsAsync(batcher.submit(3), { message: /closed/ });
  await batcher.close();
  t.deepEqual(g.passes, [[1]]);
});

test('batcher refuses a run that returns the wrong number of results and a bad maxBatch', async (t) => {
  const batcher = createBatcher(async (items: readonly number[]) => items.slice(1), {
    maxBatch: 2,
    name: 'x',
  });
  await t.throwsAsync(batcher.submit(1), { message: 'x: 0 results for 1 items' });
  t.throws(() => createBatcher(async () => [], { maxBatch: 0 }), {
    message: /maxBatch must be an integer >= 1/,
  });
});
