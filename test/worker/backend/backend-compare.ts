import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { noopLogger } from '../../../shared/logging.js';
import { initBackend } from '../../../worker/backend/backend.js';

/**
 * Runs the same tfjs code on the wasm backend (with this project's kernels) and on the pure-JS cpu
 * backend, the reference. Inputs made with `seeded` live in whichever backend is active; tfjs moves
 * them on first use.
 */
export async function initWasmAndCpu(threads = 1): Promise<void> {
  await initBackend('wasm', { logger: noopLogger, threads });
}

export async function runOn(
  backend: 'wasm' | 'cpu',
  f: () => tf.Tensor | tf.Tensor[],
): Promise<Float32Array[]> {
  await tf.setBackend(backend);
  const out = tf.tidy(f);
  const list = Array.isArray(out) ? out : [out];
  const data = list.map((t) => t.dataSync() as Float32Array);
  tf.dispose(list);
  await tf.setBackend('wasm');
  return data;
}

/** Normal(0, 1) values from a fixed seed, as a float32 tensor. */
export function seeded(shape: number[], seed: number): tf.Tensor {
  return tf.randomNormal(shape, 0, 1, 'float32', seed);
}

/**
 * Largest |a - b| relative to the largest |b| (at least 1): float32 sums of K products agree to
 * about K * 2^-24 relative, so 1e-5 is tight for the sizes tested.
 */
export function relativeError(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Number.POSITIVE_INFINITY;
  let diff = 0;
  let scale = 1;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return Number.isNaN(diff) ? Number.POSITIVE_INFINITY : diff / scale;
}

export const TIGHT = 1e-5;
