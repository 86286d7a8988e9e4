import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import type * as tf from '@tensorflow/tfjs-core';
import type { TensorInfo, WasmKernelArgs } from './wasm-heap.js';

/**
 * Identity, and Cast to the dtype a tensor already has, without copying its buffer.
 *
 * The stock wasm kernels copy the whole buffer for both. tfjs calls Identity for every tensor it saves
 * for the backward pass (Engine.clone in saveTensorsForBackwardMode) and moments() casts its input to
 * float32, so a training step of the tiny SSD copied every saved activation: ~6 ms of a ~200 ms step
 * (profiled with --cpu-prof, 2 workers, batch 8, 128 px). The result shares the input's heap buffer and
 * takes a reference on it (BackendWasm.incRef), as the stock Reshape does: no wasm kernel writes into
 * its inputs and tensors are immutable, so a shared buffer is never seen to change; it is freed when
 * the last tensor on it is disposed. (String tensors keep their bytes in the same refcounted entry.)
 */
function share(backend: BackendWasm, x: TensorInfo): TensorInfo {
  backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype };
}

/**
 * A converted copy: towards zero into int32 (a typed-array set, as the stock Cast), and x != 0 into
 * bool (the stock Cast's typed-array set wraps -2.7 to 254 there; tfjs' cpu backend gives 1).
 */
function convert(backend: BackendWasm, x: TensorInfo, dtype: tf.DataType): TensorInfo {
  const out = backend.makeOutput([...x.shape], dtype);
  const from = backend.typedArrayFromHeap(x);
  const to = backend.typedArrayFromHeap(out);
  if (dtype !== 'bool') to.set(from);
  else for (let i = 0; i < from.length; i++) to[i] = from[i] !== 0 ? 1 : 0;
  return out;
}

function identity({ inputs, backend }: WasmKernelArgs): TensorInfo {
  return share(backend as BackendWasm, inputs.x!);
}

function cast({ inputs, backend, attrs }: WasmKernelArgs): TensorInfo {
  const x = inputs.x!;
  const dtype = attrs!.dtype as tf.DataType;
  const wasm = backend as BackendWasm;
  return dtype === x.dtype ? share(wasm, x) : convert(wasm, x, dtype);
}

export const sharedIdentityConfig: tf.KernelConfig = {
  kernelName: 'Identity',
  backendName: 'wasm',
  kernelFunc: identity as unknown as tf.KernelFunc,
};

export const sharedCastConfig: tf.KernelConfig = {
  kernelName: 'Cast',
  backendName: 'wasm',
  kernelFunc: cast as unknown as tf.KernelFunc,
};
