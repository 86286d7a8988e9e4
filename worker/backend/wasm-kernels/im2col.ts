import type { backend_util } from '@tensorflow/tfjs-core';
import { planeLayout, toPhasePlanes } from './stride-phases.js';

/**
 * Pure patch (un)folding for NHWC convolutions, the O(n) half of the backward convolutions; the O(n^2)
 * half runs as one matMul on the backend. Plain typed arrays in and out.
 *
 * Indexing shared by every function here:
 * - output rows r = b * outHeight + oh; a chunk is a range [rowStart, rowEnd) of them, and
 *   m = (r - rowStart) * outWidth + ow is the position inside the chunk;
 * - patch index k = (kh * filterWidth + kw) * inChannels + ci, the row order of an HWIO filter
 *   reshaped to [K, outChannels], so matMul results need no reordering;
 * - input pixel of (oh, ow, kh, kw): ih = oh * strideHeight + kh * dilationHeight - padTop (same for w);
 *   outside the input it reads as zero.
 */
export type ConvInfo = backend_util.Conv2DInfo;

export function patchSize(info: ConvInfo): number {
  return info.filterHeight * info.filterWidth * info.inChannels;
}

/** The first output column whose input column lies inside the image for filter column kw. */
function firstValidColumn(info: ConvInfo, kw: number): number {
  const offset = kw * info.dilationWidth - info.padInfo.left;
  return Math.max(0, Math.ceil(-offset / info.strideWidth));
}

/** The end (exclusive, >= firstValidColumn) of the output columns that read inside the image for kw. */
function endValidColumn(info: ConvInfo, kw: number): number {
  const offset = kw * info.dilationWidth - info.padInfo.left;
  const end = Math.min(info.outWidth, Math.floor((info.inWidth - 1 - offset) / info.strideWidth) + 1);
  return Math.max(firstValidColumn(info, kw), end);
}

/**
 * Channel planes: planes[((b * C + c) * P + rh * phasesW + rw) * height * width + i * width + j] =
 * x[b, i * phasesH + rh, j * phasesW + rw, c] (P = phasesH * phasesW; zero past the input). Without
 * phases that is each image [H * W, C] transposed. In planes a patch-matrix row segment is a run of
 * one plane row, which stride 1 (or a phase plane) turns into a plain copy.
 */
export function toChannelPlanes(x: Float32Array, info: ConvInfo, planes: Float32Array): void {
  const layout = planeLayout(info);
  const pixels = info.inHeight * info.inWidth;
  const imageSize = pixels * info.inChannels;
  if (layout.phasesH === 1 && layout.phasesW === 1) {
    for (let b = 0; b < info.batchSize; b++) {
      const image = x.subarray(b * imageSize, (b + 1) * imageSize);
      transposeMatrix(image, pixels, info.inChannels, planes.subarray(b * imageSize, (b + 1) * imageSize));
    }
    return;
  }
  toPhasePlanes(x, info, layout, planes);
}

/**
 * Writes the transposed patch matrix of output rows [rowStart, rowEnd) from channel planes:
 * heap[outAt + k * M + m] with M = (rowEnd - rowStart) * outWidth, reading heap[planesAt + ...].
 * Both live in one array (the wasm heap) so stride-1 runs move with copyWithin (a memmove).
 * colT · dy is then the filter gradient in HWIO order.
 */
export function im2colTransposed(
  heap: Float32Array,
  planesAt: number,
  info: ConvInfo,
  rowStart: number,
  rowEnd: number,
  outAt: number,
): void {
  const columns = (rowEnd - rowStart) * info.outWidth;
  const layout = planeLayout(info);
  const phases = layout.phasesH * layout.phasesW;
  // Taps read the planes at stride 1 (a phase plane when strided): a plane as tall and wide as the
  // planes, phases counted as channels.
  const planeInfo: ConvInfo =
    phases === 1
      ? info
      : {
          ...info,
          inHeight: layout.height,
          inWidth: layout.width,
          inChannels: info.inChannels * phases,
          strideHeight: 1,
          strideWidth: 1,
        };
  // Stride 1 with input rows as wide as output rows: consecutive output rows read consecutive plane
  // rows at the same pitch, so a run of them is one copy (plus zeroing the padded border columns).
  const rowsAtOnce =
    planeInfo.strideHeight === 1 && planeInfo.strideWidth === 1 && planeInfo.inWidth === info.outWidth;
  // One TapCopy for the whole call, its per-tap fields rewritten for each tap: the loops below run
  // once per tap and output row, and allocate nothing (a row object per call of tapRow was ~10 MB of
  // garbage per training step of the tiny network).
  const copy: TapCopy = {
    heap,
    planesAt,
    info: planeInfo,
    r0: rowStart,
    c: 0,
    first: 0,
    end: 0,
    shift: 0,
    rowShift: 0,
    dstAt: 0,
    row: { dst: 0, reads: false, src: 0, imageEnd: 0, inputRowsLeft: 0 },
  };
  for (let k = 0; k < patchSize(info); k++) {
    const c = k % info.inChannels;
    const tap = (k - c) / info.inChannels;
    const kw = tap % info.filterWidth;
    const kh = (tap - kw) / info.filterWidth;
    // Input offsets u = q * s + r of the tap read phase plane r at plane offset q (without phases,
    // s = 1: the channel plane itself at offset u). The valid output columns are the strided tap's.
    const u = kh * info.dilationHeight - info.padInfo.top;
    const v = kw * info.dilationWidth - info.padInfo.left;
    const rh = mod(u, layout.phasesH);
    const rw = mod(v, layout.phasesW);
    copy.c = (c * layout.phasesH + rh) * layout.phasesW + rw;
    copy.first = firstValidColumn(info, kw);
    copy.end = endValidColumn(info, kw);
    copy.shift = (v - rw) / layout.phasesW;
    copy.rowShift = (u - rh) / layout.phasesH;
    copy.dstAt = outAt + k * columns;
    if (rowsAtOnce) copyTapRuns(copy, rowEnd);
    else copyTapRows(copy, rowEnd);
  }
}

const mod = (a: number, n: number) => ((a % n) + n) % n;

/** One output row of a tap: where it is written (dst) and read (src, at output column 0; may be negative). */
interface TapRow {
  dst: number;
  /** False for a row whose input row is padding (zeroed, nothing to read). */
  reads: boolean;
  src: number;
  /** First output row of the next image. */
  imageEnd: number;
  /** Input rows left in the image from this row's (so rows after it that still read the input). */
  inputRowsLeft: number;
}

/** Patch element k's row of colT over output rows [r0, ...): its channel, valid columns and offsets. */
interface TapCopy {
  heap: Float32Array;
  planesAt: number;
  info: ConvInfo;
  r0: number;
  c: number;
  /** [first, end): the output columns whose input column lies inside the image. */
  first: number;
  end: number;
  /** Input column of output column 0; input row of output row 0 is oh * strideHeight + rowShift. */
  shift: number;
  rowShift: number;
  dstAt: number;
  /** Written by tapRow (reused, so the row loops allocate nothing). */
  row: TapRow;
}

/** Fills t.row for output row r; a row whose input row is padding is zeroed here (reads false). */
function tapRow(t: TapCopy, r: number): TapRow {
  const { info, row } = t;
  const b = Math.floor(r / info.outHeight);
  const ih = (r - b * info.outHeight) * info.strideHeight + t.rowShift;
  row.dst = t.dstAt + (r - t.r0) * info.outWidth;
  if (ih < 0 || ih >= info.inHeight || t.first === t.end) {
    t.heap.fill(0, row.dst, row.dst + info.outWidth);
    row.reads = false;
    return row;
  }
  row.reads = true;
  row.src = t.planesAt + ((b * info.inChannels + t.c) * info.inHeight + ih) * info.inWidth + t.shift;
  row.imageEnd = (b + 1) * info.outHeight;
  row.inputRowsLeft = info.inHeight - ih;
  return row;
}

/** One output row at a time (any stride). */
function copyTapRows(t: TapCopy, r1: number) {
  const { heap, info, first, end } = t;
  const stride = info.strideWidth;
  for (let r = t.r0; r < r1; r++) {
    const { dst, reads, src } = tapRow(t, r);
    if (!reads) continue;
    heap.fill(0, dst, dst + first);
    heap.fill(0, dst + end, dst + info.outWidth);
    if (stride === 1) {
      heap.copyWithin(dst + first, src + first, src + end);
    } else {
      for (let ow = first; ow < end; ow++) heap[dst + ow] = heap[src + ow * stride]!;
    }
  }
}

/**
 * The same for stride 1 and inWidth = outWidth: each run of rows of one image whose input rows exist is
 * one copyWithin; the columns a row reads past its own input row (from the row before or after) are
 * then zeroed, as they are padding.
 */
function copyTapRuns(t: TapCopy, r1: number) {
  const { heap, first, end } = t;
  const width = t.info.outWidth;
  let r = t.r0;
  while (r < r1) {
    const { dst, reads, src, imageEnd, inputRowsLeft } = tapRow(t, r);
    if (!reads) {
      r++;
      continue;
    }
    const runEnd = Math.min(r1, imageEnd, r + inputRowsLeft);
    heap.copyWithin(dst + first, src + first, src + (runEnd - r - 1) * width + end);
    for (let row = dst; row < dst + (runEnd - r) * width; row += width) {
      for (let ow = 0; ow < first; ow++) heap[row + ow] = 0;
      for (let ow = end; ow < width; ow++) heap[row + ow] = 0;
    }
    r = runEnd;
  }
}

/**
 * Adds the patch matrix cols[m * K + k] of rows [rowStart, rowEnd) back onto the image:
 * dx[b, ih, iw, ci] += cols[m, (kh, kw, ci)] (the adjoint of im2col). dy · W^T = cols.
 */
export function col2imAdd(
  cols: Float32Array,
  info: ConvInfo,
  rowStart: number,
  rowEnd: number,
  dx: Float32Array,
): void {
  const { inHeight, inWidth, inChannels: channels, outHeight, outWidth, filterHeight, filterWidth } = info;
  const patch = patchSize(info);
  for (let r = rowStart; r < rowEnd; r++) {
    const b = Math.floor(r / outHeight);
    const oh = r - b * outHeight;
    for (let kh = 0; kh < filterHeight; kh++) {
      const ih = oh * info.strideHeight + kh * info.dilationHeight - info.padInfo.top;
      if (ih < 0 || ih >= inHeight) continue;
      const imageRow = (b * inHeight + ih) * inWidth;
      for (let kw = 0; kw < filterWidth; kw++) {
        const first = firstValidColumn(info, kw);
        const end = endValidColumn(info, kw);
        const iw0 = kw * info.dilationWidth - info.padInfo.left;
        const tap = (kh * filterWidth + kw) * channels;
        for (let ow = first; ow < end; ow++) {
          const src = ((r - rowStart) * outWidth + ow) * patch + tap;
          const dst = (imageRow + ow * info.strideWidth + iw0) * channels;
          for (let c = 0; c < channels; c++) dx[dst + c] = dx[dst + c]! + cols[src + c]!;
        }
      }
    }
  }
}

/** [start, end) ranges of output rows whose patch matrix (floatsPerRow each) fits in `maxFloats`. */
export function rowChunks(totalRows: number, floatsPerRow: number, maxFloats: number): [number, number][] {
  const perChunk = Math.max(1, Math.floor(maxFloats / Math.max(1, floatsPerRow)));
  const chunks: [number, number][] = [];
  for (let start = 0; start < totalRows; start += perChunk) {
    chunks.push([start, Math.min(totalRows, start + perChunk)]);
  }
  return chunks;
}

/** out[j * rows + i] = a[i * cols + j]: a [rows, cols] matrix transposed, in tiles. */
export function transposeMatrix(a: Float32Array, rows: number, cols: number, out: Float32Array): void {
  const tile = 32;
  for (let i0 = 0; i0 < rows; i0 += tile) {
    const iEnd = Math.min(rows, i0 + tile);
    for (let j0 = 0; j0 < cols; j0 += tile) {
      const jEnd = Math.min(cols, j0 + tile);
      for (let i = i0; i < iEnd; i++) {
        for (let j = j0; j < jEnd; j++) out[j * rows + i] = a[i * cols + j]!;
      }
    }
  }
}

/**
 * HWIO filter [kh, kw, in, out] -> the filter of the transposed convolution: rotated 180 degrees in
 * space with in/out swapped, [kh, kw, out, in]. conv(dy, flipped) = dx for stride 1.
 */
export function flipFilter(w: Float32Array, shape: readonly number[], out: Float32Array): void {
  const [kh = 0, kw = 0, inC = 0, outC = 0] = shape;
  const tapSize = inC * outC;
  const taps = kh * kw;
  for (let t = 0; t < taps; t++) {
    const src = w.subarray(t * tapSize, (t + 1) * tapSize);
    transposeMatrix(src, inC, outC, out.subarray((taps - 1 - t) * tapSize, (taps - t) * tapSize));
  }
}
