import { createRng, RNG_STREAM } from '../../../shared/random.js';
import type { RingAllReduceOptions, RingStats } from '../../../worker/allreduce/ring.js';
import { ringAllReduce } from '../../../worker/allreduce/ring.js';
import type { RingTransport } from '../../../worker/allreduce/transport.js';

/** Values k/1024 with |k| < 2048: sums over a few ranks are exact in float32, in any order. */
export function rankInputs(size: number, length: number, seed = 7): Float32Array[] {
  return Array.from({ length: size }, (_, rank) => {
    const rng = createRng(seed, RNG_STREAM.test, rank);
    return Float32Array.from({ length }, () => (rng.int(4096) - 2048) / 1024);
  });
}

export function exactSum(inputs: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(inputs[0]?.length ?? 0);
  for (const x of inputs) for (let i = 0; i < x.length; i++) out[i]! += x[i]!;
  return out;
}

/** Starts ringAllReduce for one rank of `transports` (generation 0, round 0 unless overridden). */
export function reduceRank(
  transports: readonly RingTransport[],
  rank: number,
  buffer: Float32Array,
  options: Partial<RingAllReduceOptions> & { signal: AbortSignal },
): Promise<RingStats> {
  return ringAllReduce(buffer, {
    rank,
    size: transports.length,
    generation: 0,
    round: 0,
    transport: transports[rank]!,
    ...options,
  });
}

/** Runs ringAllReduce on every rank at once, each over its own copy of its input. */
export async function runRing(
  transports: readonly RingTransport[],
  inputs: readonly Float32Array[],
  options: Partial<RingAllReduceOptions> & { signal: AbortSignal },
): Promise<{ buffers: Float32Array[]; stats: RingStats[] }> {
  const buffers = inputs.map((x) => x.slice());
  const stats = await Promise.all(
    buffers.map((buffer, rank) => reduceRank(transports, rank, buffer, options)),
  );
  return { buffers, stats };
}

/** Settles every promise, or fails with `message` if that takes longer than `ms` (a deadline, not a sleep). */
export async function settleWithin<T>(promises: Promise<T>[], ms: number, message: string) {
  let timer: NodeJS.Timeout | undefined;
  const overdue = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${message}: not settled within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([Promise.allSettled(promises), overdue]);
  } finally {
    clearTimeout(timer);
  }
}

/** Index of the first element where `a` and `b` differ (NaN-safe), or -1; cheaper than deepEqual on big arrays. */
export function firstMismatch(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return i;
  return -1;
}
