import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { ClusterError } from '../../../shared/errors.js';
import { allocate, assertFloat32, heapF32, type TensorInfo, type WasmKernelArgs } from './wasm-heap.js';

/**
 * UnsortedSegmentSum for the wasm backend (the gradient of gather/GatherV2 needs it):
 *   out[s, ...] = sum of x[i, ...] over the i with segmentIds[i] = s,
 * where i runs over the leading dims that segmentIds covers. Ids outside [0, numSegments) are
 * dropped, as in TensorFlow. One pass over x: O(n) work, so a JS loop on the heap is enough.
 */
export function unsortedSegmentSum(args: WasmKernelArgs): TensorInfo {
  const backend = args.backend as BackendWasm;
  const { x, segmentIds } = args.inputs as { x: TensorInfo; segmentIds: TensorInfo };
  assertFloat32('UnsortedSegmentSum', { x });
  const numSegments = Number((args.attrs as { numSegments: number }).numSegments);
  const idRank = segmentIds.shape.length;
  if (segmentIds.shape.some((d, i) => d !== x.shape[i])) {
    throw new ClusterError(
      'BACKEND',
      `wasm UnsortedSegmentSum: segmentIds shape [${segmentIds.shape}] is not a prefix of x shape [${x.shape}]`,
    );
  }
  const inner = tf.util.sizeFromShape(x.shape.slice(idRank));
  const out = allocate(backend, [numSegments, ...x.shape.slice(idRank)]);
  const sums = heapF32(backend, out);
  const values = heapF32(backend, x);
  const ids = backend.typedArrayFromHeap(segmentIds);
  sums.fill(0);
  for (let i = 0; i < ids.length; i++) {
    const s = ids[i]!;
    if (s < 0 || s >= numSegments) continue;
    const dst = s * inner;
    const src = i * inner;
    for (let j = 0; j < inner; j++) sums[dst + j] = sums[dst + j]! + values[src + j]!;
  }
  return out;
}

export const unsortedSegmentSumConfig: tf.KernelConfig = {
  kernelName: 'UnsortedSegmentSum',
  backendName: 'wasm',
  kernelFunc: unsortedSegmentSum as tf.KernelFunc,
};
