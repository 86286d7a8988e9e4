import { createHash } from 'node:crypto';
import type * as tfc from '@tensorflow/tfjs-core';
import { readTensorInto } from '../backend/read-into.js';

/**
 * The fusion buffer (Horovod's term): every trainable gradient packed, in a fixed order, into one
 * Float32Array so that a ring all-reduce moves one buffer. A few scalars travel with the gradients
 * (`extras`: loss sums and the number of positives), so one all-reduce round sums everything the
 * step needs. Workers agree on the layout at join by comparing `layout.hash`.
 */
export interface LayoutEntry {
  name: string;
  shape: readonly number[];
  offset: number;
  size: number;
}

export interface GradientLayout {
  entries: readonly LayoutEntry[];
  /** Number of gradient elements (the extras follow them). */
  gradientSize: number;
  extras: readonly string[];
  /** gradientSize + extras.length. */
  totalSize: number;
  /** sha256 over names, shapes, dtype and extras: equal hashes mean identical layouts. */
  hash: string;
}

export function createLayout(
  params: readonly { name: string; shape: readonly number[] }[],
  extras: readonly string[] = [],
): GradientLayout {
  const entries: LayoutEntry[] = [];
  let offset = 0;
  const digest = createHash('sha256');
  for (const { name, shape } of params) {
    const size = shape.reduce((a, b) => a * b, 1);
    entries.push({ name, shape: [...shape], offset, size });
    offset += size;
    digest.update(`${name}:${shape.join('x')}:float32;`);
  }
  digest.update(`extras:${extras.join(',')}`);
  return {
    entries,
    gradientSize: offset,
    extras: [...extras],
    totalSize: offset + extras.length,
    hash: digest.digest('hex').slice(0, 16),
  };
}

/**
 * Packs gradients (read straight from the backend, see read-into.ts) and extras into `into`, every
 * element of which is overwritten, so a step can reuse one buffer (default: a new one). Returns it.
 */
export function packGradients(
  tf: typeof tfc,
  layout: GradientLayout,
  grads: ReadonlyMap<string, tfc.Tensor>,
  extras: readonly number[],
  into: Float32Array = new Float32Array(layout.totalSize),
): Float32Array {
  if (extras.length !== layout.extras.length) {
    throw new Error(`packGradients: expected ${layout.extras.length} extras, got ${extras.length}`);
  }
  if (into.length !== layout.totalSize) {
    throw new Error(`packGradients: the buffer has ${into.length} elements, the layout ${layout.totalSize}`);
  }
  for (const e of layout.entries) {
    const g = grads.get(e.name);
    if (!g) throw new Error(`packGradients: no gradient for '${e.name}'`);
    if (g.size !== e.size)
      throw new Error(`packGradients: '${e.name}' has ${g.size} elements, layout says ${e.size}`);
    readTensorInto(tf, g, into.subarray(e.offset, e.offset + e.size));
  }
  into.set(extras, layout.gradientSize);
  return into;
}

/** The extras after an all-reduce, by name. */
export function readExtras(layout: GradientLayout, buffer: Float32Array): Record<string, number> {
  const out: Record<string, number> = {};
  layout.extras.forEach((name, i) => {
    out[name] = buffer[layout.gradientSize + i]!;
  });
  return out;
}

/** Tensors over the gradient part of `buffer`, one per layout entry (the caller disposes them). */
export function unpackGradients(
  tf: typeof tfc,
  layout: GradientLayout,
  buffer: Float32Array,
): Map<string, tfc.Tensor> {
  const out = new Map<string, tfc.Tensor>();
  for (const e of layout.entries) {
    out.set(e.name, tf.tensor(buffer.subarray(e.offset, e.offset + e.size), e.shape as number[], 'float32'));
  }
  return out;
}

/** Scales the gradient part in place and returns its L2 norm after scaling. */
export function scaleGradients(layout: GradientLayout, buffer: Float32Array, factor: number): number {
  let sumSq = 0;
  for (let i = 0; i < layout.gradientSize; i++) {
    const v = buffer[i]! * factor;
    buffer[i] = v;
    sumSq += v * v;
  }
  return Math.sqrt(sumSq);
}
