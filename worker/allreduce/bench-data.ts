import { createRng, RNG_STREAM } from '../../shared/random.js';
import { fp16ErrorBound } from './fp16.js';
import type { GradientCompression } from './ring.js';

/**
 * Deterministic inputs of `bench allreduce` and the check of its result (pure). Every value is
 * k/1024 with k in [-2048, 2048): a sum over up to 2^11 ranks needs at most 23 significant bits,
 * so float32 holds it exactly whatever the order of the additions, and an uncompressed all-reduce
 * must match the exact sum bit for bit.
 */
export function benchValues(seed: number, rank: number, length: number): Float32Array {
  const rng = createRng(seed, RNG_STREAM.test, rank);
  const out = new Float32Array(length);
  for (let i = 0; i < length; i++) out[i] = ((rng.nextUint32() & 4095) - 2048) / 1024;
  return out;
}

export interface ExpectedSum {
  sum: Float32Array;
  /** Sum of |x| per element; only kept when the check needs it (fp16). */
  sumAbs: Float32Array | undefined;
}

/** The exact all-reduce result of `size` ranks' benchValues. */
export function expectedSum(seed: number, size: number, length: number, withAbs: boolean): ExpectedSum {
  const sum = new Float32Array(length);
  const sumAbs = withAbs ? new Float32Array(length) : undefined;
  for (let rank = 0; rank < size; rank++) {
    const x = benchValues(seed, rank, length);
    for (let i = 0; i < length; i++) sum[i]! += x[i]!;
    if (sumAbs) for (let i = 0; i < length; i++) sumAbs[i]! += Math.abs(x[i]!);
  }
  return { sum, sumAbs };
}

export interface SumCheck {
  ok: boolean;
  /** First element outside the allowed error, or -1. */
  firstBad: number;
  maxAbsError: number;
}

/** Exact equality without compression; within fp16ErrorBound with it. */
export function checkSum(
  result: Float32Array,
  expected: ExpectedSum,
  size: number,
  compression: GradientCompression,
): SumCheck {
  let firstBad = -1;
  let maxAbsError = 0;
  const { sum, sumAbs } = expected;
  for (let i = 0; i < result.length; i++) {
    if (result[i] === sum[i]) continue; // the common case, exact in both modes
    const err = Math.abs(result[i]! - sum[i]!);
    if (err > maxAbsError || Number.isNaN(err)) maxAbsError = err;
    const allowed = compression === 'fp16' ? fp16ErrorBound(size, sumAbs![i]!) : 0;
    if (firstBad < 0 && !(err <= allowed)) firstBad = i;
  }
  return { ok: firstBad < 0 && result.length === expected.sum.length, firstBad, maxAbsError };
}
