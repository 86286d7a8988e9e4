/**
 * A batch of prepared samples, read and prepared concurrently: every sample of the batch is in flight at
 * once (unless a TaskQueue caps the preparations), each prepared as soon as its read is done, by
 * prepareSample or by the given preparer (the prefetcher uses the prepare thread, prepare-thread.ts).
 *
 * Bad input (issue 6): a sample whose data is corrupt (RecordIO framing, image, label or annotation:
 * ClusterError codes RECORDIO, IMAGE, ANNOTATION) is, with onBadRecord 'skip' (the default), left out
 * with a warning naming the file and offset (or path) and listed in `skipped`, so the trainer can count
 * it; nothing is substituted, the batch is just smaller. With 'fail' it is thrown. Any other failure
 * (storage, abort, a bug) is thrown in both modes, and the rest of the batch is cancelled.
 */
import { linkSignals } from '../../shared/abort.js';
import { ClusterError, errorMessage, isClusterError } from '../../shared/errors.js';
import { type Logger, noopLogger } from '../../shared/logging.js';
import { type BadRecordLog, createBadRecordLog } from './bad-record-log.js';
import type { Dataset, DatasetSample, OnBadRecord } from './dataset.js';
import type { GroundTruth } from './ground-truth.js';
import { checkPrepareOptions, type PreparedSample, type PrepareOptions, prepareSample } from './prepare.js';
import type { TaskQueue } from './task-queue.js';

export interface Batch {
  /** Sample indices, in the requested order, without skipped ones. */
  indices: number[];
  /** B*S*S*3 normalised RGB, HWC per sample. */
  images: Float32Array;
  gt: GroundTruth[];
  /** [width, height] of each original image. */
  originalSizes: [number, number][];
}

export interface BadRecord {
  index: number;
  source: string;
  reason: string;
}

export interface LoadedBatch extends Batch {
  skipped: BadRecord[];
}

export interface LoadBatchOptions extends PrepareOptions {
  signal?: AbortSignal;
  /** Default 'skip'. */
  onBadRecord?: OnBadRecord;
  logger?: Logger;
  /** Caps the samples decoded at once (may be shared by several batches); default no cap. */
  queue?: TaskQueue;
  /** Reads of `indices` already started (same order), e.g. by a prefetcher; default: read here. */
  reads?: readonly Promise<DatasetSample>[];
  /** Runs prepareSample's work; default prepareSample itself, on this thread (see prepare-thread.ts). */
  preparer?: Preparer;
  /** Where skipped records are reported (bad-record-log.ts); default a warning each. */
  badRecordLog?: Pick<BadRecordLog, 'skipped'>;
}

export type Preparer = (
  sample: DatasetSample,
  options: PrepareOptions,
  into?: Float32Array,
) => Promise<PreparedSample>;

const DATA_ERROR_CODES = new Set(['RECORDIO', 'IMAGE', 'ANNOTATION']);

/** Corrupt input (skippable), as opposed to storage failures, aborts and bugs. */
export function isBadRecordError(err: unknown): err is ClusterError {
  return isClusterError(err) && DATA_ERROR_CODES.has(err.code);
}

type Outcome = { ok: PreparedSample } | { bad: BadRecord };

export async function loadBatch(
  dataset: Dataset,
  indices: readonly number[],
  options: LoadBatchOptions,
): Promise<LoadedBatch> {
  checkPrepareOptions(options);
  if (options.reads !== undefined && options.reads.length !== indices.length) {
    throw new ClusterError(
      'INTERNAL',
      `loadBatch: ${options.reads.length} reads for ${indices.length} samples`,
    );
  }
  const slot = options.imageShape * options.imageShape * 3;
  const buffer = new Float32Array(indices.length * slot);
  const { queue } = options;
  const cancel = new AbortController();
  const signal = linkSignals(options.signal, cancel.signal);
  const preparer = options.preparer ?? prepareSample;
  const prepare = (sample: DatasetSample, at: number) =>
    preparer(sample, options, buffer.subarray(at * slot, (at + 1) * slot));
  const loadOne = async (index: number, at: number): Promise<Outcome> => {
    try {
      signal.throwIfAborted();
      const sample = await (options.reads?.[at] ?? dataset.read(index, signal));
      signal.throwIfAborted();
      const ok = await (queue ? queue.run(() => prepare(sample, at), signal) : prepare(sample, at));
      signal.throwIfAborted();
      return { ok };
    } catch (err) {
      if (options.onBadRecord === 'fail' || !isBadRecordError(err)) throw err;
      return { bad: { index, source: dataset.sourceOf(index), reason: errorMessage(err) } };
    }
  };
  let outcomes: Outcome[];
  try {
    outcomes = await Promise.all(indices.map((index, at) => loadOne(index, at)));
  } catch (err) {
    cancel.abort(new ClusterError('ABORTED', 'another sample of the batch failed', { cause: err }));
    throw err;
  }
  const logger = options.logger ?? noopLogger;
  const log = options.badRecordLog ?? createBadRecordLog(logger, Number.POSITIVE_INFINITY); // a warning each
  return assemble(outcomes, buffer, slot, log);
}

/** Moves the good samples' pixels together (in order) and reports the skipped ones. */
function assemble(
  outcomes: readonly Outcome[],
  buffer: Float32Array,
  slot: number,
  log: Pick<BadRecordLog, 'skipped'>,
): LoadedBatch {
  const batch: LoadedBatch = { indices: [], images: buffer, gt: [], originalSizes: [], skipped: [] };
  outcomes.forEach((outcome, at) => {
    if ('bad' in outcome) {
      batch.skipped.push(outcome.bad);
      log.skipped(outcome.bad);
      return;
    }
    const sample = outcome.ok;
    const to = batch.indices.length;
    if (to !== at) buffer.copyWithin(to * slot, at * slot, (at + 1) * slot);
    batch.indices.push(sample.index);
    batch.gt.push(sample.gt);
    batch.originalSizes.push([sample.originalWidth, sample.originalHeight]);
  });
  if (batch.skipped.length > 0) batch.images = buffer.slice(0, batch.indices.length * slot);
  return batch;
}
