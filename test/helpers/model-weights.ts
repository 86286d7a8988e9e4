import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { createLocalStorage } from '../../shared/storage/local.js';
import type { Storage } from '../../shared/storage/storage.js';
import { readWeights } from '../../worker/model/weights.js';

/**
 * Every weight of the model written to `modelDir`, by name, as float32 values (the tensors are read
 * and disposed). `storage` defaults to a local one, opened and closed here.
 */
export async function readModelWeights(
  modelDir: string,
  storage?: Storage,
): Promise<Map<string, Float32Array>> {
  await tf.ready();
  const own = storage ? undefined : createLocalStorage();
  try {
    const { tensors } = await readWeights(modelDir, (storage ?? own)!);
    const weights = new Map<string, Float32Array>();
    for (const [name, tensor] of Object.entries(tensors)) {
      weights.set(name, (await tensor.data()) as Float32Array);
      tensor.dispose();
    }
    return weights;
  } finally {
    await own?.close();
  }
}

/**
 * The names of the weights that are not bit for bit the same in `expected` and `actual` (-0 and NaN
 * payloads count), including those only one of them has; sorted, so `[]` means identical models.
 */
export function weightsThatDiffer(
  expected: ReadonlyMap<string, Float32Array>,
  actual: ReadonlyMap<string, Float32Array>,
): string[] {
  const names = new Set([...expected.keys(), ...actual.keys()]);
  return [...names].filter((name) => !sameBytes(expected.get(name), actual.get(name))).sort();
}

function sameBytes(a: Float32Array | undefined, b: Float32Array | undefined): boolean {
  if (!a || !b) return false;
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(
    Buffer.from(b.buffer, b.byteOffset, b.byteLength),
  );
}
