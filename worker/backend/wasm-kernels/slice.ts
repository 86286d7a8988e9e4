import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { stockWasmKernel } from './stock-kernels.js';
import type { TensorInfo, WasmKernelArgs } from './wasm-heap.js';

/**
 * Slice and SplitV for the wasm backend, copying whole runs. The stock kernels copy a strided slice
 * one innermost row at a time, making a subarray per row: the gradient of the SSD heads' concat (a
 * SplitV of [batch, anchors, classes] along the anchors) made ~2.3 MB of garbage and took ~1.7 ms
 * per call for tiny at 128 px, batch 8. Here the axes after the last partial one are merged into a
 * single contiguous run (for that split, one run per image), moved with copyWithin on the heap.
 * String tensors (no heap buffer) go to the stock kernel.
 */

type HeapArray = Float32Array | Int32Array | Uint8Array;

/**
 * Copies the slice [begin, begin + size) of a row-major array of `shape` stored at heap[srcAt...]
 * to heap[dstAt...], packed. Pure; source and destination must not overlap.
 */
export function copySlice(
  heap: HeapArray,
  srcAt: number,
  shape: readonly number[],
  begin: readonly number[],
  size: readonly number[],
  dstAt: number,
): void {
  const rank = shape.length;
  if (size.some((s) => s === 0)) return;
  // `axis`: the last axis that does not take all of its extent; everything after it is one run.
  let axis = rank - 1;
  let inner = 1;
  while (axis > 0 && begin[axis] === 0 && size[axis] === shape[axis]) {
    inner *= shape[axis]!;
    axis--;
  }
  const run = rank === 0 ? 1 : size[axis]! * inner;
  const strides = tf.util.computeStrides(shape as number[]);
  let runs = 1;
  for (let k = 0; k < axis; k++) runs *= size[k]!;
  // An odometer over the outer axes [0, axis): index[k] counts 0 .. size[k] - 1.
  const index = new Int32Array(Math.max(axis, 1));
  let src = srcAt + (rank === 0 ? 0 : begin[axis]! * (strides[axis] ?? 1));
  for (let k = 0; k < axis; k++) src += begin[k]! * strides[k]!;
  for (let n = 0; n < runs; n++) {
    heap.copyWithin(dstAt + n * run, src, src + run);
    for (let k = axis - 1; k >= 0; k--) {
      index[k]!++;
      src += strides[k]!;
      if (index[k]! < size[k]!) break;
      src -= index[k]! * strides[k]!;
      index[k] = 0;
    }
  }
}

/** The whole heap as an array of the dtype's element type, and where `view` starts in it. */
function heapOf(view: HeapArray): { heap: HeapArray; at: number } {
  const Ctor = view.constructor as new (buffer: ArrayBufferLike) => HeapArray;
  return { heap: new Ctor(view.buffer), at: view.byteOffset / view.BYTES_PER_ELEMENT };
}

function sliceInfo(backend: BackendWasm, x: TensorInfo, begin: number[], size: number[]): TensorInfo {
  const out = backend.makeOutput(size, x.dtype);
  if (tf.util.sizeFromShape(size) === 0) return out;
  const src = backend.typedArrayFromHeap(x) as HeapArray;
  const dst = backend.typedArrayFromHeap(out) as HeapArray;
  const { heap, at } = heapOf(src);
  copySlice(heap, at, x.shape, begin, size, dst.byteOffset / dst.BYTES_PER_ELEMENT);
  return out;
}

export function slice(args: WasmKernelArgs): TensorInfo {
  const x = args.inputs.x as TensorInfo;
  if (x.dtype === 'string')
    return stockWasmKernel('Slice')(args as Parameters<tf.KernelFunc>[0]) as TensorInfo;
  const attrs = args.attrs as unknown as { begin: number | number[]; size?: number | number[] };
  const [begin, size] = tf.slice_util.parseSliceParams(
    x as tf.TensorInfo as tf.Tensor,
    attrs.begin,
    attrs.size,
  ) as [number[], number[]];
  // The stock wasm kernel checks nothing; copySlice would read past x into other tensors' memory.
  tf.slice_util.assertParamsValid(x as tf.TensorInfo as tf.Tensor, begin, size);
  return sliceInfo(args.backend as BackendWasm, x, begin, size);
}

export function splitV(args: WasmKernelArgs): TensorInfo[] {
  const x = args.inputs.x as TensorInfo;
  if (x.dtype === 'string')
    return stockWasmKernel('SplitV')(args as Parameters<tf.KernelFunc>[0]) as TensorInfo[];
  const attrs = args.attrs as unknown as { numOrSizeSplits: number | number[]; axis: number | number[] };
  const axis = tf.util.parseAxisParam(attrs.axis, x.shape)[0]!;
  const sizes = tf.backend_util.prepareSplitSize(
    x as tf.TensorInfo as tf.Tensor,
    attrs.numOrSizeSplits,
    axis,
  );
  const begin = new Array<number>(x.shape.length).fill(0);
  return sizes.map((s) => {
    const size = [...x.shape];
    size[axis] = s;
    const piece = sliceInfo(args.backend as BackendWasm, x, [...begin], size);
    begin[axis]! += s;
    return piece;
  });
}

export const sliceConfig: tf.KernelConfig = {
  kernelName: 'Slice',
  backendName: 'wasm',
  kernelFunc: slice as tf.KernelFunc,
};

export const splitVConfig: tf.KernelConfig = {
  kernelName: 'SplitV',
  backendName: 'wasm',
  kernelFunc: splitV as unknown as tf.KernelFunc,
};
