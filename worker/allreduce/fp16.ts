/**
 * IEEE 754 binary16 ("fp16") conversion for `--gradient-compression fp16`: values travel as
 * half floats, sums are computed in float32. Pure functions over typed arrays (Node 20 has no
 * Float16Array or Math.f16round).
 *
 * Rounding is to nearest, ties to even (the bit logic of numpy's npy_floatbits_to_halfbits).
 * Magnitudes above 65504 (the largest half) become ±Infinity, NaN stays NaN, magnitudes below
 * 2^-25 become ±0.
 *
 * Error bound of a compressed ring all-reduce over N ranks. Each partial sum is rounded to half
 * before it is sent (N-1 times in reduce-scatter) and the owner rounds the complete sum once
 * more before the all-gather, so every value passes N roundings of relative error at most
 * u = 2^-11 (absolute 2^-25 near zero), each applied to a partial sum bounded by sum|x_i|:
 *   |result - exact| <= N * (2^-11 * sum_i |x_i| + 2^-25)      (while no partial sum exceeds 65504)
 * The float32 additions add at most N * 2^-24 * sum|x_i|, which the bound absorbs below
 * (fp16ErrorBound adds it explicitly). All ranks end with bit-identical results.
 */

/** Unit roundoff of binary16 (half of the spacing at 1). */
export const F16_UNIT_ROUNDOFF = 2 ** -11;
/** Largest finite binary16 value. */
export const F16_MAX = 65504;

/** Float32 value of every half bit pattern. */
const HALF_TO_FLOAT = buildHalfTable();

function buildHalfTable(): Float32Array {
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    let v: number;
    if (exp === 0) v = mant * 2 ** -24;
    else if (exp === 31) v = mant === 0 ? Infinity : NaN;
    else v = (1 + mant / 1024) * 2 ** (exp - 15);
    table[h] = sign * v;
  }
  return table;
}

/** Half bit pattern of the float32 whose bits are `f`, rounded to nearest even. */
export function floatBitsToHalf(f: number): number {
  const sign = (f >>> 16) & 0x8000;
  const exp = f & 0x7f800000;
  if (exp >= 0x47800000) {
    // Overflow, infinity or NaN (a NaN keeps a non-zero mantissa).
    if (exp === 0x7f800000 && (f & 0x007fffff) !== 0) return sign | 0x7e00;
    return sign | 0x7c00;
  }
  if (exp <= 0x38000000) {
    // Subnormal half or zero.
    if (exp < 0x33000000) return sign;
    const e = exp >>> 23;
    let sig = (0x00800000 | (f & 0x007fffff)) >>> (113 - e);
    if ((sig & 0x3fff) !== 0x1000 || (f & 0x7ff) !== 0) sig += 0x1000;
    return sign | (sig >>> 13);
  }
  let sig = f & 0x007fffff;
  if ((sig & 0x3fff) !== 0x1000) sig += 0x1000;
  // A carry out of the mantissa increments the exponent, up to infinity: both are correct.
  return sign | (((exp - 0x38000000) >>> 13) + (sig >>> 13));
}

function bitsOf(values: Float32Array): Uint32Array {
  return new Uint32Array(values.buffer, values.byteOffset, values.length);
}

/** Half bit patterns of `values` (a new array). */
export function encodeF16(values: Float32Array): Uint16Array {
  const bits = bitsOf(values);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < bits.length; i++) out[i] = floatBitsToHalf(bits[i]!);
  return out;
}

/** Rounds every value to the nearest half, in place (what a receiver of encodeF16 would see). */
export function roundToF16InPlace(values: Float32Array): void {
  const bits = bitsOf(values);
  for (let i = 0; i < bits.length; i++) values[i] = HALF_TO_FLOAT[floatBitsToHalf(bits[i]!)]!;
}

/** dst[i] += half(src[i]) */
export function addF16Into(dst: Float32Array, src: Uint16Array): void {
  for (let i = 0; i < src.length; i++) dst[i]! += HALF_TO_FLOAT[src[i]!]!;
}

/** dst[i] = half(src[i]) */
export function copyF16Into(dst: Float32Array, src: Uint16Array): void {
  for (let i = 0; i < src.length; i++) dst[i] = HALF_TO_FLOAT[src[i]!]!;
}

export function halfToFloat(h: number): number {
  return HALF_TO_FLOAT[h & 0xffff]!;
}

/** Largest |result - exact| of an fp16-compressed all-reduce over `size` ranks (see above). */
export function fp16ErrorBound(size: number, sumAbs: number): number {
  return size * ((F16_UNIT_ROUNDOFF + 2 ** -24) * sumAbs + 2 ** -25);
}
