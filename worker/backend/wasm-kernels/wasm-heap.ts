import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { ClusterError } from '../../../shared/errors.js';

/**
 * Helpers for kernels that run on the wasm backend's own heap: allocate outputs there, view them as
 * Float32Arrays, call the backend's registered (C++/XNNPACK) kernels, and free intermediates.
 *
 * Invariant: a kernel writes only into outputs it allocated itself, never into an input or into what
 * runWasmKernel returns for Identity, Cast or Reshape: those share their input's buffer
 * (shared-buffer.ts, and the stock Reshape), so writing there would change another tensor.
 *
 * Invariant: a heap view is only valid until the next allocation. Growing wasm memory replaces the
 * ArrayBuffer (the old one detaches and reads as empty), so take views with `heapF32` right before
 * the loop that uses them and never hold one across `allocate` or `runWasmKernel`.
 */
export type TensorInfo = tf.TensorInfo;

/** What tfjs passes a kernel function; `backend` is the wasm backend for kernels registered on it. */
export interface WasmKernelArgs {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}

export function allocate(backend: BackendWasm, shape: number[]): TensorInfo {
  return backend.makeOutput(shape, 'float32');
}

export function heapF32(backend: BackendWasm, info: TensorInfo): Float32Array {
  return backend.typedArrayFromHeap(info) as Float32Array;
}

/** Runs another kernel registered for 'wasm' (BatchMatMul, Conv2D, ...) on the same backend. */
export function runWasmKernel(
  backend: BackendWasm,
  kernelName: string,
  inputs: Record<string, TensorInfo>,
  attrs: Record<string, unknown>,
): TensorInfo {
  const kernel = tf.getKernel(kernelName, 'wasm');
  if (!kernel) {
    throw new ClusterError(
      'BACKEND',
      `wasm kernel '${kernelName}' is not registered (needed by a training kernel)`,
    );
  }
  const out = kernel.kernelFunc({ inputs, backend, attrs: attrs as tf.NamedAttrMap });
  return Array.isArray(out) ? out[0]! : out;
}

/** Frees intermediates made by `allocate` or `runWasmKernel` (never a kernel's inputs). */
export function release(backend: BackendWasm, ...infos: TensorInfo[]): void {
  for (const info of infos) backend.disposeData(info.dataId);
}

/** Copies `count` floats starting at `start` of `src` into a new heap tensor of `shape`. */
export function copyRange(
  backend: BackendWasm,
  src: TensorInfo,
  start: number,
  count: number,
  shape: number[],
): TensorInfo {
  const out = allocate(backend, shape);
  heapF32(backend, out).set(heapF32(backend, src).subarray(start, start + count));
  return out;
}

export function assertFloat32(kernelName: string, inputs: Record<string, TensorInfo>): void {
  for (const [name, info] of Object.entries(inputs)) {
    if (info.dtype !== 'float32') {
      throw new ClusterError(
        'BACKEND',
        `wasm ${kernelName}: input '${name}' is ${info.dtype}, expected float32`,
      );
    }
  }
}

/**
 * Rows [rowStart, rowEnd) of `t` seen as a [rows, rowLength] matrix, as a [1, count, rowLength] tensor
 * (BatchMatMul's fast shape): the tensor itself when that is all of it, else a copy.
 */
export function matrixRows(
  backend: BackendWasm,
  t: TensorInfo,
  rowStart: number,
  rowEnd: number,
  rowLength: number,
): TensorInfo {
  const shape = [1, rowEnd - rowStart, rowLength];
  if (rowStart === 0 && (rowEnd - rowStart) * rowLength === tf.util.sizeFromShape(t.shape)) {
    return runWasmKernel(backend, 'Reshape', { x: t }, { shape });
  }
  return copyRange(backend, t, rowStart * rowLength, (rowEnd - rowStart) * rowLength, shape);
}
