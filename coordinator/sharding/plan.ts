/**
 * The sharding plan: which samples every rank trains on at every step, and where their records are.
 * Pure: plain numbers in, plain numbers out; the reader does the I/O.
 *
 * Protocol of an epoch:
 * 1. The epoch's order is one global permutation of 0..numSamples-1 drawn from
 *    createRng(seed, RNG_STREAM.shuffle, epoch): the same in every process, for any worker count.
 * 2. From a start position (0 for a fresh epoch) the permutation is cut into steps of one global batch,
 *    G = perWorkerBatch x worldSize: step k covers perm[start + k*G, start + (k+1)*G).
 * 3. Rank r's share of a step is the slice [r*b, (r+1)*b) of that global batch. Every rank gets exactly
 *    b samples at every step and the same number of steps, so no rank runs out early, and N workers with
 *    b each see exactly the global batches of one process with N*b (they depend on seed, epoch, G only).
 * 4. Remainder: the (numSamples - start) mod G samples left at the end of the permutation are dropped for
 *    this epoch, like MXNet's last_batch='discard'. Chosen over wrapping to the start because (a) every
 *    sample is trained at most once per epoch, (b) every step is a full batch, so per-rank shapes and the
 *    gradient scale never change, and (c) a position is then just "samples consumed", valid for any
 *    worldSize; wrapped samples would depend on G. The permutation changes every epoch, so a different
 *    random (< G) handful is left out each time.
 * 5. Resume and re-partition: a checkpoint records the position (samples consumed in the epoch);
 *    planFromPosition continues the same permutation from there with any worldSize (rule 4 applies to
 *    what remains).
 */

import { ClusterError, ConfigError, RecordIOError } from '../../shared/errors.js';
import { createRng, permutation, RNG_STREAM } from '../../shared/random.js';
import type { ByteRange } from '../../shared/storage/storage.js';

export interface ShardingOptions {
  /** Samples in the train set (num_training_samples). */
  readonly numSamples: number;
  /** Workers (ranks). */
  readonly worldSize: number;
  /** Samples per rank per step (mini_batch_size). */
  readonly perWorkerBatch: number;
  readonly seed: number;
}

/** One epoch's steps, from `startPosition` in the epoch permutation, for one worldSize. */
export interface EpochPlan {
  readonly epoch: number;
  readonly numSamples: number;
  readonly worldSize: number;
  readonly perWorkerBatch: number;
  readonly globalBatch: number;
  /** Samples of the permutation consumed before this plan's first step. */
  readonly startPosition: number;
  /** Full global batches in this plan. */
  readonly steps: number;
  /** Samples at the end of the permutation that this epoch leaves out (rule 4). */
  readonly droppedSamples: number;
  /** Step `step`'s global batch, sample indices in order. */
  stepSamples(step: number): Uint32Array;
  /** Rank `rank`'s slice [rank*b, (rank+1)*b) of step `step`'s global batch. */
  rankSamples(step: number, rank: number): Uint32Array;
  /** The position (samples consumed in the epoch) once `stepsDone` steps of this plan are done. */
  positionAfter(stepsDone: number): number;
}

export interface ShardingPlan extends ShardingOptions {
  readonly globalBatch: number;
  /** Steps of a fresh epoch: floor(numSamples / globalBatch). */
  readonly stepsPerEpoch: number;
  epoch(epoch: number): EpochPlan;
  stepSamples(epoch: number, step: number): Uint32Array;
  rankSamples(epoch: number, step: number, rank: number): Uint32Array;
  /** Continues `epoch`'s permutation after `samplesConsumed` samples, split over `worldSize` ranks. */
  planFromPosition(epoch: number, samplesConsumed: number, worldSize?: number): EpochPlan;
}

function checkInteger(what: string, value: number, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new ClusterError(
      'INTERNAL',
      `sharding plan: ${what} must be an integer in [${min}, ${max}], got ${value}`,
    );
  }
}

/** The order of `epoch`: a permutation of 0..numSamples-1 from the shuffle stream. */
export function epochPermutation(numSamples: number, seed: number, epoch: number): Uint32Array {
  checkInteger('epoch', epoch, 0);
  return permutation(numSamples, createRng(seed, RNG_STREAM.shuffle, epoch));
}

function checkOptions(o: ShardingOptions): number {
  checkInteger('numSamples', o.numSamples, 1);
  checkInteger('worldSize', o.worldSize, 1);
  checkInteger('perWorkerBatch', o.perWorkerBatch, 1);
  checkInteger('seed', o.seed, 0);
  const globalBatch = o.perWorkerBatch * o.worldSize;
  if (globalBatch > o.numSamples) {
    throw new ConfigError([
      `mini_batch_size: ${o.perWorkerBatch} x ${o.worldSize} workers = ${globalBatch} is more than the ` +
        `${o.numSamples} training samples, so an epoch would have no step`,
    ]);
  }
  return globalBatch;
}

function createEpochPlan(o: ShardingOptions, epoch: number, order: Uint32Array, start: number): EpochPlan {
  const globalBatch = o.perWorkerBatch * o.worldSize;
  const steps = Math.floor((o.numSamples - start) / globalBatch);
  const checkStep = (step: number) => checkInteger(`step of epoch ${epoch}`, step, 0, steps - 1);
  return Object.freeze({
    epoch,
    numSamples: o.numSamples,
    worldSize: o.worldSize,
    perWorkerBatch: o.perWorkerBatch,
    globalBatch,
    startPosition: start,
    steps,
    droppedSamples: o.numSamples - start - steps * globalBatch,
    stepSamples(step: number) {
      checkStep(step);
      const from = start + step * globalBatch;
      return order.slice(from, from + globalBatch);
    },
    rankSamples(step: number, rank: number) {
      checkStep(step);
      checkInteger('rank', rank, 0, o.worldSize - 1);
      const from = start + step * globalBatch + rank * o.perWorkerBatch;
      return order.slice(from, from + o.perWorkerBatch);
    },
    positionAfter(stepsDone: number) {
      checkInteger('stepsDone', stepsDone, 0, steps);
      return start + stepsDone * globalBatch;
    },
  });
}

/** A plan for a train set; permutations are computed once per epoch and reused (the last two are kept). */
export function createShardingPlan(options: ShardingOptions): ShardingPlan {
  const globalBatch = checkOptions(options);
  const cache = new Map<number, Uint32Array>();
  const orderOf = (epoch: number): Uint32Array => {
    let order = cache.get(epoch);
    if (order === undefined) {
      order = epochPermutation(options.numSamples, options.seed, epoch);
      if (cache.size >= 2) cache.delete(cache.keys().next().value!);
      cache.set(epoch, order);
    }
    return order;
  };
  const planFromPosition = (epoch: number, samplesConsumed: number, worldSize = options.worldSize) => {
    const resized = { ...options, worldSize };
    checkOptions(resized);
    checkInteger('samplesConsumed', samplesConsumed, 0, options.numSamples);
    return createEpochPlan(resized, epoch, orderOf(epoch), samplesConsumed);
  };
  const epochPlan = (epoch: number) => planFromPosition(epoch, 0);
  return Object.freeze({
    ...options,
    globalBatch,
    stepsPerEpoch: Math.floor(options.numSamples / globalBatch),
    epoch: epochPlan,
    stepSamples: (epoch: number, step: number) => epochPlan(epoch).stepSamples(step),
    rankSamples: (epoch: number, step: number, rank: number) => epochPlan(epoch).rankSamples(step, rank),
    planFromPosition,
  });
}

/** A half-open range [start, end) of sample indices. */
export interface SampleRange {
  readonly start: number;
  readonly end: number;
}

/**
 * Validation sharding: contiguous, near-equal ranges in rank order, every sample exactly once; the
 * first (numSamples mod worldSize) ranks get one extra. Contiguous ranges read as one byte range each.
 */
export function validationShards(numSamples: number, worldSize: number): SampleRange[] {
  checkInteger('worldSize', worldSize, 1);
  return Array.from({ length: worldSize }, (_, rank) => validationShard(numSamples, worldSize, rank));
}

export function validationShard(numSamples: number, worldSize: number, rank: number): SampleRange {
  checkInteger('numSamples', numSamples, 0);
  checkInteger('worldSize', worldSize, 1);
  checkInteger('rank', rank, 0, worldSize - 1);
  const base = Math.floor(numSamples / worldSize);
  const extra = numSamples % worldSize;
  // Rank r starts after r shards of `base`, plus one for each earlier rank among the first `extra`.
  const boundary = (r: number) => r * base + Math.min(r, extra);
  return { start: boundary(rank), end: boundary(rank + 1) };
}

/** One .idx entry (shared/recordio/index-file.ts): the key and the byte offset of the record's magic. */
export interface IndexedRecord {
  readonly key: string | number;
  readonly offset: number;
}

/** Where samples live in a .rec file. Sample i is the i-th entry of the .idx, in its line order. */
export interface RecordLocator {
  readonly numRecords: number;
  /** The record start offset of each sample (for readAt). */
  offsetsOf(samples: ArrayLike<number>): number[];
  /** Each sample's bytes: its offset up to the next record's offset, or the end of the file. */
  byteRangesOf(samples: ArrayLike<number>): ByteRange[];
  /** The bytes of samples [start, end), for a scan whose records start in that range. Needs file order. */
  byteRangeOf(range: SampleRange): ByteRange;
}

/**
 * Builds the lookup tables once. A record's end is the next larger offset in the index (the way
 * MXNet's IndexedRecordIOSplitter sizes records), so the index must hold distinct offsets inside the
 * file. `source` (the .idx URL) names the file in errors.
 */
export function createRecordLocator(
  index: readonly IndexedRecord[],
  fileSizeBytes: number,
  source = 'index',
): RecordLocator {
  const offsets = index.map((entry) => entry.offset);
  const ends = recordEnds(offsets, fileSizeBytes, source);
  const inFileOrder = offsets.every((offset, i) => i === 0 || offset > offsets[i - 1]!);
  const sampleAt = (sample: number): number => {
    if (!Number.isInteger(sample) || sample < 0 || sample >= offsets.length) {
      throw new ClusterError(
        'INTERNAL',
        `${source}: sample ${sample} is outside the ${offsets.length} indexed records`,
      );
    }
    return sample;
  };
  return Object.freeze({
    numRecords: offsets.length,
    offsetsOf: (samples: ArrayLike<number>) => Array.from(samples, (s) => offsets[sampleAt(s)]!),
    byteRangesOf: (samples: ArrayLike<number>) =>
      Array.from(samples, (s) => ({ start: offsets[sampleAt(s)]!, end: ends[sampleAt(s)]! })),
    byteRangeOf(range: SampleRange): ByteRange {
      if (!inFileOrder) {
        throw new ClusterError(
          'RECORDIO',
          `${source}: offsets are not in file order, so sample ranges are not byte ranges`,
        );
      }
      checkInteger('range.end', range.end, 0, offsets.length);
      checkInteger('range.start', range.start, 0, range.end);
      const at = (i: number) => (i < offsets.length ? offsets[i]! : fileSizeBytes);
      return { start: at(range.start), end: at(range.end) };
    },
  });
}

/** For each entry, the next larger offset (or the file size); errors on duplicates or offsets past the end. */
function recordEnds(offsets: readonly number[], fileSizeBytes: number, source: string): number[] {
  const byOffset = offsets.map((_, i) => i).sort((a, b) => offsets[a]! - offsets[b]!);
  const ends = new Array<number>(offsets.length);
  for (let k = 0; k < byOffset.length; k++) {
    const i = byOffset[k]!;
    const offset = offsets[i]!;
    if (!Number.isSafeInteger(offset) || offset < 0 || offset >= fileSizeBytes) {
      throw new RecordIOError(source, offset, `entry ${i} points outside the ${fileSizeBytes}-byte file`);
    }
    const next = k + 1 < byOffset.length ? offsets[byOffset[k + 1]!]! : fileSizeBytes;
    if (next === offset)
      throw new RecordIOError(source, offset, `entries ${i} and ${byOffset[k + 1]} share an offset`);
    ends[i] = next;
  }
  return ends;
}
