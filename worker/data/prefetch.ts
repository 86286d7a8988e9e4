/**
 * Prefetching: while the trainer works on batch n, the records of batches n+1 .. n+depth are being read
 * and the first decodeDepth of those decoded. Reads (node:fs or S3) and decodes (sharp) run off the main
 * thread, but each sample still needs a few short main-thread continuations between its jobs (fs open,
 * stat, read, close; then one sharp job; then composing the input), and a training step blocks the main
 * thread for hundreds of milliseconds at a time. So the pipeline keeps many samples in flight and reads
 * far ahead: each continuation that runs between two steps moves every waiting sample on, and by the
 * time a batch enters the decode window its encoded bytes are normally in memory already, leaving one
 * sharp job (done during the next step) and one continuation.
 *
 * Protocol:
 *   1. createPrefetcher starts reading the first `depth` batches of `steps` (the index lists of one
 *      epoch's steps, from the sharding plan), in step order, at most READ_CONCURRENCY records at once;
 *      the first `decodeDepth` of them also start decoding (every sample at once, unless options.queue
 *      caps it).
 *   2. next() hands out batches strictly in step order; taking batch n moves batch n+decodeDepth into
 *      the decode window and starts reading batch n+depth. It resolves to null after the last step. A
 *      batch that failed (a storage error, or a bad record with onBadRecord 'fail') rejects when its turn
 *      comes, not before.
 *   3. close() aborts everything in flight, waits for it to settle and is idempotent; next() after
 *      close() rejects with ClusterError('ABORTED'). Breaking out of `for await` closes it too.
 *
 * Memory bound: depth * B encoded records (read ahead) plus decodeDepth * B * S*S*3 float32 (the batch
 * buffers being filled), plus the images libvips holds for the jobs running on the libuv pool (4
 * threads by default). With the defaults, B = 32 and S = 512: ~6 * 32 * 100 KB of JPEG and 2 * 96 MB.
 */
import { linkSignals } from '../../shared/abort.js';
import { ClusterError } from '../../shared/errors.js';
import { type LoadBatchOptions, type LoadedBatch, loadBatch } from './batch.js';
import type { Dataset, DatasetSample } from './dataset.js';
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
 * Records read at once. Below the AWS SDK's 50 sockets per client (it warns when requests queue for a
 * socket), and a bound on open files; reads queued behind it start in step order.
 */
export const READ_CONCURRENCY = 32;

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
  /** Batches being read, in step order, then batches being decoded (reading.length + decoding.length <= depth). */
  private readonly reading: ReadAhead[] = [];
  private readonly decoding: Promise<LoadedBatch>[] = [];
  private exhausted = false;
  private closing: Promise<void> | null = null;
  private refill: NodeJS.Immediate | undefined;

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
    if (this.closing !== null)
      throw new ClusterError('ABORTED', `prefetcher over ${this.dataset.url} is closed`);
    if (this.decoding.length === 0) this.fill(); // a refill may still be waiting for its turn
    const head = this.decoding.shift();
    if (head === undefined) return null;
    // On the next turn, not now: the new batch's first steps (augmentation plan, sharp call set-up) are
    // ~0.3 ms of main-thread work per sample, which would otherwise run in microtasks ahead of the
    // consumer's own continuation. The consumer's next wait (an RPC, say) runs them instead.
    this.refill ??= setImmediate(() => {
      this.refill = undefined;
      if (this.closing === null) this.fill();
    });
    return head;
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      clearImmediate(this.refill);
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

  /** Tops up the read window to `depth` batches, then the decode window to `decodeDepth`. */
  private fill(): void {
    while (!this.exhausted && this.reading.length + this.decoding.length < this.depth) {
      const step = this.steps.next();
      if (step.done) this.exhausted = true;
      else this.reading.push(this.startReads(step.value));
    }
    while (this.decoding.length < this.decodeDepth && this.reading.length > 0) {
      const { indices, reads } = this.reading.shift()!;
      const batch = loadBatch(this.dataset, indices, { ...this.options, signal: this.signal, reads });
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
