import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { compileHyperparameters } from '../../../shared/config/compile.js';
import type { Hyperparameters } from '../../../shared/config/hyperparameters.js';
import { cornerIou } from '../../../shared/eval/box-iou.js';
import { noopLogger } from '../../../shared/logging.js';
import { createRng, RNG_STREAM } from '../../../shared/random.js';
import type { Storage } from '../../../shared/storage/storage.js';
import {
  compileSynthOptions,
  type SynthLabelObject,
  synthesizeImage,
  toLabelObjects,
} from '../../../shared/synth/synth-image.js';
import { SYNTH_JPEG_QUALITY } from '../../../shared/synth/write-synth.js';
import { initBackend } from '../../../worker/backend/backend.js';
import { packGroundTruth } from '../../../worker/data/ground-truth.js';
import { prepareSample } from '../../../worker/data/prepare.js';
import { createSsdModel, type SsdModel } from '../../../worker/model/ssd.js';
import { writeModelArtifact } from '../../../worker/train/model-artifact.js';
import { createOptimizer } from '../../../worker/train/optimizers.js';
import { createTrainStep } from '../../../worker/train/step.js';

/**
 * Fixtures for the inference tests: tiny models written as real artifacts (untrained: any weights give
 * rows; or overfitted on two synthetic images, whose objects are then known), and images made in code.
 * The tfjs engine is global: test files that use it run serially.
 */
export const SIDE = 64;
export const CLASS_NAMES = ['circle', 'square'];

type Teardown = { teardown(fn: () => unknown): void };

export async function wasmTf() {
  return (await initBackend('wasm', { logger: noopLogger })).tf;
}

/** A temp directory for a before hook (hooks have no teardown): remove it in test.after.always. */
export async function createTempDir(
  prefix = 'inference-',
): Promise<{ dir: string; remove(): Promise<void> }> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
  return { dir, remove: () => fs.rm(dir, { recursive: true, force: true }) };
}

export async function tempDir(t: Teardown, prefix = 'inference-'): Promise<string> {
  const { dir, remove } = await createTempDir(prefix);
  t.teardown(remove);
  return dir;
}

export function tinyHyperparameters(extra: Record<string, string> = {}): Readonly<Hyperparameters> {
  return compileHyperparameters({
    num_classes: String(CLASS_NAMES.length),
    num_training_samples: '2',
    base_network: 'tiny',
    image_shape: String(SIDE),
    ...extra,
  });
}

export interface WrittenModel {
  dir: string;
  hp: Readonly<Hyperparameters>;
  archive?: string;
}

/** Writes `model` (or a seeded untrained tiny SSD) as `train --model-dir` does; the tfjs backend must be up. */
export async function writeTinyModel(
  storage: Storage,
  dir: string,
  options: { model?: SsdModel; seed?: number; archive?: boolean; hp?: Readonly<Hyperparameters> } = {},
): Promise<WrittenModel> {
  const hp = options.hp ?? tinyHyperparameters();
  const model =
    options.model ??
    createSsdModel({
      baseNetwork: 'tiny',
      imageShape: SIDE,
      numClasses: hp.num_classes,
      seed: options.seed ?? 3,
    });
  try {
    const written = await writeModelArtifact({
      model,
      hp,
      modelDir: dir,
      storage,
      classes: CLASS_NAMES,
      archive: options.archive,
    });
    return { dir, hp, archive: written.archive };
  } finally {
    if (!options.model) model.dispose();
  }
}

export interface KnownImage {
  jpeg: Buffer;
  objects: SynthLabelObject[];
}

/** Images 1 and 2 of `ssd-cluster synth --image-size 96 --classes 2` (seed 0): 2 and 3 objects, both classes. */
export async function knownImages(): Promise<KnownImage[]> {
  const options = compileSynthOptions({ train: 3, validation: 0, imageSize: 96, classCount: 2, seed: 0 });
  const out: KnownImage[] = [];
  for (const index of [1, 2]) {
    const image = synthesizeImage(options, 'train', index);
    const raw = { width: image.width, height: image.height, channels: 3 } as const;
    const jpeg = await sharp(image.pixels, { raw }).jpeg({ quality: SYNTH_JPEG_QUALITY }).toBuffer();
    out.push({ jpeg, objects: toLabelObjects(image.objects) });
  }
  return out;
}

/**
 * A tiny SSD overfitted on the known images (adam, 60 full-batch steps on the validation transform, no
 * augmentation: a few seconds on wasm), written to `dir`. Its detections are the known objects.
 */
export async function trainKnownModel(storage: Storage, dir: string, archive = false): Promise<WrittenModel> {
  const tf = await wasmTf();
  const images = await knownImages();
  const gt = images.map((image) => packGroundTruth(image.objects));
  const batch = new Float32Array(images.length * SIDE * SIDE * 3);
  for (const [i, image] of images.entries()) {
    const sample = { index: i, image: image.jpeg, gt: gt[i]!, source: `known ${i}` };
    const prepared = await prepareSample(sample, { imageShape: SIDE, train: false, seed: 0, epoch: 0 });
    batch.set(prepared.pixels, i * SIDE * SIDE * 3);
  }
  const model = createSsdModel({
    baseNetwork: 'tiny',
    imageShape: SIDE,
    numClasses: CLASS_NAMES.length,
    seed: 1,
  });
  const optimizer = createOptimizer(tf, { optimizer: 'adam', momentum: 0.9, weight_decay: 0 });
  try {
    const step = createTrainStep({ tf, model, optimizer, trainableNames: model.trainableNames() });
    const signal = new AbortController().signal;
    for (let s = 0; s < 60; s++) await step.step({ images: batch, gt }, { lr: 0.01, signal });
    return await writeTinyModel(storage, dir, { model, archive });
  } finally {
    optimizer.dispose();
    model.dispose();
  }
}

/**
 * Why `rows` are not the known objects, or null: the first objects.length rows (the best scores) must be
 * one per object, same class, IoU >= 0.7, score >= 0.5; any further row scores below 0.5.
 */
export function knownObjectsProblem(
  rows: readonly (readonly number[])[],
  objects: readonly SynthLabelObject[],
): string | null {
  const top = rows.slice(0, objects.length);
  if (top.length < objects.length) return `${rows.length} rows for ${objects.length} objects`;
  const unmatched = [...objects];
  for (const row of top) {
    const [cls, score, ...box] = row as [number, number, number, number, number, number];
    const at = unmatched.findIndex(
      (o) => o.class === cls && cornerIou(box, 0, [o.xmin, o.ymin, o.xmax, o.ymax], 0) >= 0.7,
    );
    if (at < 0 || score < 0.5) return `row ${JSON.stringify(row)} is none of ${JSON.stringify(unmatched)}`;
    unmatched.splice(at, 1);
  }
  const extra = rows.slice(objects.length).find((row) => row[1]! >= 0.5);
  return extra ? `an extra confident row ${JSON.stringify(extra)}` : null;
}

/**
 * A w x h image of the given channels (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA): a gradient, so it is not
 * flat, or seeded noise (`noise` = its key), which does not compress.
 */
export async function makeImage(
  format: 'png' | 'jpeg' | 'webp',
  width: number,
  height: number,
  channels: 1 | 2 | 3 | 4 = 3,
  noise?: number,
): Promise<Buffer> {
  const pixels = Buffer.alloc(width * height * channels);
  const rng = noise === undefined ? undefined : createRng(17, RNG_STREAM.test, noise);
  for (let i = 0; i < pixels.length; i++) pixels[i] = rng ? rng.int(256) : (i * 7) % 251;
  const image = sharp(pixels, { raw: { width, height, channels } });
  if (format === 'jpeg') return image.jpeg().toBuffer();
  if (format === 'webp') return image.webp().toBuffer();
  return image
    .toColourspace(channels <= 2 ? 'b-w' : 'srgb')
    .png()
    .toBuffer();
}
