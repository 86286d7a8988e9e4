import { ConfigError } from '../errors.js';
import { createRng, RNG_STREAM } from '../random.js';
import { type RenderedObject, type RenderedScene, renderScene } from './rasterise.js';
import { DEFAULT_SCENE_OPTIONS, generateScene, type Scene, type SceneOptions } from './scene.js';
import { SHAPE_KINDS } from './shapes.js';

/**
 * The synthetic data set as a pure function: image `index` of `split` depends only on (seed, split,
 * index) and the scene options, through createRng(seed, RNG_STREAM.synth, splitKey, index). So image i
 * is the same whatever the number of images, on any machine, in any order.
 *
 * Defaults (documented in `ssd-cluster synth --help`): 2000 train / 200 validation images of 128x128,
 * 5 classes (circle, square, triangle, plus, ring), 1-4 objects each, seed 0.
 */
export const SYNTH_SPLITS = ['train', 'validation'] as const;
export type SynthSplit = (typeof SYNTH_SPLITS)[number];

/** The RNG key of each split: part of the data set's definition, never renumber. */
const SPLIT_KEY: Record<SynthSplit, number> = { train: 0, validation: 1 };

export interface SynthOptions extends SceneOptions {
  seed: number;
  /** Number of images per split. */
  train: number;
  validation: number;
}

export const SYNTH_DEFAULTS: Readonly<SynthOptions> = Object.freeze({
  ...DEFAULT_SCENE_OPTIONS,
  seed: 0,
  train: 2000,
  validation: 200,
});

export const MAX_SYNTH_CLASSES = SHAPE_KINDS.length;
export const MIN_SYNTH_IMAGE_SIZE = 32;
export const MAX_SYNTH_IMAGE_SIZE = 4096;

/**
 * Defaults filled in and every problem reported at once, each naming its CLI flag. Only the flags of
 * `ssd-cluster synth` are checked; scene options passed by code are trusted to be sane.
 */
export function compileSynthOptions(raw: Partial<SynthOptions> = {}): Readonly<SynthOptions> {
  const options: SynthOptions = { ...SYNTH_DEFAULTS };
  for (const [key, value] of Object.entries(raw)) {
    if (value !== undefined) (options as unknown as Record<string, unknown>)[key] = value;
  }
  const problems: string[] = [];
  const check = (flag: string, value: number, min: number, max: number) => {
    if (!Number.isSafeInteger(value) || value < min || value > max)
      problems.push(`--${flag}: must be an integer in ${min}..${max}, got ${value}`);
  };
  check('train', options.train, 0, 2 ** 31);
  check('validation', options.validation, 0, 2 ** 31);
  check('image-size', options.imageSize, MIN_SYNTH_IMAGE_SIZE, MAX_SYNTH_IMAGE_SIZE);
  check('classes', options.classCount, 1, MAX_SYNTH_CLASSES);
  check('seed', options.seed, 0, Number.MAX_SAFE_INTEGER);
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(options);
}

/** Category names, index = class id (what classes.json holds). */
export function synthClassNames(classCount: number): string[] {
  return SHAPE_KINDS.slice(0, classCount);
}

/** Image `index` of `split`: the scene as drawn (for tests and previews) and its pixels and labels. */
export function synthesizeImage(
  options: Readonly<SynthOptions>,
  split: SynthSplit,
  index: number,
): RenderedScene & { scene: Scene } {
  const rng = createRng(options.seed, RNG_STREAM.synth, SPLIT_KEY[split], index);
  const scene = generateScene(rng, options);
  return { ...renderScene(scene, rng), scene };
}

/** What a detection label holds for one object (B = 6: class, corners, difficult). */
export interface SynthLabelObject {
  class: number;
  xmin: number;
  ymin: number;
  xmax: number;
  ymax: number;
  difficult: boolean;
}

export function toLabelObjects(objects: readonly RenderedObject[]): SynthLabelObject[] {
  return objects.map((o) => ({
    class: o.classId,
    xmin: o.xmin,
    ymin: o.ymin,
    xmax: o.xmax,
    ymax: o.ymax,
    difficult: o.difficult,
  }));
}
