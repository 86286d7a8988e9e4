/**
 * Copies tensor values into Float32Arrays the caller owns and reuses (the rollback snapshots taken
 * after every step of a multi-worker job), synchronously and without allocating a buffer:
 * - on wasm, straight out of the wasm heap through a view (BackendWasm.typedArrayFromHeap);
 *   dataSync() there would first copy the bytes into a fresh array;
 * - elsewhere through dataSync(), which on the CPU backend returns the backend's own array.
 * The copy is exact (float32 to float32); a synchronous read also means no step can run meanwhile.
 */
import type * as tfc from '@tensorflow/tfjs-core';
import { ClusterError } from '../../shared/errors.js';
import type { NamedArray } from '../train/trainer-state.js';

/** The part of BackendWasm used here (its public API in tfjs-backend-wasm 4.x). */
interface HeapBackend {
  typedArrayFromHeap(info: tfc.TensorInfo): ArrayLike<number>;
  refCount(dataId: object): number;
}

function heapBackendOf(tf: typeof tfc): HeapBackend | null {
  const backend = tf.backend() as unknown as Partial<HeapBackend>;
  return typeof backend.typedArrayFromHeap === 'function' && typeof backend.refCount === 'function'
    ? (backend as HeapBackend)
    : null;
}

/**
 * True when tf.tensor(values) on the active backend copies `values` (wasm copies into its heap), so
 * the caller may overwrite them afterwards. The CPU backend keeps the array itself as the tensor's
 * storage; for a backend not known to copy, the answer is false.
 */
export function uploadCopiesValues(tf: typeof tfc): boolean {
  return heapBackendOf(tf) !== null;
}

/** Copies `tensor`'s values into `target`, which must have exactly tensor.size elements. */
export function readTensorInto(tf: typeof tfc, tensor: tfc.Tensor, target: Float32Array): void {
  if (target.length !== tensor.size) {
    throw new ClusterError(
      'INTERNAL',
      `readTensorInto: tensor ${tensor.id} of shape [${tensor.shape}] has ${tensor.size} values, the target array ${target.length}`,
    );
  }
  const heap = heapBackendOf(tf);
  // A tensor still held by another backend (refCount 0 here) goes through dataSync, which moves it.
  if (heap && tensor.dtype === 'float32' && heap.refCount(tensor.dataId) > 0) {
    target.set(heap.typedArrayFromHeap(tensor));
    return;
  }
  target.set(tensor.dataSync());
}

/**
 * Copies every tensor of `tensors` into `target` under the same name, reusing the array already
 * there when it has the same number of values (its shape is updated), else a new one; names of
 * `target` that `tensors` lacks are dropped. `target` iterates in the order of `tensors`, or by name
 * with `sortNames` (the order Optimizer.getState gives its slots). Returns `target`.
 */
export function readTensorsInto(
  tf: typeof tfc,
  tensors: ReadonlyMap<string, tfc.Tensor>,
  target: Map<string, NamedArray>,
  options: { sortNames?: boolean } = {},
): Map<string, NamedArray> {
  let namesChanged = target.size !== tensors.size;
  for (const [name, tensor] of tensors) {
    let entry = target.get(name);
    if (!entry || entry.values.length !== tensor.size) {
      namesChanged ||= !entry;
      entry = { shape: [...tensor.shape], values: new Float32Array(tensor.size) };
      target.set(name, entry);
    } else if (!tf.util.arraysEqual(entry.shape, tensor.shape)) {
      entry.shape = [...tensor.shape];
    }
    readTensorInto(tf, tensor, entry.values);
  }
  // Rare (the first copy, optimizer slots appearing): only then is the map rebuilt in order.
  if (namesChanged) {
    const names = [...tensors.keys()];
    if (options.sortNames) names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const entries = names.map((name) => [name, target.get(name)!] as const);
    target.clear();
    for (const [name, entry] of entries) target.set(name, entry);
  }
  return target;
}
