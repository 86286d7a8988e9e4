import test from 'ava';
import { type Deferred, deferred } from '../../../shared/abort.js';
import { SendQueue } from '../../../worker/allreduce/send-queue.js';

/** A writer whose writes complete when the test says so. */
function manualWriter() {
  const started: string[] = [];
  const pending = new Map<string, Deferred<void>>();
  const write = (item: string) => {
    started.push(item);
    const d = deferred<void>();
    pending.set(item, d);
    return d.promise;
  };
  return { write, started, finish: (item: string) => pending.get(item)!.resolve() };
}

const never = () => new AbortController().signal;
const tick = () => new Promise((resolve) => setImmediate(resolve));

test('SendQueue writes at most two items at once, in order, and reports each when it is written', async (t) => {
  const w = manualWriter();
  const queue = new SendQueue<string>(w.write);
  const done: string[] = [];
  for (const item of ['a', 'b', 'c', 'd']) void queue.push(item, never()).then(() => done.push(item));
  t.deepEqual(w.started, ['a', 'b']);
  w.finish('b');
  await tick();
  t.deepEqual(done, ['b'], 'b is reported on its own, before a');
  t.deepEqual(w.started, ['a', 'b', 'c']);
  w.finish('a');
  w.finish('c');
  await tick();
  t.deepEqual(w.started, ['a', 'b', 'c', 'd']);
  t.deepEqual(done, ['b', 'a', 'c']);
});

test('SendQueue drops a waiting item whose signal aborts and rejects it with the reason', async (t) => {
  const w = manualWriter();
  const queue = new SendQueue<string>(w.write, 1);
  void queue.push('a', never());
  const controller = new AbortController();
  const b = queue.push('b', controller.signal);
  const c = queue.push('c', never());
  controller.abort(new Error('round cancelled'));
  await t.throwsAsync(b, { message: 'round cancelled' });
  w.finish('a');
  await tick();
  t.deepEqual(w.started, ['a', 'c'], 'b is never written');
  w.finish('c');
  await c;
  await t.throwsAsync(queue.push('d', controller.signal), { message: 'round cancelled' });
});

test('SendQueue rejects an item whose write fails, even synchronously, and goes on with the next', async (t) => {
  const queue = new SendQueue<string>((item) => {
    if (item === 'sync') throw new Error('write threw');
    return item === 'async' ? Promise.reject(new Error('write failed')) : Promise.resolve();
  }, 1);
  const results = await Promise.allSettled(['sync', 'async', 'ok'].map((item) => queue.push(item, never())));
  t.deepEqual(
    results.map((r) => (r.status === 'rejected' ? (r.reason as Error).message : 'written')),
    ['write threw', 'write failed', 'written'],
  );
});
