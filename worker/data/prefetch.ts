/**
 * Prefetching: while the trainer works on batch n, the records of batches n+1 .. n+depth are being read
 * and the first decodeDepth of those prepared (decoded, augmented, normalised) on the prepare thread
 * (prepare-thread.ts). A training step blocks the main thread for hundreds of milliseconds and, between
 * steps, the trainer may not let the event loop turn at all; reads need a few main-thread turns each
 * (fs open, stat, read, close) and answers from the prepare thread one. So the reads run far ahead,
 * everything in the windows is in flight at once, next() lets the loop turn once and takes the answers
 * that have arrived, and what is left on the main thread per sample is starting its read, posting it
 * to the thread and copying its pixels into the batch.
 *
 * Protocol:
 *   1. createPrefetcher starts reading the first `depth` batches of `steps` (the index lists of one
 *      epoch's steps, from the sharding plan), in step order, at most READ_CONCURRENCY records at once;
 *      the first `decodeDepth` of them also start being prepared (every sample once read, unless
 *      options.queue caps them; options.preparer replaces the thread, e.g. with prepareSample).
 *   2. next() lets the event loop turn once, settles the prepare thread's answers that have arrived
 *      (collectThreadAnswers), then hands out batches strictly in step order; taking batch n moves
 *      batch n+decodeDepth into the decode window and starts reading batch n+depth. It resolves to null
 *      after the last step. A batch that failed (a storage error, or a bad record with onBadRecord
 *      'fail') rejects when its turn comes, not before.
 *   3. close() aborts everything in flight, waits for it to settle and is idempotent; next() after
 *      close() rejects with ClusterError('ABORTED'). Breaking out of `for await` closes it too.
 *
 * Memory bound: depth * B encoded records (read ahead, plus a copy of each sent to the thread) and
 * decodeDepth * B * S*S*3 float32 twice (the batch buffers being filled, and the thread's answers until
 * copied in), plus the images libvips holds for the jobs running on the libuv pool (4 threads by
 * default). With the defaults, B = 32 and S = 512: ~6 * 32 * 100 KB of JPEG and up to 4 * 96 MB.
 */
import { setImmediate } from 'node:timers/promises';
import { linkSignals } from '../../shared/abort.js';
import { ClusterError } from '../../shared/errors.js';
import { type LoadBatchOptions, type LoadedBatch, loadBatch } from './batch.js';
import type { Dataset, DatasetSample } from './dataset.js';
import { collectThreadAnswers, prepareOnThread } from './prepare-thread.js';
import { createTaskQueue, type TaskQueue } from './task-queue.js';

export interface PrefetchOptions extends LoadBatchOptions {
  /** Batches ahead of the consumer whose records are being read (default 6). */
  depth?: number;
  /** Of those, the first ones that are also being decoded (default 2, at most depth). */
  decodeDepth?: number;
}

export interface Prefetcher extends AsyncIterable<LoadedBatch> {
  /** The next batch in step order, or null after the last one. */
  next(): Promise<LoadedBatch | null>;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export const DEFAULT_PREFETCH_DEPTH = 6;
export const DEFAULT_DECODE_DEPTH = 2;
/**
 * Records read at once: enough that reads, which need a few main-thread turns each, keep up with a
 * trainer that lets the loop turn about once a step; few enough for open files, and for the AWS SDK,
 * which warns once 50 sockets are busy and 100 more requests wait for one.
 */
export const READ_CONCURRENCY = 64;

interface ReadAhead {
  indices: readonly number[];
  reads: Promise<DatasetSample>[];
}

function checkDepth(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`createPrefetcher: ${name} must be an integer >= 1, got ${value}`);
  }
  return value;
}

export function createPrefetcher(
  dataset: Dataset,
  steps: Iterable<readonly number[]>,
  options: PrefetchOptions,
): Prefetcher {
  const depth = checkDepth('depth', options.depth ?? DEFAULT_PREFETCH_DEPTH);
  const decodeDepth = Math.min(depth, checkDepth('decodeDepth', options.decodeDepth ?? DEFAULT_DECODE_DEPTH));
  return new BatchPrefetcher(dataset, steps[Symbol.iterator](), options, depth, decodeDepth);
}

class BatchPrefetcher implements Prefetcher {
  private readonly controller = new AbortController();
  private readonly signal: AbortSignal;
  private readonly readQueue: TaskQueue = createTaskQueue(READ_CONCURRENCY);
  /** In step order: batches being decoded, then batches being read (together at most `depth`). */
  private readonly reading: ReadAhead[] = [];
  private readonly decoding: Promise<LoadedBatch>[] = [];
  private exhausted = false;
  private closing: Promise<void> | null = null;

  constructor(
    private readonly dataset: Dataset,
    private readonly steps: Iterator<readonly number[]>,
    private readonly options: PrefetchOptions,
    private readonly depth: number,
    private readonly decodeDepth: number,
  ) {
    this.signal = linkSignals(options.signal, this.controller.signal);
    this.fill();
  }

  async next(): Promise<LoadedBatch | null> {
    this.checkOpen();
    // One event-loop turn first: between two steps a trainer may never let the loop turn, and reads (a
    // few libuv round trips each) and the prepare thread's answers move on only when it does.
    if (this.reading.length + this.decoding.length > 0) await setImmediate();
    this.checkOpen();
    collectThreadAnswers();
    const head = this.decoding.shift();
    if (head === undefined) return null;
    this.fill();
    return head;
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.controller.abort(new ClusterError('ABORTED', `prefetcher over ${this.dataset.url} closed`));
      const reads = this.reading.splice(0).flatMap((r) => r.reads);
      await Promise.allSettled([...this.decoding.splice(0), ...reads]);
    })();
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<LoadedBatch> {
    try {
      for (let batch = await this.next(); batch !== null; batch = await this.next()) yield batch;
    } finally {
      await this.close();
    }
  }

  private checkOpen(): void {
    if (this.closing !== null)
      throw new ClusterError('ABORTED', `prefetcher over ${this.dataset.url} is closed`);
  }

  /** Tops up the read window to `depth` batches, then the decode window to `decodeDepth`. */
  private fill(): void {
    while (!this.exhausted && this.reading.length + this.decoding.length < this.depth) {
      const step = this.steps.next();
      if (step.done) this.exhausted = true;
      else this.reading.push(this.startReads(step.value));
    }
    while (this.decoding.length < this.decodeDepth && this.reading.length > 0) {
      const { indices, reads } = this.reading.shift()!;
      const { options, signal } = this;
      const preparer = options.preparer ?? prepareOnThread;
      const batch = loadBatch(this.dataset, indices, { ...options, signal, reads, preparer });
      batch.catch(() => {}); // rejections are delivered by next(), in order
      this.decoding.push(batch);
    }
  }

  private startReads(indices: readonly number[]): ReadAhead {
    const { dataset, signal } = this;
    const reads = indices.map((index) => this.readQueue.run(() => dataset.read(index, signal), signal));
    for (const read of reads) read.catch(() => {}); // delivered through loadBatch, in order
    return { indices, reads };
  }
}
