import * as tf from '@tensorflow/tfjs-core';
import test from 'ava';
import {
  col2imAdd,
  flipFilter,
  im2colTransposed,
  patchSize,
  rowChunks,
  toChannelPlanes,
} from '../../../../worker/backend/wasm-kernels/im2col.js';
import { planesSize } from '../../../../worker/backend/wasm-kernels/stride-phases.js';

/** A deterministic, non-repeating fill so misplaced elements show. */
const ramp = (n: number, scale = 1) =>
  Float32Array.from({ length: n }, (_, i) => ((i * 7919) % 1009) * scale - 500);

const geometries: [string, tf.backend_util.Conv2DInfo][] = [
  ['3x3 stride 2 pad 1, batch 2', tf.backend_util.computeConv2DInfo([2, 7, 6, 3], [3, 3, 3, 4], 2, 1, 1)],
  ['3x3 dilation 2 SAME', tf.backend_util.computeConv2DInfo([1, 9, 8, 2], [3, 3, 2, 4], 1, 2, 'same')],
  ['7x7 stride 2 pad 3', tf.backend_util.computeConv2DInfo([1, 11, 11, 2], [7, 7, 2, 3], 2, 1, 3)],
  // Stride 2 on an even side: phase planes as wide as output rows, so whole runs are copied.
  [
    '3x3 stride 2 pad 1 on 8x8, batch 2',
    tf.backend_util.computeConv2DInfo([2, 8, 8, 3], [3, 3, 3, 4], 2, 1, 1),
  ],
  [
    '3x3 strides [2, 1] SAME',
    tf.backend_util.computeConv2DInfo([1, 7, 5, 2], [3, 3, 2, 3], [2, 1], 1, 'same'),
  ],
  // Phase planes of odd sizes (zero-filled past the input), with and without whole-run copies.
  [
    '3x3 stride 2 SAME on 8x8 (pads 0 before, 1 after), batch 2',
    tf.backend_util.computeConv2DInfo([2, 8, 8, 3], [3, 3, 3, 2], 2, 1, 'same'),
  ],
  [
    '3x3 stride 3 pad 1 on 10x8, batch 2',
    tf.backend_util.computeConv2DInfo([2, 10, 8, 2], [3, 3, 2, 3], 3, 1, 1),
  ],
  [
    '2x2 stride 3 VALID on 11x10 (stride > kernel)',
    tf.backend_util.computeConv2DInfo([2, 11, 10, 2], [2, 2, 2, 3], 3, 1, 'valid'),
  ],
  [
    '3x3 strides [1, 2], explicit pads [2, 0] x [0, 2] on 7x9',
    tf.backend_util.computeConv2DInfo([1, 7, 9, 2], [3, 3, 2, 3], [1, 2], 1, [
      [0, 0],
      [2, 0],
      [0, 2],
      [0, 0],
    ]),
  ],
  // Stride 1, input rows as wide as output rows: runs of rows are copied at once.
  ['3x3 stride 1 SAME, batch 3', tf.backend_util.computeConv2DInfo([3, 5, 6, 2], [3, 3, 2, 3], 1, 1, 'same')],
  ['5x5 stride 1 pad 2, 1 row', tf.backend_util.computeConv2DInfo([2, 1, 7, 1], [5, 5, 1, 2], 1, 1, 2)],
];

/** colT[k, m] from channel planes, with the planes and the output sharing one heap array. */
function patchMatrixT(
  x: Float32Array,
  info: tf.backend_util.Conv2DInfo,
  r0: number,
  r1: number,
): Float32Array {
  const planes = planesSize(info);
  const heap = new Float32Array(planes + patchSize(info) * (r1 - r0) * info.outWidth);
  heap.fill(Number.NaN); // an element toChannelPlanes or im2col forgets to write shows
  toChannelPlanes(x, info, heap.subarray(0, planes));
  im2colTransposed(heap, 0, info, r0, r1, planes);
  return heap.slice(planes);
}

for (const [name, info] of geometries) {
  test(`im2colTransposed reads each patch element from its input pixel or zero padding: ${name}`, (t) => {
    const x = ramp(info.batchSize * info.inHeight * info.inWidth * info.inChannels);
    const rows = info.batchSize * info.outHeight;
    const colT = patchMatrixT(x, info, 0, rows);
    const columns = rows * info.outWidth;
    let mismatches = 0;
    for (let k = 0; k < patchSize(info); k++) {
      const c = k % info.inChannels;
      const kw = Math.floor(k / info.inChannels) % info.filterWidth;
      const kh = Math.floor(k / info.inChannels / info.filterWidth);
      for (let m = 0; m < columns; m++) {
        const ow = m % info.outWidth;
        const r = (m - ow) / info.outWidth;
        const b = Math.floor(r / info.outHeight);
        const ih = (r % info.outHeight) * info.strideHeight + kh * info.dilationHeight - info.padInfo.top;
        const iw = ow * info.strideWidth + kw * info.dilationWidth - info.padInfo.left;
        const inside = ih >= 0 && ih < info.inHeight && iw >= 0 && iw < info.inWidth;
        const expected = inside
          ? x[((b * info.inHeight + ih) * info.inWidth + iw) * info.inChannels + c]!
          : 0;
        if (colT[k * columns + m] !== expected) mismatches++;
      }
    }
    t.is(mismatches, 0);
  });

  test(`im2colTransposed of row chunks that cut through images equals the whole matrix's columns: ${name}`, (t) => {
    const x = ramp(info.batchSize * info.inHeight * info.inWidth * info.inChannels);
    const rows = info.batchSize * info.outHeight;
    const whole = patchMatrixT(x, info, 0, rows);
    const cuts = [0, Math.floor(rows / 3), Math.floor((2 * rows) / 3) + 1, rows].filter(
      (r, i, all) => i === 0 || r > all[i - 1]!,
    );
    for (let i = 0; i + 1 < cuts.length; i++) {
      const [r0, r1] = [cuts[i]!, Math.min(rows, cuts[i + 1]!)];
      const part = patchMatrixT(x, info, r0, r1);
      const width = (r1 - r0) * info.outWidth;
      for (let k = 0; k < patchSize(info); k++) {
        const expected = whole.subarray(k * rows * info.outWidth + r0 * info.outWidth).subarray(0, width);
        t.deepEqual(part.subarray(k * width, (k + 1) * width), expected, `k ${k}, rows ${r0}-${r1}`);
      }
    }
  });

  test(`col2imAdd is the adjoint of im2col, also when split into row chunks: ${name}`, (t) => {
    const x = ramp(info.batchSize * info.inHeight * info.inWidth * info.inChannels, 1e-3);
    const rows = info.batchSize * info.outHeight;
    const patch = patchSize(info);
    const cols = ramp(rows * info.outWidth * patch, 1e-3); // [M, K]
    const dx = new Float32Array(x.length);
    for (const [r0, r1] of rowChunks(rows, patch * info.outWidth, patch * info.outWidth * 2)) {
      col2imAdd(cols.subarray(r0 * info.outWidth * patch, r1 * info.outWidth * patch), info, r0, r1, dx);
    }
    const colT = patchMatrixT(x, info, 0, rows);
    const columns = rows * info.outWidth;
    // <col2im(cols), x> = <cols, im2col(x)>
    let lhs = 0;
    let rhs = 0;
    for (let i = 0; i < x.length; i++) lhs += dx[i]! * x[i]!;
    for (let m = 0; m < columns; m++)
      for (let k = 0; k < patch; k++) rhs += cols[m * patch + k]! * colT[k * columns + m]!;
    t.true(Math.abs(lhs - rhs) <= 1e-4 * Math.abs(rhs), `${lhs} vs ${rhs}`);
  });
}

test('rowChunks covers every row once, in order, within the float bound', (t) => {
  const chunks = rowChunks(10, 30, 100);
  t.deepEqual(chunks, [
    [0, 3],
    [3, 6],
    [6, 9],
    [9, 10],
  ]);
  t.deepEqual(rowChunks(3, 1000, 10), [
    [0, 1],
    [1, 2],
    [2, 3],
  ]);
});

test('flipFilter rotates the taps 180 degrees and swaps in/out channels', (t) => {
  const shape = [2, 3, 2, 4];
  const w = ramp(2 * 3 * 2 * 4);
  const out = new Float32Array(w.length);
  flipFilter(w, shape, out);
  for (let kh = 0; kh < 2; kh++) {
    for (let kw = 0; kw < 3; kw++) {
      for (let i = 0; i < 2; i++) {
        for (let o = 0; o < 4; o++) {
          const flipped = (((1 - kh) * 3 + (2 - kw)) * 4 + o) * 2 + i;
          t.is(out[flipped], w[((kh * 3 + kw) * 2 + i) * 4 + o]);
        }
      }
    }
  }
});
