/**
 * Prefetching: while the trainer works on batch n, batches n+1 .. n+depth are being read and decoded
 * (sharp runs on the libuv pool, so this overlaps the training math on the main thread).
 *
 * Protocol:
 *   1. createPrefetcher starts the first `depth` batches of `steps` (the index lists of one epoch's
 *      steps, from the sharding plan) through one shared FIFO TaskQueue, so the samples of earlier
 *      batches are decoded first.
 *   2. next() hands out batches strictly in step order and starts the next step, keeping `depth`
 *      batches in flight; it resolves to null after the last step. A batch that failed (a storage
 *      error, or a bad record with onBadRecord 'fail') rejects when its turn comes, not before.
 *   3. close() aborts everything in flight, waits for it to settle and is idempotent; next() after
 *      close() rejects with ClusterError('ABORTED'). Breaking out of `for await` closes it too.
 */
import { linkSignals } from '../../shared/abort.js';
import { ClusterError } from '../../shared/errors.js';
import { type LoadBatchOptions, type LoadedBatch, loadBatch } from './batch.js';
import type { Dataset } from './dataset.js';
import { createTaskQueue } from './task-queue.js';

export interface PrefetchOptions extends LoadBatchOptions {
  /** Batches in flight ahead of the consumer (default 2). */
  depth?: number;
}

export interface Prefetcher extends AsyncIterable<LoadedBatch> {
  /** The next batch in step order, or null after the last one. */
  next(): Promise<LoadedBatch | null>;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export const DEFAULT_PREFETCH_DEPTH = 2;

export function createPrefetcher(
  dataset: Dataset,
  steps: Iterable<readonly number[]>,
  options: PrefetchOptions,
): Prefetcher {
  const depth = options.depth ?? DEFAULT_PREFETCH_DEPTH;
  if (!Number.isSafeInteger(depth) || depth < 1) {
    throw new RangeError(`createPrefetcher: depth must be an integer >= 1, got ${depth}`);
  }
  const controller = new AbortController();
  const signal = linkSignals(options.signal, controller.signal);
  const batchOptions: LoadBatchOptions = { ...options, signal, queue: options.queue ?? createTaskQueue() };
  const iterator = steps[Symbol.iterator]();
  const inFlight: Promise<LoadedBatch>[] = [];
  let exhausted = false;
  let closing: Promise<void> | null = null;

  const fill = () => {
    while (!exhausted && inFlight.length < depth) {
      const step = iterator.next();
      if (step.done) {
        exhausted = true;
        break;
      }
      const batch = loadBatch(dataset, step.value, batchOptions);
      batch.catch(() => {}); // rejections are delivered by next(), in order
      inFlight.push(batch);
    }
  };

  const prefetcher: Prefetcher = {
    async next() {
      if (closing !== null) throw new ClusterError('ABORTED', `prefetcher over ${dataset.url} is closed`);
      const head = inFlight.shift();
      if (head === undefined) return null;
      fill();
      return head;
    },
    close() {
      closing ??= (async () => {
        controller.abort(new ClusterError('ABORTED', `prefetcher over ${dataset.url} closed`));
        await Promise.allSettled(inFlight.splice(0));
      })();
      return closing;
    },
    [Symbol.asyncDispose]: () => prefetcher.close(),
    async *[Symbol.asyncIterator]() {
      try {
        for (let batch = await prefetcher.next(); batch !== null; batch = await prefetcher.next())
          yield batch;
      } finally {
        await prefetcher.close();
      }
    },
  };
  fill();
  return prefetcher;
}
