/**
 * Separable resampling of 8-bit RGB images (pure): scales a W x H image to scaledWidth x scaledHeight
 * and produces only the pixels of one region of the scaled image, never the whole of it.
 *
 * Geometry: the centre convention of libvips and Pillow. Output pixel u (centre u + 0.5) samples the
 * source at c = (u + 0.5) * W / scaledWidth, whose pixel i has its centre at i + 0.5, so an image point
 * x lands on x * scaledWidth / W, the mapping placement.ts gives the boxes.
 *
 * Weights, per axis (kernels below; `nearest` takes the source pixel under the centre):
 *   - shrinking by f = W / scaledWidth > 1 widens the kernel by f (support * f, weights of
 *     kernel((i + 0.5 - c) / f)): antialiasing, as libvips reduce and Pillow do;
 *   - taps outside the image are clamped to the edge pixel (their weight moves onto it);
 *   - the weights of each output pixel are normalised to sum to 1, so a constant image stays constant;
 *   - an axis whose size does not change is copied (libvips and Pillow skip a resize to the same size;
 *     mitchell, which blurs, would otherwise change pixels at scale 1).
 * Order: the horizontal pass runs over only the source rows the vertical taps reach, into float32
 * rows; the vertical pass sums those rows. Every sum adds its taps one after another from the first
 * (zero-weight padding adds exact zeros), so a pixel does not depend on which region was asked for:
 * a region is exactly that crop of the whole scaled image. Results are rounded half to even and
 * clamped to 0..255 (a Uint8ClampedArray store). All arithmetic is IEEE double or float32 in a fixed
 * order, so pixels are the same on every machine.
 */
import type { Interpolation } from './augment.js';
import type { PixelRect } from './crop.js';

/** Row-major RGB, width * height * 3 bytes. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

interface Kernel {
  /** Half-width of the kernel at scale 1, in source pixels. */
  support: number;
  weight(t: number): number;
}

/** Mitchell-Netravali's cubic family; (0, 1/2) is Catmull-Rom (libvips' VIPS_KERNEL_CUBIC). */
function bcCubic(b: number, c: number): Kernel {
  const p = [(6 - 2 * b) / 6, 0, (-18 + 12 * b + 6 * c) / 6, (12 - 9 * b - 6 * c) / 6];
  const q = [(8 * b + 24 * c) / 6, (-12 * b - 48 * c) / 6, (6 * b + 30 * c) / 6, (-b - 6 * c) / 6];
  return {
    support: 2,
    weight(t) {
      const x = Math.abs(t);
      if (x < 1) return p[0]! + x * x * (p[2]! + x * p[3]!);
      if (x < 2) return q[0]! + x * (q[1]! + x * (q[2]! + x * q[3]!));
      return 0;
    },
  };
}

function sinc(x: number): number {
  if (x === 0) return 1;
  const px = Math.PI * x;
  return Math.sin(px) / px;
}

const KERNELS: Readonly<Record<Exclude<Interpolation, 'nearest'>, Kernel>> = Object.freeze({
  linear: { support: 1, weight: (t: number) => Math.max(0, 1 - Math.abs(t)) },
  cubic: bcCubic(0, 0.5),
  mitchell: bcCubic(1 / 3, 1 / 3),
  lanczos3: { support: 3, weight: (t: number) => (Math.abs(t) < 3 ? sinc(t) * sinc(t / 3) : 0) },
});

/**
 * The taps of a run of output pixels along one axis: output pixel k (of starts.length) sums the `taps`
 * consecutive source pixels from starts[k], weighted by weights[k * taps ...]. Every pixel has the same
 * number of taps (zero weights pad the shorter ones, and a window that would run past the last source
 * pixel starts earlier instead), so the passes below run without per-pixel bounds.
 */
export interface AxisTaps {
  starts: Int32Array;
  taps: number;
  weights: Float64Array;
  /**
   * Lowest and highest source index any tap reads. Not starts[0] and the last start: starts can step
   * back by one where a pixel's centre falls exactly on a source pixel's (at odd enlargement ratios
   * cubic then weighs its +-1 and +-2 taps exactly 0, so that pixel starts at the centre pixel itself).
   */
  first: number;
  last: number;
}

/** The most taps one output pixel can have: the kernel's reach both sides, and never more than `size`. */
function tapBound(kind: Interpolation, size: number, scaledSize: number): number {
  if (kind === 'nearest' || scaledSize === size) return 1;
  const reach = KERNELS[kind].support * Math.max(1, size / scaledSize);
  return Math.min(size, 2 * Math.ceil(reach) + 1);
}

/**
 * One output pixel's weights, written to w[at ...]: edge-clamped into 0..n-1, zero weights at either
 * end (a tap exactly one support away) dropped, normalised. Returns the first source index and the
 * number of weights.
 */
function pixelWeights(
  kernel: Kernel,
  centre: number,
  factor: number,
  n: number,
  w: Float64Array,
  at: number,
) {
  const reach = kernel.support * factor;
  const lo = Math.ceil(centre - 0.5 - reach);
  const hi = Math.floor(centre - 0.5 + reach);
  const from = Math.min(n - 1, Math.max(0, lo));
  const to = Math.max(0, Math.min(n - 1, hi));
  w.fill(0, at, at + to - from + 1);
  let total = 0;
  for (let i = lo; i <= hi; i++) {
    const weight = kernel.weight((i + 0.5 - centre) / factor);
    const tap = at + Math.min(to, Math.max(from, i)) - from;
    w[tap] = w[tap]! + weight;
    total += weight;
  }
  let begin = at;
  let end = at + to - from + 1;
  while (end - begin > 1 && w[begin] === 0) begin++;
  while (end - begin > 1 && w[end - 1] === 0) end--;
  for (let i = begin; i < end; i++) w[i - begin + at] = w[i]! / total;
  return { start: from + begin - at, length: end - begin };
}

/**
 * Taps for output pixels from .. from + count - 1 of an axis scaled from `size` to `scaledSize`
 * source pixels with `kind`.
 */
export function axisTaps(
  size: number,
  scaledSize: number,
  from: number,
  count: number,
  kind: Interpolation,
): AxisTaps {
  const bound = tapBound(kind, size, scaledSize);
  const loose = new Float64Array(count * bound).fill(1);
  const begins = new Int32Array(count);
  const lengths = new Int32Array(count).fill(1);
  for (let k = 0; k < count; k++) {
    const u = from + k;
    if (bound === 1) {
      // Nearest or a copy: floor((u + 0.5) * size / scaledSize), in integers (exact at pixel edges).
      begins[k] = Math.min(size - 1, Math.max(0, Math.floor(((2 * u + 1) * size) / (2 * scaledSize))));
    } else {
      const factor = Math.max(1, size / scaledSize);
      const centre = ((u + 0.5) * size) / scaledSize;
      const one = pixelWeights(KERNELS[kind as keyof typeof KERNELS], centre, factor, size, loose, k * bound);
      begins[k] = one.start;
      lengths[k] = one.length;
    }
  }
  return packTaps(size, begins, lengths, loose, bound);
}

/** The same taps with one count for all: pixels' weights padded with zeros, windows kept in 0..n-1. */
function packTaps(n: number, begins: Int32Array, lengths: Int32Array, loose: Float64Array, bound: number) {
  const count = begins.length;
  const taps = lengths.reduce((most, n) => Math.max(most, n), 1);
  const starts = new Int32Array(count);
  const weights = new Float64Array(count * taps);
  let first = n;
  let lastStart = 0;
  for (let k = 0; k < count; k++) {
    starts[k] = Math.min(begins[k]!, n - taps);
    first = Math.min(first, starts[k]!);
    lastStart = Math.max(lastStart, starts[k]!);
    const at = k * taps + begins[k]! - starts[k]!;
    weights.set(loose.subarray(k * bound, k * bound + lengths[k]!), at);
  }
  return { starts, taps, weights, first: count === 0 ? 0 : first, last: lastStart + taps - 1 };
}

/**
 * About how many multiply-adds resampleRegion spends (3 channels, both passes): callers compare it with
 * what a native resize would cost. Pure arithmetic on the sizes, no taps computed.
 */
export function resampleWork(
  src: { width: number; height: number },
  scaledWidth: number,
  scaledHeight: number,
  region: PixelRect,
  kind: Interpolation,
): number {
  const tx = tapBound(kind, src.width, scaledWidth);
  const ty = tapBound(kind, src.height, scaledHeight);
  const rows = Math.min(src.height, Math.ceil((region.height * src.height) / scaledHeight) + ty);
  return 3 * region.width * (rows * tx + region.height * ty);
}

/** Intermediate rows up to this many floats (1 MiB) reuse one buffer: fewer allocations and GCs. */
const SCRATCH_FLOATS = 1 << 18;
let scratch = new Float32Array(0);

/** A float buffer of `length`, contents unspecified; valid until the next call (passes are synchronous). */
function scratchFloats(length: number): Float32Array {
  if (length > SCRATCH_FLOATS) return new Float32Array(length);
  if (scratch.length < length) scratch = new Float32Array(SCRATCH_FLOATS);
  return scratch.subarray(0, length);
}

/** Rows first..first+rows-1 of `src`, each resampled along x: rows * xs.starts.length * 3 floats. */
function horizontalPass(src: RgbImage, xs: AxisTaps, first: number, rows: number): Float32Array {
  const { starts, taps, weights } = xs;
  const count = starts.length;
  const data = src.data;
  const mid = scratchFloats(rows * count * 3);
  const grouped = taps - (taps % 4);
  let o = 0;
  for (let r = 0; r < rows; r++) {
    const row = (first + r) * src.width * 3;
    for (let k = 0; k < count; k++) {
      let s = row + starts[k]! * 3;
      let w = k * taps;
      const groupsEnd = w + grouped;
      const end = w + taps;
      let a0 = 0;
      let a1 = 0;
      let a2 = 0;
      // Four taps at a time (unrolled), then the rest one by one.
      for (; w < groupsEnd; w += 4, s += 12) {
        const p = weights[w]!;
        const q = weights[w + 1]!;
        const x = weights[w + 2]!;
        const y = weights[w + 3]!;
        a0 = a0 + p * data[s]! + q * data[s + 3]! + x * data[s + 6]! + y * data[s + 9]!;
        a1 = a1 + p * data[s + 1]! + q * data[s + 4]! + x * data[s + 7]! + y * data[s + 10]!;
        a2 = a2 + p * data[s + 2]! + q * data[s + 5]! + x * data[s + 8]! + y * data[s + 11]!;
      }
      for (; w < end; w++, s += 3) {
        const p = weights[w]!;
        a0 += p * data[s]!;
        a1 += p * data[s + 1]!;
        a2 += p * data[s + 2]!;
      }
      mid[o++] = a0;
      mid[o++] = a1;
      mid[o++] = a2;
    }
  }
  return mid;
}

/**
 * dst[at + e] = (sum ? sum[e] : 0) + the four rows of `mid` from rows[i] weighted by w[i], for e in
 * 0..length-1 (a missing tap has weight 0 and repeats a row).
 */
function sumFourRows(
  mid: Float32Array,
  rows: Int32Array,
  w: Float64Array,
  length: number,
  sum: Float64Array | null,
  dst: Float64Array | Uint8ClampedArray,
  at: number,
): void {
  // Plain locals, not array destructuring: V8 does not always elide the temporary array.
  const r0 = rows[0]!;
  const r1 = rows[1]!;
  const r2 = rows[2]!;
  const r3 = rows[3]!;
  const w0 = w[0]!;
  const w1 = w[1]!;
  const w2 = w[2]!;
  const w3 = w[3]!;
  if (sum === null && w0 === 1 && w1 === 0 && w2 === 0 && w3 === 0) {
    for (let e = 0; e < length; e++) dst[at + e] = mid[r0 + e]!;
  } else if (sum === null) {
    for (let e = 0; e < length; e++)
      dst[at + e] = w0 * mid[r0 + e]! + w1 * mid[r1 + e]! + w2 * mid[r2 + e]! + w3 * mid[r3 + e]!;
  } else {
    for (let e = 0; e < length; e++)
      dst[at + e] = sum[e]! + w0 * mid[r0 + e]! + w1 * mid[r1 + e]! + w2 * mid[r2 + e]! + w3 * mid[r3 + e]!;
  }
}

/**
 * Sums the rows of `mid` (row 0 is source row ys.first) along y into `out`, four taps per sweep of an
 * output row; with more than four taps the partial sums go through a float64 row.
 */
function verticalPass(mid: Float32Array, ys: AxisTaps, rowLength: number, out: Uint8ClampedArray): void {
  const { starts, taps, weights } = ys;
  const sum = taps > 4 ? new Float64Array(rowLength) : null;
  const rows = new Int32Array(4);
  const w = new Float64Array(4);
  for (let v = 0; v < starts.length; v++) {
    const base = (starts[v]! - ys.first) * rowLength;
    for (let g = 0; g < taps; g += 4) {
      for (let i = 0; i < 4; i++) {
        const t = g + i < taps ? g + i : g;
        rows[i] = base + t * rowLength;
        w[i] = g + i < taps ? weights[v * taps + t]! : 0;
      }
      const last = g + 4 >= taps;
      const dst = last ? out : sum!;
      sumFourRows(mid, rows, w, rowLength, g === 0 ? null : sum, dst, last ? v * rowLength : 0);
    }
  }
}

/** Single taps on both axes (nearest, or a copy): each output pixel is one source pixel. */
function gatherPixels(src: RgbImage, columns: Int32Array, rows: Int32Array, out: Uint8Array): void {
  const data = src.data;
  let o = 0;
  for (let v = 0; v < rows.length; v++) {
    const row = rows[v]! * src.width * 3;
    for (let k = 0; k < columns.length; k++) {
      const s = row + columns[k]! * 3;
      out[o++] = data[s]!;
      out[o++] = data[s + 1]!;
      out[o++] = data[s + 2]!;
    }
  }
}

/**
 * `region` of `src` scaled to scaledWidth x scaledHeight with `kind`, as region.width * region.height * 3
 * bytes of RGB; written into `out` when given (it must have that length).
 */
export function resampleRegion(
  src: RgbImage,
  scaledWidth: number,
  scaledHeight: number,
  region: PixelRect,
  kind: Interpolation,
  out: Uint8Array = new Uint8Array(region.width * region.height * 3),
): Uint8Array {
  const inside =
    region.x >= 0 &&
    region.y >= 0 &&
    region.x + region.width <= scaledWidth &&
    region.y + region.height <= scaledHeight;
  if (
    !inside ||
    out.length !== region.width * region.height * 3 ||
    src.data.length !== src.width * src.height * 3
  ) {
    throw new RangeError(
      `resampleRegion: ${src.width}x${src.height} source of ${src.data.length} bytes scaled to ` +
        `${scaledWidth}x${scaledHeight}, region ${JSON.stringify(region)} into ${out.length} bytes`,
    );
  }
  if (region.width === 0 || region.height === 0) return out;
  const xs = axisTaps(src.width, scaledWidth, region.x, region.width, kind);
  const ys = axisTaps(src.height, scaledHeight, region.y, region.height, kind);
  if (xs.taps === 1 && ys.taps === 1) {
    gatherPixels(src, xs.starts, ys.starts, out);
    return out;
  }
  const mid = horizontalPass(src, xs, ys.first, ys.last - ys.first + 1);
  verticalPass(mid, ys, region.width * 3, new Uint8ClampedArray(out.buffer, out.byteOffset, out.length));
  return out;
}

/** The whole of `src` scaled to width x height: resampleRegion with a region that covers it all. */
export function resampleImage(src: RgbImage, width: number, height: number, kind: Interpolation): Uint8Array {
  return resampleRegion(src, width, height, { x: 0, y: 0, width, height }, kind);
}
