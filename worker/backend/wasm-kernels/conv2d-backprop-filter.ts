import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import type * as tf from '@tensorflow/tfjs-core';
import { type BackwardConvAttrs, backwardConvInfo, patchChunkFloats } from './conv-attrs.js';
import { im2colTransposed, patchSize, rowChunks, toChannelPlanes } from './im2col.js';
import { planesSize } from './stride-phases.js';
import {
  allocate,
  assertFloat32,
  heapF32,
  matrixRows,
  release,
  runWasmKernel,
  type TensorInfo,
  type WasmKernelArgs,
} from './wasm-heap.js';

/**
 * Conv2DBackpropFilter for the wasm backend, which has none:
 *   dW[kh, kw, ci, co] = sum over (b, oh, ow) of x[b, ih, iw, ci] * dy[b, oh, ow, co]
 *                      = colT · dy, colT the [K, M] transposed patch matrix (K = kh*kw*ci, M = b*oh*ow).
 * x is first turned into channel planes (split by stride phase when strided) so colT rows are copies
 * of plane-row runs (memmove; O(n k) either way); the product runs in the backend's BatchMatMul, which for
 * untransposed rank-3 operands with batch 1 is XNNPACK's fully-connected operator (wasm SIMD, threads).
 * Output rows are processed in chunks of at most patchChunkFloats() patch floats; the partial products add up.
 * Honours strides, SAME/VALID/explicit pads and (beyond tfjs-core) `dilations`.
 */
export function conv2DBackpropFilter(args: WasmKernelArgs): TensorInfo {
  const backend = args.backend as BackendWasm;
  const { x, dy } = args.inputs as { x: TensorInfo; dy: TensorInfo };
  assertFloat32('Conv2DBackpropFilter', { x, dy });
  const attrs = args.attrs as unknown as BackwardConvAttrs & { filterShape: number[] };
  const info = backwardConvInfo('Conv2DBackpropFilter', x.shape, attrs.filterShape, attrs);
  const patch = patchSize(info);
  const outChannels = info.outChannels;
  const planes = allocate(backend, [planesSize(info)]);
  toChannelPlanes(heapF32(backend, x), info, heapF32(backend, planes));
  let total: TensorInfo | undefined;
  for (const [r0, r1] of rowChunks(
    info.batchSize * info.outHeight,
    patch * info.outWidth,
    patchChunkFloats(),
  )) {
    const columns = (r1 - r0) * info.outWidth;
    const colT = allocate(backend, [1, patch, columns]);
    const dyRows = matrixRows(backend, dy, r0 * info.outWidth, r1 * info.outWidth, outChannels);
    const planesView = heapF32(backend, planes);
    const heap = new Float32Array(planesView.buffer);
    const colTAt = heapF32(backend, colT).byteOffset / 4;
    im2colTransposed(heap, planesView.byteOffset / 4, info, r0, r1, colTAt);
    const part = runWasmKernel(
      backend,
      'BatchMatMul',
      { a: colT, b: dyRows },
      { transposeA: false, transposeB: false },
    );
    release(backend, colT, dyRows);
    if (total === undefined) {
      total = part;
      continue;
    }
    const sum = heapF32(backend, total);
    const add = heapF32(backend, part);
    for (let i = 0; i < sum.length; i++) sum[i] = sum[i]! + add[i]!;
    release(backend, part);
  }
  release(backend, planes);
  if (total === undefined) {
    total = allocate(backend, [1, patch, outChannels]);
    heapF32(backend, total).fill(0);
  }
  return { dataId: total.dataId, dtype: 'float32', shape: [...attrs.filterShape] };
}

export const conv2DBackpropFilterConfig: tf.KernelConfig = {
  kernelName: 'Conv2DBackpropFilter',
  backendName: 'wasm',
  kernelFunc: conv2DBackpropFilter as tf.KernelFunc,
};
