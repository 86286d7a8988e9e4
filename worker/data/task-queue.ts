/**
 * A FIFO concurrency limit for sample preparation. Tasks start in the order they were queued, at most
 * `concurrency` at a time, so the samples of the batch the trainer needs next are decoded before those
 * of batches prefetched behind it. A task whose signal aborts while it waits never starts.
 */
export interface TaskQueue {
  readonly concurrency: number;
  run<T>(task: () => Promise<T>, signal?: AbortSignal): Promise<T>;
}

/** The libuv thread pool has 4 threads by default; sharp runs one image per thread. */
export const DEFAULT_PREPARE_CONCURRENCY = 4;

export function createTaskQueue(concurrency = DEFAULT_PREPARE_CONCURRENCY): TaskQueue {
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) {
    throw new RangeError(`createTaskQueue: concurrency must be an integer >= 1, got ${concurrency}`);
  }
  let running = 0;
  const waiting: (() => void)[] = [];

  const release = () => {
    running--;
    const next = waiting.shift();
    if (next) next();
  };

  async function acquire(signal: AbortSignal | undefined): Promise<void> {
    signal?.throwIfAborted();
    if (running < concurrency) {
      running++;
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const start = () => {
        signal?.removeEventListener('abort', onAbort);
        running++;
        resolve();
      };
      const onAbort = () => {
        const at = waiting.indexOf(start);
        if (at !== -1) waiting.splice(at, 1);
        reject(signal!.reason);
      };
      waiting.push(start);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  return {
    concurrency,
    async run(task, signal) {
      await acquire(signal);
      try {
        return await task();
      } finally {
        release();
      }
    },
  };
}
