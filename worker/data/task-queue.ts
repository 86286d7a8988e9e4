/**
 * A FIFO concurrency limit. Tasks start in the order they were queued, at most `concurrency` at a time,
 * so the work of the batch the trainer needs next starts before that of batches behind it. The
 * prefetcher caps its record reads with one; loadBatch can cap its decodes with one. A task whose
 * signal aborts while it waits never starts: it rejects with the abort reason when its turn comes (no
 * abort listener per waiting task: a batch queues many).
 */
export interface TaskQueue {
  readonly concurrency: number;
  run<T>(task: () => Promise<T>, signal?: AbortSignal): Promise<T>;
}

export function createTaskQueue(concurrency: number): TaskQueue {
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

  /** Resolves when a slot is free, in FIFO order. */
  function acquire(): Promise<void> {
    if (running < concurrency) {
      running++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) =>
      waiting.push(() => {
        running++;
        resolve();
      }),
    );
  }

  return {
    concurrency,
    async run(task, signal) {
      signal?.throwIfAborted();
      await acquire();
      try {
        signal?.throwIfAborted();
        return await task();
      } finally {
        release();
      }
    },
  };
}
