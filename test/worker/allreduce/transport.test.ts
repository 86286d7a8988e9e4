import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import test from 'ava';
import { ClusterError, isClusterError } from '../../../shared/errors.js';
import { type ChunkKey, type ChunkMsg, deadline, Mailbox } from '../../../worker/allreduce/transport.js';

const key = (over: Partial<ChunkKey> = {}): ChunkKey => ({
  generation: 2,
  round: 0,
  step: 0,
  bucket: 0,
  chunk: 0,
  ...over,
});
const msg = (over: Partial<ChunkKey> = {}): ChunkMsg => ({
  ...key(over),
  offset: 0,
  dtype: 'f32',
  bytes: new Uint8Array(4),
});
const never = () => new AbortController().signal;

test('mailbox keeps an early arrival until it is taken', async (t) => {
  const box = new Mailbox(2);
  const early = msg({ step: 1 });
  t.is(box.deliver(early), 'accepted');
  t.is(box.size, 1);
  t.is(await box.take(key({ step: 1 }), never()), early);
  t.is(box.size, 0);
});

test('mailbox hands a late arrival to the waiter of exactly its key', async (t) => {
  const box = new Mailbox(2);
  const a = box.take(key({ chunk: 1 }), never());
  const b = box.take(key({ chunk: 0 }), never());
  const m0 = msg({ chunk: 0 });
  const m1 = msg({ chunk: 1 });
  box.deliver(m0);
  box.deliver(m1);
  t.is(await a, m1);
  t.is(await b, m0);
});

test('mailbox drops and counts a message of an older generation', async (t) => {
  const box = new Mailbox(2);
  const waiting = box.take(key(), AbortSignal.timeout(2000));
  t.is(box.deliver(msg({ generation: 1 })), 'stale');
  t.is(box.staleRejected, 1);
  box.deliver(msg());
  t.is((await waiting).generation, 2);
});

test('mailbox rejects a key delivered twice as a PROTOCOL error', (t) => {
  const box = new Mailbox(2);
  box.deliver(msg());
  const err = t.throws(() => box.deliver(msg()));
  t.true(isClusterError(err, 'PROTOCOL'));
  t.regex(err!.message, /2\/0\/0\/0\/0 arrived twice/);
});

test('mailbox advance rejects waiters of the old generation and keeps newer messages', async (t) => {
  const box = new Mailbox(2);
  const old = box.take(key(), never());
  box.deliver(msg({ generation: 3 }));
  box.advance(3);
  const err = await t.throwsAsync(old);
  t.true(isClusterError(err, 'STALE_GENERATION'));
  t.is((await box.take(key({ generation: 3 }), never())).generation, 3);
  await t.throwsAsync(box.take(key(), never()), { message: /generation 2 is over/ });
});

test('mailbox fail rejects present and future waiters of that generation only', async (t) => {
  const box = new Mailbox(2);
  const waiting = box.take(key(), never());
  box.fail(2, new ClusterError('PEER_LOST', 'left neighbour gone'));
  await t.throwsAsync(waiting, { message: 'left neighbour gone' });
  await t.throwsAsync(box.take(key({ step: 3 }), never()), { message: 'left neighbour gone' });
  box.advance(3);
  box.deliver(msg({ generation: 3 }));
  t.is((await box.take(key({ generation: 3 }), never())).generation, 3);
});

test('mailbox take rejects with the abort reason and forgets the waiter', async (t) => {
  const box = new Mailbox(2);
  const controller = new AbortController();
  const waiting = box.take(key(), controller.signal);
  controller.abort(new ClusterError('ABORTED', 'round cancelled'));
  await t.throwsAsync(waiting, { message: 'round cancelled' });
  // The key can be awaited again and a later delivery reaches the new waiter.
  const again = box.take(key(), never());
  box.deliver(msg());
  t.is((await again).step, 0);
});

/** A real garbage collection, to show a deadline survives one (Node 20's composed timeouts do not). */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

/** Resolves when `signal` aborts; rejects after `ms` (a ref'd timer: deadline timers are unref'd). */
function abortedWithin(signal: AbortSignal, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not aborted within ${ms} ms`)), ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

test('deadline fires after its time even when a GC runs in between', async (t) => {
  const limit = deadline(new AbortController().signal, 100);
  collectGarbage();
  await abortedWithin(limit.signal, 5000);
  t.true(limit.timedOut);
  t.is((limit.signal.reason as Error).name, 'TimeoutError');
});

test('deadline passes the parent abort through and clear() stops the timer', async (t) => {
  const parent = new AbortController();
  const limit = deadline(parent.signal, 60_000);
  parent.abort(new ClusterError('ABORTED', 'stop'));
  t.true(limit.signal.aborted);
  t.false(limit.timedOut);
  t.is((limit.signal.reason as Error).message, 'stop');
  const cleared = deadline(new AbortController().signal, 50);
  cleared.clear();
  await t.throwsAsync(abortedWithin(cleared.signal, 300), { message: /not aborted within 300 ms/ });
  t.false(cleared.signal.aborted);
});
