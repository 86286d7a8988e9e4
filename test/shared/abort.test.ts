import { getEventListeners } from 'node:events';
import test from 'ava';
import { deadline, withDeadline } from '../../shared/abort.js';
import { ClusterError } from '../../shared/errors.js';
import { collectGarbageLater, within } from '../helpers/deadline-checks.js';

/** An operation that only ends when its signal aborts, holding the signal through its listener alone. */
function untilAborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    signal.addEventListener('abort', () => reject(signal.reason), { once: true });
  });
}

test('withDeadline times out an operation that never settles even when a GC runs while it waits', async (t) => {
  const parent = new AbortController();
  const started = performance.now();
  const operation = withDeadline(parent.signal, 200, untilAborted);
  await collectGarbageLater();
  // The reason is a DOMException, which AVA does not count as an Error without `any`.
  const err = (await t.throwsAsync(within(operation, 5000), { any: true })) as DOMException | undefined;
  t.is(err?.name, 'TimeoutError');
  t.regex(err?.message ?? '', /timed out after 200 ms/);
  t.true(performance.now() - started >= 190, 'not before its time');
});

test('a deadline signal with no parent fires after a GC', async (t) => {
  const limit = deadline(undefined, 150);
  const operation = untilAborted(limit.signal);
  await collectGarbageLater();
  const err = (await t.throwsAsync(within(operation, 5000), { any: true })) as DOMException | undefined;
  t.is(err?.name, 'TimeoutError');
  t.true(limit.timedOut);
});

test('deadline passes the parent abort reason through and does not count it as a time-out', (t) => {
  const parent = new AbortController();
  const limit = deadline(parent.signal, 60_000);
  const reason = new ClusterError('ABORTED', 'shutting down');
  parent.abort(reason);
  t.true(limit.signal.aborted);
  t.is(limit.signal.reason, reason);
  t.false(limit.timedOut);
  t.is(getEventListeners(parent.signal, 'abort').length, 0, 'the parent holds nothing after the abort');
});

test('deadline of a parent that already aborted is aborted at once with its reason', (t) => {
  const reason = new Error('gone');
  const limit = deadline(AbortSignal.abort(reason), 60_000);
  t.true(limit.signal.aborted);
  t.is(limit.signal.reason, reason);
  t.false(limit.timedOut);
});

test('withDeadline lets go of a long-lived parent once each operation settles', async (t) => {
  const parent = new AbortController();
  const results = await Promise.allSettled([
    withDeadline(parent.signal, 60_000, async () => 'ok'),
    withDeadline(parent.signal, 60_000, async () => {
      throw new Error('failed');
    }),
    withDeadline(parent.signal, 60_000, () => {
      throw new Error('threw synchronously');
    }),
  ]);
  t.deepEqual(
    results.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message)),
    ['ok', 'failed', 'threw synchronously'],
  );
  t.is(getEventListeners(parent.signal, 'abort').length, 0);
});

test('withDeadline clears its timer when the operation settles, so the signal never aborts later', async (t) => {
  let seen: AbortSignal | undefined;
  await withDeadline(undefined, 30, async (signal) => {
    seen = signal;
  });
  await t.throwsAsync(within(untilAborted(seen!), 300), { message: /not settled within 300 ms/ });
  t.false(seen!.aborted);
});

test('deadline clear() is idempotent and a cleared deadline no longer follows its parent', (t) => {
  const parent = new AbortController();
  const limit = deadline(parent.signal, 60_000);
  limit.clear();
  limit.clear();
  parent.abort();
  t.false(limit.signal.aborted);
  t.false(limit.timedOut);
});

test('deadline of Infinity has no timer and still follows its parent; a negative or NaN one is refused', (t) => {
  const parent = new AbortController();
  const limit = deadline(parent.signal, Number.POSITIVE_INFINITY);
  parent.abort();
  t.true(limit.signal.aborted);
  t.false(limit.timedOut);
  t.throws(() => deadline(undefined, -1), {
    instanceOf: RangeError,
    message: /ms must be a number >= 0, got -1/,
  });
  t.throws(() => deadline(undefined, Number.NaN), { instanceOf: RangeError });
});
