import { setTimeout as delay } from 'node:timers/promises';

/** A bounded wait: `signal` aborts when the parent does or when `ms` have passed, whichever is first. */
export interface Deadline extends Disposable {
  readonly signal: AbortSignal;
  /** True once the timer (not the parent) aborted `signal`; stays true after clear(). */
  readonly timedOut: boolean;
  /** Stops the timer and lets go of the parent (idempotent); call it once the guarded wait is over. */
  clear(): void;
}

/**
 * `parent` or a timer of `ms`, whichever comes first; the reason on time-out is a TimeoutError
 * DOMException, like AbortSignal.timeout's.
 *
 * Invariant: nothing here depends on garbage collection. On Node 20 an AbortSignal.timeout composed
 * with AbortSignal.any is referenced only weakly and its timer is cancelled once a GC collects it,
 * so such a deadline may never fire (nodejs/node#57736). Here the timer closes over the controller
 * and the parent's listener holds it too, so the signal aborts on time; clear() (or the abort
 * itself) removes both, so a long-lived parent collects no listeners. The timer is unref'd: a
 * deadline alone does not keep the process alive. `ms` = Infinity means no timer.
 */
export function deadline(parent: AbortSignal | undefined, ms: number): Deadline {
  if (!(ms >= 0)) throw new RangeError(`deadline: ms must be a number >= 0, got ${ms}`);
  const controller = new AbortController();
  let timedOut = false;
  let timer: NodeJS.Timeout | undefined;
  const onParentAbort = () => finish(parent?.reason);
  const finish = (reason?: unknown) => {
    clearTimeout(timer);
    parent?.removeEventListener('abort', onParentAbort);
    if (reason !== undefined && !controller.signal.aborted) controller.abort(reason);
  };
  if (parent?.aborted) finish(parent.reason);
  else {
    parent?.addEventListener('abort', onParentAbort, { once: true });
    // setTimeout turns a delay above 2^31-1 ms into 1 ms; such a deadline is no deadline at all.
    if (ms <= 2 ** 31 - 1) {
      timer = setTimeout(() => {
        timedOut = true;
        finish(new DOMException(`timed out after ${ms} ms`, 'TimeoutError'));
      }, ms);
      timer.unref();
    }
  }
  return {
    signal: controller.signal,
    get timedOut() {
      return timedOut;
    },
    clear: () => finish(),
    [Symbol.dispose]: () => finish(),
  };
}

/**
 * Runs `run` under a deadline of `ms` (or until `parent` aborts) and clears the timer as soon as
 * the operation settles, whichever way.
 */
export function withDeadline<T>(
  parent: AbortSignal | undefined,
  ms: number,
  run: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  return runUnder(deadline(parent, ms), run);
}

/** An async function, so that `run` throwing synchronously rejects too and still clears the timer. */
async function runUnder<T>(limit: Deadline, run: (signal: AbortSignal) => Promise<T>): Promise<T> {
  try {
    return await run(limit.signal);
  } finally {
    limit.clear();
  }
}

/** Sleeps `ms` milliseconds; rejects with the signal's reason when it aborts first. */
export async function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  await delay(ms, undefined, signal ? { signal } : undefined);
}

/** A signal that aborts when any of the given signals does. */
export function linkSignals(...signals: (AbortSignal | undefined)[]): AbortSignal {
  const present = signals.filter((s): s is AbortSignal => s !== undefined);
  return present.length === 1 ? present[0]! : AbortSignal.any(present);
}

/** A promise with its resolve/reject exposed (for mailboxes and events). */
export interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(reason: unknown): void;
}

export function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Rejects with the signal's reason as soon as it aborts; otherwise settles like `promise`. */
export function raceAbort<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
