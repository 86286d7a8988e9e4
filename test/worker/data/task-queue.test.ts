import test from 'ava';
import { type Deferred, deferred } from '../../../shared/abort.js';
import { createTaskQueue } from '../../../worker/data/task-queue.js';

test('the task queue runs at most `concurrency` tasks at once, starting them in queue order', async (t) => {
  const queue = createTaskQueue(2);
  const gates: Deferred<void>[] = Array.from({ length: 5 }, () => deferred<void>());
  const started: number[] = [];
  let running = 0;
  let peak = 0;
  const results = gates.map((gate, i) =>
    queue.run(async () => {
      started.push(i);
      peak = Math.max(peak, ++running);
      await gate.promise;
      running--;
      return i;
    }),
  );
  for (const i of [4, 3, 2, 1, 0]) gates[i]!.resolve();
  t.deepEqual(await Promise.all(results), [0, 1, 2, 3, 4]);
  t.deepEqual(started, [0, 1, 2, 3, 4]);
  t.is(peak, 2);
});

test('a queued task whose signal aborts never runs and rejects with the reason', async (t) => {
  const queue = createTaskQueue(1);
  const gate = deferred<void>();
  const first = queue.run(() => gate.promise);
  const controller = new AbortController();
  let ran = false;
  const second = queue.run(async () => {
    ran = true;
  }, controller.signal);
  const third = queue.run(async () => 'third');
  const reason = new Error('cancelled');
  controller.abort(reason);
  gate.resolve();
  await first;
  t.is(await t.throwsAsync(second), reason);
  t.is(await third, 'third', 'the slot passed on to the next task');
  t.false(ran);
});

test('createTaskQueue rejects a concurrency below 1', (t) => {
  t.throws(() => createTaskQueue(0), { instanceOf: RangeError });
});
