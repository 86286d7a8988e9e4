/**
 * Sample preparation (prepare.ts) on a thread of its own. A training step keeps the main thread busy
 * for hundreds of milliseconds at a time and, between steps, hardly lets the event loop turn; every
 * sample prepared there costs it ~0.5 ms (augmentation plan, sharp's call set-up and completion,
 * composing the input) and can only move on when the loop turns. On this thread the same work runs
 * while the main thread computes, and what reaches the main thread is one message per sample.
 *
 * Protocol (one thread per process, shared by every batch):
 *   1. prepareOnThread posts { id, sample, options }, transferring a copy of the encoded image (the
 *      sample's bytes may be a view of a larger buffer, which must be neither detached nor cloned whole).
 *   2. The thread (prepare-thread-main.ts) runs prepareSample and answers { id, ok } with the pixels
 *      transferred, or { id, error: { code, message } }, which comes back as a ClusterError with that
 *      code and message (so batch.ts still tells bad records from other failures). Every answer also
 *      carries the thread's decode cache counters (decoded-image-cache.ts) as they stand after the job;
 *      answers arrive in the order they were posted, so the last one seen is the newest.
 *   3. The thread starts on first use and is ref'd only while jobs are pending: it keeps a process that
 *      waits for an answer alive and never keeps an idle one. If it dies, its pending jobs reject with
 *      an INTERNAL error and the next job starts a new thread. The thread's settings (its decode cache
 *      budget) are its start-up data: configurePrepareThread sets them before the thread starts.
 * There is no abort per job: a job takes milliseconds, and the caller checks its signal on the answer.
 */
import { MessageChannel, type MessagePort, receiveMessageOnPort, Worker } from 'node:worker_threads';
import { ClusterError, type ClusterErrorCode, errorMessage } from '../../shared/errors.js';
import type { DatasetSample } from './dataset.js';
import {
  addDecodeCacheCounts,
  DEFAULT_DECODE_CACHE_MB,
  type DecodedImageCacheStats,
  EMPTY_DECODE_CACHE_STATS,
  MB,
} from './decoded-image-cache.js';
import { checkPrepareOptions, type PreparedSample, type PrepareOptions } from './prepare.js';

export interface PrepareJob {
  id: number;
  sample: DatasetSample;
  options: PrepareOptions;
}

export type PrepareReply = (
  | { id: number; ok: PreparedSample }
  | { id: number; error: { code: ClusterErrorCode; message: string } }
) & { cache?: DecodedImageCacheStats };

/** What the thread is started with (worker data). */
export interface PrepareThreadData extends PrepareThreadSettings {
  answers: MessagePort;
}

export interface PrepareThreadSettings {
  /** Budget of the thread's cache of decoded images, in bytes; 0 turns it off. */
  decodeCacheBytes: number;
}

interface Pending {
  resolve(sample: PreparedSample): void;
  reject(err: unknown): void;
  into: Float32Array | undefined;
  /** S*S*3 floats. */
  length: number;
}

class PrepareThread {
  private readonly worker: Worker;
  /** Answers arrive here: as events when the loop turns, or pulled at once by collect(). */
  private readonly answers: MessagePort;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private dead = false;
  /** The thread's decode cache counters from its latest answer. */
  cacheStats: DecodedImageCacheStats;

  constructor(
    readonly settings: Readonly<PrepareThreadSettings>,
    private readonly onDead: (thread: PrepareThread) => void,
  ) {
    this.cacheStats = { ...EMPTY_DECODE_CACHE_STATS, budgetBytes: settings.decodeCacheBytes };
    const { port1, port2 } = new MessageChannel();
    this.answers = port1;
    // No inherited execArgv: the boot file registers tsx itself, and flags meant for the main script
    // (--input-type, --eval) break a thread.
    this.worker = new Worker(new URL('./prepare-thread-boot.mjs', import.meta.url), {
      execArgv: [],
      workerData: { answers: port2, ...settings } satisfies PrepareThreadData,
      transferList: [port2],
    });
    this.worker.unref();
    this.answers.on('message', (reply: PrepareReply) => this.settle(reply));
    this.answers.unref();
    this.worker.on('error', (err) => this.die(err));
    this.worker.on('exit', (code) => this.die(new Error(`the thread exited with code ${code}`)));
  }

  prepare(sample: DatasetSample, options: PrepareOptions, into?: Float32Array): Promise<PreparedSample> {
    const id = this.nextId++;
    // A copy with a buffer of its own, to transfer; the thread sees a Uint8Array, which is all sharp and
    // the header readers need.
    const image = new Uint8Array(sample.image);
    const job: PrepareJob = {
      id,
      sample: { index: sample.index, image: image as Buffer, gt: sample.gt, source: sample.source },
      options: pickPrepareOptions(options),
    };
    return new Promise<PreparedSample>((resolve, reject) => {
      if (this.pending.size === 0) this.answers.ref();
      const length = options.imageShape * options.imageShape * 3;
      this.pending.set(id, { resolve, reject, into, length });
      this.worker.postMessage(job, [image.buffer]);
    });
  }

  /** Settles the jobs whose answers have arrived but not yet been dispatched, without a loop turn. */
  collect(): void {
    for (let m = receiveMessageOnPort(this.answers); m !== undefined; m = receiveMessageOnPort(this.answers))
      this.settle(m.message as PrepareReply);
  }

  /** Rejects the pending jobs first, so that an answer racing the termination is dropped. */
  async terminate(): Promise<void> {
    this.die(new Error('the thread was stopped'));
    await this.worker.terminate();
    this.answers.close();
  }

  private settle(reply: PrepareReply): void {
    if (reply.cache !== undefined && !this.dead) this.cacheStats = reply.cache;
    const job = this.pending.get(reply.id);
    if (job === undefined) return;
    this.forget(reply.id);
    if ('error' in reply) {
      job.reject(new ClusterError(reply.error.code, reply.error.message));
    } else if (reply.ok.pixels.length !== job.length) {
      const sizes = `${reply.ok.pixels.length} floats for an output of ${job.length}`;
      job.reject(new ClusterError('INTERNAL', `prepare thread: ${sizes}`));
    } else {
      job.into?.set(reply.ok.pixels);
      job.resolve({ ...reply.ok, pixels: job.into ?? reply.ok.pixels });
    }
  }

  private forget(id: number): void {
    this.pending.delete(id);
    if (this.pending.size === 0) this.answers.unref();
  }

  private die(err: unknown): void {
    if (this.dead) return;
    this.dead = true;
    this.onDead(this);
    const failure = new ClusterError('INTERNAL', `prepare thread: ${errorMessage(err)}`, { cause: err });
    for (const [id, job] of this.pending) {
      this.forget(id);
      job.reject(failure);
    }
  }
}

/**
 * Every field of PrepareOptions, and only those, goes to the thread (a caller's object may carry more,
 * which structured clone could refuse). `satisfies` makes a new PrepareOptions field a type error here.
 */
const PREPARE_OPTION_KEYS = Object.keys({
  imageShape: true,
  train: true,
  seed: true,
  epoch: true,
  mean: true,
  std: true,
} satisfies Record<keyof PrepareOptions, true>) as (keyof PrepareOptions)[];

function pickPrepareOptions(options: PrepareOptions): PrepareOptions {
  const picked: Record<string, unknown> = {};
  for (const key of PREPARE_OPTION_KEYS) if (options[key] !== undefined) picked[key] = options[key];
  return picked as unknown as PrepareOptions;
}

let shared: PrepareThread | null = null;
let settings: Readonly<PrepareThreadSettings> = { decodeCacheBytes: DEFAULT_DECODE_CACHE_MB * MB };
/** Hits and misses of the threads that have stopped, so the totals never go down. */
let retired: DecodedImageCacheStats = { ...EMPTY_DECODE_CACHE_STATS };

/**
 * Settings for the process's prepare thread, taken when it starts. Call it before the first job (or
 * after closePrepareThread): a running thread with other settings is an INTERNAL error, not ignored.
 */
export function configurePrepareThread(next: PrepareThreadSettings): void {
  const bytes = next.decodeCacheBytes;
  if (!Number.isSafeInteger(bytes) || bytes < 0) {
    throw new ClusterError(
      'INTERNAL',
      `prepare thread: decodeCacheBytes must be an integer >= 0, got ${bytes}`,
    );
  }
  if (shared !== null && shared.settings.decodeCacheBytes !== bytes) {
    throw new ClusterError(
      'INTERNAL',
      `prepare thread: already running with a ${shared.settings.decodeCacheBytes}-byte decode cache; close it before setting ${bytes}`,
    );
  }
  settings = Object.freeze({ decodeCacheBytes: bytes });
}

/** The decode cache: hits and misses since the process started, bytes held by the running thread. */
export function decodeCacheStats(): DecodedImageCacheStats {
  const live = shared?.cacheStats ?? { ...EMPTY_DECODE_CACHE_STATS, budgetBytes: settings.decodeCacheBytes };
  return addDecodeCacheCounts(retired, live);
}

/** prepareSample (same arguments, same result) run on the process's prepare thread. */
export function prepareOnThread(
  sample: DatasetSample,
  options: PrepareOptions,
  into?: Float32Array,
): Promise<PreparedSample> {
  checkPrepareOptions(options);
  shared ??= new PrepareThread(settings, (thread) => {
    retired = addDecodeCacheCounts(retired, thread.cacheStats);
    if (shared === thread) shared = null;
  });
  return shared.prepare(sample, options, into);
}

/**
 * Settles every job whose answer has arrived, now. Answers are otherwise dispatched when the event loop
 * turns, which a trainer between two steps may not let it do before it asks for the next batch.
 */
export function collectThreadAnswers(): void {
  shared?.collect();
}

/** Stops the shared thread (pending jobs reject); the next job starts a new one. Idempotent. */
export async function closePrepareThread(): Promise<void> {
  const thread = shared;
  shared = null;
  await thread?.terminate();
}
