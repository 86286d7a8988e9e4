import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * For tests that a deadline fires. A full garbage collection on a later macrotask: a WeakRef target
 * stays alive until the end of the task that created the WeakRef, so a GC in the same task collects
 * nothing and could not show Node 20's lost composed AbortSignal.timeout (nodejs/node#57736).
 */
export async function collectGarbageLater(): Promise<void> {
  await new Promise<void>((resolve) => setImmediate(resolve));
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

/**
 * Settles like `promise`, or rejects after `ms`. The guard is a plain ref'd timer, independent of
 * shared/abort.ts (whose timers are unref'd), so it also keeps the process alive while it waits.
 */
export async function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const overdue = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`not settled within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, overdue]);
  } finally {
    clearTimeout(timer);
  }
}
