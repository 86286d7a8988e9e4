/**
 * One sample from encoded image + ground truth to network input (the train and validation transforms).
 *
 * Train: planTrainTransform draws everything from createRng(seed, RNG_STREAM.augment, epoch, index), so
 * the pixels and boxes of a sample depend only on (seed, epoch, sample index) and the image, never on
 * the worker count, the batch it lands in, or timing. The window is rendered straight to S x S
 * (placement.ts), then the colour distortion and normalisation run on the S x S pixels only.
 * Validation: a plain resize of the whole image to S x S (bicubic) and the normalisation; the
 * normalised boxes are unchanged.
 */
import { ClusterError, ConfigError } from '../../shared/errors.js';
import { createRng, RNG_STREAM } from '../../shared/random.js';
import { type Interpolation, planTrainTransform } from './augment.js';
import type { DatasetSample } from './dataset.js';
import { readImageSize, renderRegion } from './decode.js';
import type { DecodedImageCache } from './decoded-image-cache.js';
import type { GroundTruth } from './ground-truth.js';
import { composeInput, foldNormalisation, IMAGENET_MEAN, IMAGENET_STD, type Rgb } from './normalise.js';
import { mapBoxes, type Placement, placeWholeImage, placeWindow } from './placement.js';

export interface PrepareOptions {
  /** Output side S (SageMaker image_shape). */
  imageShape: number;
  /** Train transform (augmentation) or validation transform (resize only). */
  train: boolean;
  seed: number;
  epoch: number;
  /** Normalisation mean on the 0-1 scale (default ImageNet); also the expansion fill. */
  mean?: Rgb;
  /** Normalisation std on the 0-1 scale (default ImageNet). */
  std?: Rgb;
}

export interface PreparedSample {
  index: number;
  /** S*S*3 normalised RGB, HWC. */
  pixels: Float32Array;
  /** After augmentation, normalised to the S x S frame. */
  gt: GroundTruth;
  originalWidth: number;
  originalHeight: number;
}

export const VALIDATION_INTERPOLATION: Interpolation = 'cubic';
const MIN_IMAGE_SHAPE = 8;

export function checkPrepareOptions(options: PrepareOptions): void {
  const problems: string[] = [];
  const { imageShape, seed, epoch } = options;
  if (!Number.isSafeInteger(imageShape) || imageShape < MIN_IMAGE_SHAPE)
    problems.push(`image_shape: must be an integer >= ${MIN_IMAGE_SHAPE}, got ${imageShape}`);
  if (!Number.isSafeInteger(seed) || seed < 0) problems.push(`seed: must be an integer >= 0, got ${seed}`);
  if (!Number.isSafeInteger(epoch) || epoch < 0)
    problems.push(`epoch: must be an integer >= 0, got ${epoch}`);
  for (const key of ['mean', 'std'] as const) {
    const v = options[key];
    if (
      v !== undefined &&
      (v.length !== 3 || !v.every((x) => Number.isFinite(x) && (key === 'mean' || x > 0)))
    )
      problems.push(
        `${key}: must be 3 finite numbers${key === 'std' ? ' > 0' : ''}, got ${JSON.stringify(v)}`,
      );
  }
  if (problems.length > 0) throw new ConfigError(problems);
}

/**
 * Decodes, augments (train) or resizes (validation) and normalises one sample. `into`, when given, is
 * where the S*S*3 pixels are written (a slot of a batch buffer); else a new array. `decoded`, when
 * given, keeps decoded images between calls (the prepare thread's cache); the result is the same.
 */
export async function prepareSample(
  sample: DatasetSample,
  options: PrepareOptions,
  into?: Float32Array,
  decoded?: DecodedImageCache,
): Promise<PreparedSample> {
  checkPrepareOptions(options);
  const size = options.imageShape;
  const pixels = into ?? new Float32Array(size * size * 3);
  if (pixels.length !== size * size * 3) {
    throw new ClusterError(
      'INTERNAL',
      `prepareSample: output has ${pixels.length} floats, not ${size}*${size}*3`,
    );
  }
  const transformOf = (colour: Parameters<typeof foldNormalisation>[0]) =>
    foldNormalisation(colour, { mean: options.mean ?? IMAGENET_MEAN, std: options.std ?? IMAGENET_STD });
  const { width, height } = await readImageSize(sample.image, sample.source);
  const render = (p: Placement, kind: Interpolation) =>
    renderRegion(sample.image, sample.source, p, kind, decoded);
  const base = { index: sample.index, pixels, originalWidth: width, originalHeight: height };
  if (!options.train) {
    const placement = placeWholeImage(width, height, size);
    const region = await render(placement, VALIDATION_INTERPOLATION);
    composeInput(region!, placement, transformOf(null), false, pixels);
    return { ...base, gt: sample.gt };
  }
  const rng = createRng(options.seed, RNG_STREAM.augment, options.epoch, sample.index);
  const plan = planTrainTransform(rng, width, height, sample.gt);
  const placement = placeWindow(plan.window, width, height, size);
  const region = await render(placement, plan.interpolation);
  composeInput(region ?? new Uint8Array(0), placement, transformOf(plan.colour), plan.flip, pixels);
  const gt = mapBoxes(sample.gt, plan.kept, plan.boxes, plan.window, placement, plan.flip);
  return { ...base, gt };
}
