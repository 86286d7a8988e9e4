/**
 * Ring all-reduce driver (async, transport-agnostic).
 *
 * Protocol, for N ranks summing a buffer of L float32 values in place:
 *  1. The buffer is cut into N segments by chunkBounds(L, N) (sizes differ by at most one), and
 *     every segment into columns of at most `chunkBytes` (schedule.ts). Columns are independent
 *     rings: column c of every segment only ever meets column c of the same segment.
 *  2. Every column runs 2(N-1) steps. At step s the rank sends the column of segment
 *     ringStep(s).sendSegment to its right neighbour and receives the column of
 *     ringStep(s).recvSegment from its left neighbour, tagged (generation, round, step, bucket,
 *     chunk = column, offset).
 *  3. Steps 0..N-2 (reduce-scatter): the received values are ADDED into the buffer. After step N-2
 *     rank r holds the complete sum of segment r+1.
 *  4. Steps N-1..2N-3 (all-gather): the received values OVERWRITE the buffer. The segment sent at
 *     step s+1 is the one received at step s, so each send waits for the previous receive.
 *  5. Pipelining: up to `maxInFlight` columns run concurrently, so while one column is on the
 *     wire another is being summed. Within a column, the send of step s and the receive of step s
 *     overlap (they touch different segments when N >= 2). Nothing is modified before the
 *     transport has released the bytes that were sent from it (sendRight resolved). A receive
 *     posted before its message arrives takes the bytes as they come (recvLeftInto and
 *     range-receiver.ts): they are summed or copied while still in cache, and never held.
 *  6. fp16 compression: each message is rounded to binary16 before it is sent; sums stay float32.
 *     At step N-1 the owner rounds its complete segment in place before sending it, so every rank
 *     ends with the same bits (error bound in fp16.ts).
 *  7. Failure: the first error (peer lost, stale generation, protocol, deadline, caller's abort)
 *     aborts all columns of this call; the call settles only after every column has stopped, and
 *     no byte reaches the buffer after that. A message whose header does not match the expected
 *     offset, length or dtype is a PROTOCOL error before any of its bytes is applied.
 */
import { setMaxListeners } from 'node:events';
import { type Deadline, deadline } from '../../shared/abort.js';
import { ClusterError, ConfigError } from '../../shared/errors.js';
import { copyF16Into, encodeF16 } from './fp16.js';
import { RangeReceiver } from './range-receiver.js';
import {
  chunkBounds,
  columnCount,
  columnRange,
  neighbours,
  type Range,
  ringStep,
  ringStepCount,
} from './schedule.js';
import {
  type ChunkDtype,
  type ChunkKey,
  type ChunkMsg,
  feedPayload,
  type RingTransport,
} from './transport.js';

export type GradientCompression = 'none' | 'fp16';

/**
 * 2 MiB: bench allreduce (2 ranks, 64 MiB) spends ~80 ms CPU per all-reduce and rank with 1 MiB
 * messages, ~68 with 2 or 4 MiB; smaller messages cost per-message work on both ends.
 */
export const DEFAULT_CHUNK_BYTES = 2 * 1024 * 1024;
export const MAX_CHUNK_BYTES = 16 * 1024 * 1024;
export const DEFAULT_MAX_IN_FLIGHT = 8;
export const DEFAULT_RING_TIMEOUT_MS = 60_000;

export interface RingAllReduceOptions {
  rank: number;
  size: number;
  generation: number;
  /** Which all-reduce call of the generation; tags every message. */
  round: number;
  /** Bucket index when a larger buffer is reduced bucket by bucket (default 0). */
  bucket?: number;
  transport: RingTransport;
  signal: AbortSignal;
  compression?: GradientCompression;
  /** Float32 bytes per message before compression (default 2 MiB, at most 16 MiB). */
  chunkBytes?: number;
  /** Columns in flight (default 8). */
  maxInFlight?: number;
  /** Deadline of the whole call (default 60 s); exceeding it is a TIMEOUT naming the missing chunk. */
  timeoutMs?: number;
}

export interface RingStats {
  bytesSent: number;
  bytesReceived: number;
  messages: number;
}

interface Run {
  buffer: Float32Array;
  opts: Required<Omit<RingAllReduceOptions, 'signal'>>;
  segments: Range[];
  chunkElements: number;
  signal: AbortSignal;
  limit: Deadline;
  stats: RingStats;
  /** Records the first error and aborts every column (idempotent). */
  fail(err: unknown): void;
}

/** Sums `buffer` in place across the ring; every rank calls it with the same length and options. */
export async function ringAllReduce(buffer: Float32Array, options: RingAllReduceOptions): Promise<RingStats> {
  const opts = compileOptions(buffer, options);
  const stats: RingStats = { bytesSent: 0, bytesReceived: 0, messages: 0 };
  options.signal.throwIfAborted();
  if (opts.size === 1) return stats;
  const segments = chunkBounds(buffer.length, opts.size);
  const chunkElements = Math.max(1, Math.floor(opts.chunkBytes / 4));
  const columns = Math.max(...segments.map((s) => columnCount(s.end - s.start, chunkElements)));
  const stop = new AbortController();
  const limit = deadline(options.signal, opts.timeoutMs);
  const signal = AbortSignal.any([limit.signal, stop.signal]);
  // Every column in flight waits on it several times (mailbox, send, backpressure).
  setMaxListeners(0, signal);
  let firstError: unknown;
  const fail = (err: unknown) => {
    if (firstError === undefined) {
      firstError = err;
      stop.abort(err);
    }
  };
  const run: Run = { buffer, opts, segments, chunkElements, signal, limit, stats, fail };
  let finished = 0;
  const task = (column: number) => runColumn(run, column).then(() => finished++);
  try {
    await runLimited(columns, opts.maxInFlight, signal, task, fail);
  } finally {
    limit.clear();
  }
  if (firstError !== undefined) throw firstError;
  // Stopped between columns without an error of its own: the caller aborted or time ran out.
  if (finished < columns) throw explain(run, signal.reason, 'finishing');
  return stats;
}

/**
 * Runs task(0 .. count-1) with at most `limit` running at once, taking no new index once `signal`
 * aborts; every failure is passed to `fail`. Resolves when all started tasks have settled.
 */
export async function runLimited(
  count: number,
  limit: number,
  signal: AbortSignal,
  task: (index: number) => Promise<unknown>,
  fail: (err: unknown) => void,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count && !signal.aborted) await task(next++);
  };
  const workers = Math.max(0, Math.min(limit, count));
  await Promise.allSettled(Array.from({ length: workers }, () => worker().catch(fail)));
}

function compileOptions(buffer: Float32Array, o: RingAllReduceOptions): Run['opts'] {
  const problems: string[] = [];
  if (!(buffer instanceof Float32Array)) problems.push('buffer: expected a Float32Array');
  if (!Number.isSafeInteger(o.size) || o.size < 1)
    problems.push(`size: expected an integer >= 1, got ${o.size}`);
  if (!Number.isSafeInteger(o.rank) || o.rank < 0 || o.rank >= o.size)
    problems.push(`rank: expected an integer in [0, ${o.size}), got ${o.rank}`);
  const chunkBytes = o.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 4 || chunkBytes > MAX_CHUNK_BYTES)
    problems.push(`chunkBytes: expected an integer in [4, ${MAX_CHUNK_BYTES}], got ${chunkBytes}`);
  const compression = o.compression ?? 'none';
  if (compression !== 'none' && compression !== 'fp16')
    problems.push(`compression: expected 'none' or 'fp16', got '${compression}'`);
  const maxInFlight = o.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
  if (!Number.isSafeInteger(maxInFlight) || maxInFlight < 1)
    problems.push(`maxInFlight: expected an integer >= 1, got ${maxInFlight}`);
  if (problems.length > 0) throw new ConfigError(problems.map((p) => `ringAllReduce ${p}`));
  return {
    rank: o.rank,
    size: o.size,
    generation: o.generation,
    round: o.round,
    bucket: o.bucket ?? 0,
    transport: o.transport,
    compression,
    chunkBytes,
    maxInFlight,
    timeoutMs: o.timeoutMs ?? DEFAULT_RING_TIMEOUT_MS,
  };
}

async function runColumn(run: Run, column: number): Promise<void> {
  const { rank, size } = run.opts;
  for (let step = 0; step < ringStepCount(size); step++) {
    const { phase, sendSegment, recvSegment } = ringStep(rank, size, step);
    const out = columnRange(run.segments[sendSegment]!, run.chunkElements, column);
    const into = columnRange(run.segments[recvSegment]!, run.chunkElements, column);
    // Both directions of a step run together; the first failure aborts the whole call at once,
    // and the column waits for both to settle so no transfer outlives the call.
    const results = await Promise.allSettled([
      out && guard(run, send(run, step, column, out)),
      into && guard(run, receive(run, step, column, into, phase === 'reduce-scatter')),
    ]);
    for (const r of results) if (r.status === 'rejected') throw r.reason;
  }
}

function guard<T>(run: Run, promise: Promise<T>): Promise<T> {
  return promise.catch((err: unknown) => {
    run.fail(err);
    throw err;
  });
}

async function send(run: Run, step: number, column: number, range: Range): Promise<void> {
  const { opts } = run;
  const view = run.buffer.subarray(range.start, range.end);
  let bytes: Uint8Array;
  let dtype: ChunkDtype = 'f32';
  if (opts.compression === 'fp16') {
    const half = encodeF16(view);
    // Step N-1 sends the owned, complete segment: keep exactly what the others will receive.
    if (step === opts.size - 1) copyF16Into(view, half);
    bytes = new Uint8Array(half.buffer, half.byteOffset, half.byteLength);
    dtype = 'f16';
  } else {
    bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
  }
  const msg: ChunkMsg = { ...keyOf(run, step, column), offset: range.start, dtype, bytes };
  await opts.transport
    .sendRight(msg, run.signal)
    .catch((err: unknown) => Promise.reject(explain(run, err, `sending step ${step} chunk ${column}`)));
  run.stats.bytesSent += bytes.byteLength;
  run.stats.messages++;
}

function keyOf(run: Run, step: number, column: number): ChunkKey {
  const { generation, round, bucket } = run.opts;
  return { generation, round, step, bucket, chunk: column };
}

/** Receives the column of `step` into `range`, summing (reduce-scatter) or copying (all-gather). */
function receive(run: Run, step: number, column: number, range: Range, isReduce: boolean): Promise<void> {
  const { transport, rank, size, compression } = run.opts;
  const receiver = new RangeReceiver({
    buffer: run.buffer,
    range,
    dtype: compression === 'fp16' ? 'f16' : 'f32',
    isReduce,
    sender: `rank ${neighbours(rank, size).left}`,
    onDone: (bytes) => {
      run.stats.bytesReceived += bytes;
    },
  });
  const key = keyOf(run, step, column);
  // A transport that can stream hands the bytes over as they arrive (no buffering in between).
  const received = transport.recvLeftInto
    ? transport.recvLeftInto(key, receiver, run.signal)
    : transport.recvLeft(key, run.signal).then((msg) => feedPayload(receiver, msg));
  return received.catch((err: unknown) =>
    Promise.reject(explain(run, err, `waiting for step ${step} chunk ${column}`)),
  );
}

/** Turns the call's own deadline into a TIMEOUT that names the rank, the wait and the left neighbour. */
function explain(run: Run, err: unknown, waitingFor: string): unknown {
  if (!(run.limit.timedOut && err === run.limit.signal.reason)) return err;
  const { rank, size, timeoutMs, bucket } = run.opts;
  return new ClusterError(
    'TIMEOUT',
    `ring all-reduce: rank ${rank} exceeded its ${timeoutMs} ms deadline on bucket ${bucket} ${waitingFor} ` +
      `(left neighbour rank ${neighbours(rank, size).left}, right neighbour rank ${neighbours(rank, size).right})`,
    { cause: err },
  );
}
