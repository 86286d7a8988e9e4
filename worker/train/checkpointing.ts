/**
 * Checkpoints and exact resume of a training run, on top of the checkpoint store
 * (coordinator/checkpoint/store.ts): when to save (pure isCheckpointDue), a Checkpointer that
 * snapshots at a step boundary and writes in the background, and resume (resume.ts: find the
 * checkpoint, check that it belongs to this run, restore the trainer). `train` wires them with
 * startCheckpointing; the cluster worker can use the pieces on their own.
 *
 * Write policy (one write at a time, never inside a step):
 * 1. At a due point the state is copied synchronously (Trainer.readStateInto, one copy per tensor),
 *    so the snapshot is exactly that point; the write then runs in the background while training
 *    goes on.
 * 2. A step checkpoint due while the previous write is still running is SKIPPED (logged, counted):
 *    training never waits for storage, and the next due step tries again.
 * 3. An epoch-end checkpoint WAITS for the running write, then starts its own: epoch ends are the
 *    checkpoints users count on, and the last one holds the run's final state.
 * 4. A failed write is logged at error level, naming the directory, step and reason, and counted;
 *    training goes on (earlier checkpoints stay valid: the store writes the manifest last).
 *    flush() awaits the last write; close() does too and refuses new ones.
 * 5. Steps compute synchronously and can follow one another with hardly any event-loop turn, and a
 *    write is a chain of I/O calls (~100 ms, mostly fsync, for a 5 MB tiny model): measured, it was
 *    still running at the end of a 6-step epoch, even with one setImmediate per step. So each point
 *    while a write is in progress lends the event loop to it for up to `ioSliceMs` (or until it ends).
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { JsonValue } from '../../coordinator/checkpoint/format.js';
import { type CheckpointStore, createCheckpointStore } from '../../coordinator/checkpoint/store.js';
import { raceAbort } from '../../shared/abort.js';
import { type Clock, systemClock } from '../../shared/clock.js';
import type { Hyperparameters } from '../../shared/config/hyperparameters.js';
import { ClusterError, ConfigError, errorMessage } from '../../shared/errors.js';
import { type Logger, noopLogger } from '../../shared/logging.js';
import { checkpointMeta, findResumeCheckpoint, type ResumeOptions, resumeTrainer } from './resume.js';
import type { CheckpointPoint, Trainer } from './trainer.js';
import type { TrainerState, TrainingProgress } from './trainer-state.js';

/** Due at every epoch end, and every `frequency` global steps when `frequency` > 0. */
export function isCheckpointDue(progress: TrainingProgress, epochEnd: boolean, frequency: number): boolean {
  return epochEnd || (frequency > 0 && progress.globalStep % frequency === 0);
}

const DEFAULT_IO_SLICE_MS = 25;

/** Waits for `write` to end, `ms` to pass, or `signal` to abort (which throws), whichever comes first. */
async function lendEventLoop(write: Promise<void>, ms: number, signal: AbortSignal): Promise<void> {
  const done = new AbortController();
  const timer = delay(ms, undefined, { signal: AbortSignal.any([signal, done.signal]) }).catch(() => {});
  try {
    await Promise.race([write, timer]);
  } finally {
    done.abort();
  }
  signal.throwIfAborted();
}

export interface CheckpointerOptions {
  store: Pick<CheckpointStore, 'dir' | 'write'>;
  /** Where snapshots come from: readStateInto() without a target, i.e. into fresh arrays. */
  trainer: Pick<Trainer, 'readStateInto'>;
  /** `--checkpoint-frequency`: every this many global steps; 0 = at epoch ends only. */
  frequency: number;
  /** Describes the run (checkpointMeta); `createdAt` is added to each snapshot. */
  meta: Readonly<Record<string, JsonValue>>;
  /** Event-loop time lent to a write in progress at each later point (policy 5; default 25 ms). */
  ioSliceMs?: number;
  /** createdAt and lastSuccessMs (default: the system clock). */
  clock?: Clock;
  logger?: Logger;
  /** After each complete write, e.g. for ssd_cluster_checkpoint_last_success_timestamp_seconds. */
  onWritten?: (written: WrittenCheckpoint) => void;
}

export interface WrittenCheckpoint {
  url: string;
  globalStep: number;
  epoch: number;
  /** clock.now() when the manifest was in place. */
  timestampMs: number;
}

export interface CheckpointStats {
  written: number;
  /** Step checkpoints skipped because a write was still running (policy 2). */
  skipped: number;
  failed: number;
}

export interface Checkpointer {
  /**
   * At a step boundary: snapshots and starts a background write when due (true), else false.
   * Resolves once the snapshot is taken, not when the write ends. Calls must not overlap.
   */
  maybeCheckpoint(
    progress: TrainingProgress,
    point: { epochEnd: boolean },
    signal: AbortSignal,
  ): Promise<boolean>;
  /** Waits for the write in progress, if any (its failure is in stats, not thrown). */
  flush(signal?: AbortSignal): Promise<CheckpointStats>;
  /** clock.now() of the last complete write; null before the first. */
  readonly lastSuccessMs: number | null;
  readonly lastError: unknown;
  readonly stats: Readonly<CheckpointStats>;
  /** Waits for the write in progress; later maybeCheckpoint calls throw. Idempotent. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export function createCheckpointer(options: CheckpointerOptions): Checkpointer {
  const { store, trainer, frequency, meta, clock = systemClock, logger = noopLogger } = options;
  const ioSliceMs = options.ioSliceMs ?? DEFAULT_IO_SLICE_MS;
  if (!Number.isSafeInteger(frequency) || frequency < 0)
    throw new ConfigError([`--checkpoint-frequency: must be an integer >= 0, got ${frequency}`]);
  const stats: CheckpointStats = { written: 0, skipped: 0, failed: 0 };
  let inFlight: Promise<void> | undefined;
  let lastSuccessMs: number | null = null;
  let lastError: unknown;
  let closed = false;

  /** The background half: never rejects; the outcome goes to stats, the log and onWritten. */
  async function write(snapshot: TrainerState, signal: AbortSignal) {
    const { globalStep, epoch } = snapshot.progress;
    const createdAt = new Date(clock.now()).toISOString();
    try {
      const url = await store.write(snapshot, { ...meta, createdAt }, signal);
      lastSuccessMs = clock.now();
      stats.written++;
      options.onWritten?.({ url, globalStep, epoch, timestampMs: lastSuccessMs });
    } catch (err) {
      stats.failed++;
      lastError = err;
      logger.error('checkpoint write failed', {
        dir: store.dir,
        globalStep,
        epoch,
        aborted: signal.aborted,
        error: errorMessage(err),
      });
    }
  }

  async function maybeCheckpoint(
    progress: TrainingProgress,
    point: { epochEnd: boolean },
    signal: AbortSignal,
  ) {
    if (closed) throw new ClusterError('INTERNAL', `checkpointer for ${store.dir}: closed`);
    signal.throwIfAborted();
    if (inFlight) await lendEventLoop(inFlight, ioSliceMs, signal); // policy 5
    if (!isCheckpointDue(progress, point.epochEnd, frequency)) return false;
    if (inFlight && !point.epochEnd) {
      stats.skipped++;
      logger.info('checkpoint skipped: previous write still running', {
        dir: store.dir,
        globalStep: progress.globalStep,
      });
      return false;
    }
    if (inFlight) await raceAbort(inFlight, signal);
    // The write reads the snapshot while training goes on (policy 1), so it gets its own arrays: a
    // copy made now, synchronously, at exactly this step boundary (readStateInto copies each tensor
    // once; getState plus a copy copied twice on wasm). Fresh ones each time rather than a slot
    // kept for the next write, so no second copy of the model stays in memory between checkpoints.
    const snapshot = trainer.readStateInto();
    const running: Promise<void> = write(snapshot, signal).finally(() => {
      if (inFlight === running) inFlight = undefined;
    });
    inFlight = running;
    return true;
  }

  const checkpointer: Checkpointer = {
    maybeCheckpoint,
    async flush(signal) {
      if (inFlight) await raceAbort(inFlight, signal);
      return { ...stats };
    },
    get lastSuccessMs() {
      return lastSuccessMs;
    },
    get lastError() {
      return lastError;
    },
    get stats() {
      return { ...stats };
    },
    async close() {
      closed = true;
      await inFlight;
    },
    [Symbol.asyncDispose]: () => checkpointer.close(),
  };
  return checkpointer;
}

export interface CheckpointingOptions extends Omit<ResumeOptions, 'store'> {
  /** `--checkpoint-dir`: checkpoints are written only when set. */
  dir?: string;
  /** `--checkpoint-frequency` (default 0: epoch ends only). */
  frequency?: number;
  /** `--keep-checkpoints` (default 3). */
  keep?: number;
  hp: Readonly<Hyperparameters>;
  seed: number;
  /** More for the checkpoints' meta (workers, backend...). */
  meta?: Readonly<Record<string, JsonValue>>;
  trainer: Pick<Trainer, 'readStateInto' | 'setState'>;
  clock?: Clock;
  onWritten?: (written: WrittenCheckpoint) => void;
}

export interface Checkpointing {
  /** The checkpoint this run continues; undefined for a fresh start. */
  readonly resumed: { url: string; progress: TrainingProgress } | undefined;
  /** Undefined without `--checkpoint-dir`. */
  readonly checkpointer: Checkpointer | undefined;
  /** For TrainerOptions.onCheckpointPoint. */
  onCheckpointPoint(point: CheckpointPoint, signal: AbortSignal): Promise<void>;
  /** Closes the checkpointer (waiting for its write), then the store. Idempotent. */
  close(): Promise<void>;
}

/**
 * Opens the store of `dir` (if any), restores the trainer from the checkpoint to resume from (after
 * checking it belongs to this run) and creates the checkpointer. The storage stays the caller's.
 */
export async function startCheckpointing(o: CheckpointingOptions): Promise<Checkpointing> {
  const logger = o.logger ?? noopLogger;
  const { dir, storage } = o;
  const store =
    dir === undefined ? undefined : createCheckpointStore({ storage, dir, keep: o.keep ?? 3, logger });
  try {
    const found = await findResumeCheckpoint({ ...o, store });
    if (found) resumeTrainer(o.trainer, found, { ...o, logger });
    const checkpointer =
      store &&
      createCheckpointer({
        ...o,
        store,
        frequency: o.frequency ?? 0,
        meta: checkpointMeta(o.hp, o.seed, o.meta),
        logger,
      });
    let closing: Promise<void> | undefined;
    return {
      resumed: found && { url: found.url, progress: found.state.progress },
      checkpointer,
      async onCheckpointPoint(point, signal) {
        await checkpointer?.maybeCheckpoint(point.progress, point, signal);
      },
      close: () => {
        closing ??= (checkpointer?.close() ?? Promise.resolve()).then(() => store?.close());
        return closing;
      },
    };
  } catch (err) {
    await store?.close();
    throw err;
  }
}
