import { createHash } from 'node:crypto';
import { ConfigError } from '../../shared/errors.js';
import { type RingAllReduceOptions, type RingStats, ringAllReduce, runLimited } from './ring.js';

/**
 * Gradient buckets: the training step packs every gradient into one flat Float32Array (Horovod's
 * fusion buffer, worker/train/tensor-pack.ts); here it is cut into fixed-size buckets that are
 * all-reduced one after another, each bucket pipelined internally by the ring.
 *
 * Workers must agree on the layout before any bytes move: `layoutHash` hashes the names, shapes
 * and dtypes of the packed tensors, `planBuckets` folds it together with the bucket size into
 * `plan.hash`, and the peer handshake (OpenRing) refuses a neighbour whose hash differs.
 */
export const DEFAULT_BUCKET_BYTES = 25 * 1024 * 1024;

export interface LayoutEntry {
  name: string;
  shape: readonly number[];
  dtype: string;
}

export interface Bucket {
  index: number;
  /** Element offset in the flat buffer. */
  offset: number;
  /** Elements in the bucket (the last one may be shorter). */
  length: number;
}

export interface BucketPlan {
  totalElements: number;
  bucketElements: number;
  buckets: readonly Bucket[];
  /** Hash of the layout and the bucketing; equal on every worker of a ring. */
  hash: string;
}

/** Hex SHA-256 (first 16 bytes) of the ordered (name, shape, dtype) list. */
export function layoutHash(entries: readonly LayoutEntry[]): string {
  const canonical = JSON.stringify(entries.map((e) => [e.name, [...e.shape], e.dtype]));
  return createHash('sha256').update(canonical).digest('hex').slice(0, 32);
}

/** Cuts `totalElements` float32 values into buckets of `bucketBytes` (default 25 MiB). */
export function planBuckets(
  totalElements: number,
  options: { bucketBytes?: number; layoutHash?: string } = {},
): BucketPlan {
  const bucketBytes = options.bucketBytes ?? DEFAULT_BUCKET_BYTES;
  const problems: string[] = [];
  if (!Number.isSafeInteger(totalElements) || totalElements < 0)
    problems.push(`totalElements: expected an integer >= 0, got ${totalElements}`);
  if (!Number.isSafeInteger(bucketBytes) || bucketBytes < 4)
    problems.push(`bucketBytes: expected an integer >= 4, got ${bucketBytes}`);
  if (problems.length > 0) throw new ConfigError(problems.map((p) => `planBuckets ${p}`));
  const bucketElements = Math.floor(bucketBytes / 4);
  const buckets: Bucket[] = [];
  for (let offset = 0; offset < totalElements; offset += bucketElements) {
    buckets.push({ index: buckets.length, offset, length: Math.min(bucketElements, totalElements - offset) });
  }
  const hash = createHash('sha256')
    .update(`${options.layoutHash ?? ''}|${totalElements}|${bucketElements}`)
    .digest('hex')
    .slice(0, 32);
  return { totalElements, bucketElements, buckets, hash };
}

/**
 * All-reduces `buffer` bucket by bucket (messages are tagged with the bucket index). Runs at most
 * `maxBucketsInFlight` buckets at once (default 2: the tail of one overlaps the head of the next).
 */
export async function allReduceBuckets(
  buffer: Float32Array,
  plan: BucketPlan,
  options: Omit<RingAllReduceOptions, 'bucket'> & { maxBucketsInFlight?: number },
): Promise<RingStats> {
  if (buffer.length !== plan.totalElements) {
    throw new ConfigError([
      `allReduceBuckets: buffer has ${buffer.length} elements but the bucket plan expects ${plan.totalElements}`,
    ]);
  }
  const total: RingStats = { bytesSent: 0, bytesReceived: 0, messages: 0 };
  const stop = new AbortController();
  const signal = AbortSignal.any([options.signal, stop.signal]);
  let firstError: unknown;
  let finished = 0;
  const fail = (err: unknown) => {
    firstError ??= err;
    stop.abort(err);
  };
  const reduceBucket = async (index: number) => {
    const b = plan.buckets[index]!;
    const view = buffer.subarray(b.offset, b.offset + b.length);
    const stats = await ringAllReduce(view, { ...options, signal, bucket: b.index });
    total.bytesSent += stats.bytesSent;
    total.bytesReceived += stats.bytesReceived;
    total.messages += stats.messages;
    finished++;
  };
  await runLimited(plan.buckets.length, options.maxBucketsInFlight ?? 2, signal, reduceBucket, fail);
  if (firstError !== undefined) throw firstError;
  if (finished < plan.buckets.length) throw signal.reason;
  return total;
}
