import { noopLogger } from '../../../shared/logging.js';
import { createRng, RNG_STREAM } from '../../../shared/random.js';
import { initBackend } from '../../../worker/backend/backend.js';
import type { GroundTruth } from '../../../worker/data/ground-truth.js';
import { createSsdModel, type SsdModel } from '../../../worker/model/ssd.js';
import type { StepBatch } from '../../../worker/train/step.js';

/** Fixtures for the train-step tests: the wasm backend, tiny models and drawn batches. */
export const SIDE = 64;
export const CLASSES = 3;

/** The tfjs engine is global: every test file that uses it runs its tests serially. */
export async function wasmTf() {
  return (await initBackend('wasm', { logger: noopLogger })).tf;
}

export function tinyModel(t: { teardown(fn: () => void): void }, seed = 1): SsdModel {
  const model = createSsdModel({ baseNetwork: 'tiny', imageShape: SIDE, numClasses: CLASSES, seed });
  t.teardown(() => model.dispose());
  return model;
}

/** Class c is a solid square of level (c + 1) / CLASSES on a dim noise background: learnable in a few steps. */
export function drawnBatch(size: number, key: number): StepBatch {
  const rng = createRng(11, RNG_STREAM.test, key);
  const images = new Float32Array(size * SIDE * SIDE * 3);
  for (let i = 0; i < images.length; i++) images[i] = 0.1 * rng.normal();
  const gt: GroundTruth[] = [];
  for (let b = 0; b < size; b++) {
    const cls = rng.int(CLASSES);
    const w = 0.25 + 0.4 * rng.next();
    const [x1, y1] = [rng.next() * (1 - w), rng.next() * (1 - w)];
    const level = (cls + 1) / CLASSES;
    for (let y = Math.floor(y1 * SIDE); y < Math.floor((y1 + w) * SIDE); y++) {
      for (let x = Math.floor(x1 * SIDE); x < Math.floor((x1 + w) * SIDE); x++) {
        images.fill(level, ((b * SIDE + y) * SIDE + x) * 3, ((b * SIDE + y) * SIDE + x) * 3 + 3);
      }
    }
    gt.push({
      boxes: Float32Array.from([x1, y1, x1 + w, y1 + w]),
      classes: Int32Array.from([cls]),
      difficult: new Uint8Array(1),
    });
  }
  return { images, gt };
}

/** The two halves of a batch, as two workers would get them. */
export function splitBatch(batch: StepBatch, at: number): [StepBatch, StepBatch] {
  const slot = SIDE * SIDE * 3;
  return [
    { images: batch.images.slice(0, at * slot), gt: batch.gt.slice(0, at) },
    { images: batch.images.slice(at * slot), gt: batch.gt.slice(at) },
  ];
}

export async function weightsOf(model: SsdModel): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const [name, v] of model.variables) out.set(name, (await v.data()) as Float32Array);
  return out;
}

/** Largest |a - b| over all weights, relative to the largest |b|: how far apart two updates are. */
export function updateDifference(a: Map<string, Float32Array>, b: Map<string, Float32Array>): number {
  let worst = 0;
  let scale = 0;
  for (const [name, x] of a) {
    const y = b.get(name)!;
    for (let i = 0; i < x.length; i++) {
      worst = Math.max(worst, Math.abs(x[i]! - y[i]!));
      scale = Math.max(scale, Math.abs(y[i]!));
    }
  }
  return worst / scale;
}
