import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import test from 'ava';
import { deadline } from '../../../shared/abort.js';
import { ClusterError } from '../../../shared/errors.js';

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
