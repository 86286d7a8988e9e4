/**
 * The SSD training augmentation as a plan: plain numbers drawn from one Rng, no pixels, so it is
 * testable without an image decoder. GluonCV's SSDDefaultTrainTransform order (SPEC part 2, section 2),
 * which is also the order of the draws:
 *
 *   1. photometric distortion (photometric.ts), applied later at the output size;
 *   2. expansion ("zoom out"), p 0.5: ratio ~ U(1, 4), canvas floor(W r) x floor(H r), the image at an
 *      integer offset drawn top first (0..canvas-H, then 0..canvas-W), the rest filled with the mean pixel;
 *   3. random crop with IoU constraints and the centre rule on the canvas (crop.ts);
 *   4. resize to S x S with one of 5 interpolations (GluonCV draws one of OpenCV's nearest, bilinear,
 *      area, bicubic, lanczos; sharp has no "area", so we use nearest, linear, cubic, mitchell, lanczos3);
 *   5. horizontal flip, p 0.5.
 *
 * Expansion and crop together reduce to one window: the crop rectangle in the ORIGINAL image's pixel
 * coordinates, which may reach past the image (that part is mean fill). The pixels never go through a
 * canvas of up to 16x the image's area; placement.ts renders the window straight to S x S.
 */
import type { Rng } from '../../shared/random.js';
import { CROP_DEFAULTS, type CropOptions, type PixelRect, sampleCrop } from './crop.js';
import type { GroundTruth } from './ground-truth.js';
import { type ColourTransform, type PHOTOMETRIC_DEFAULTS, samplePhotometric } from './photometric.js';

export const INTERPOLATIONS = ['nearest', 'linear', 'cubic', 'mitchell', 'lanczos3'] as const;
export type Interpolation = (typeof INTERPOLATIONS)[number];

export const EXPANSION_DEFAULTS = Object.freeze({ probability: 0.5, maxRatio: 4 });
export const FLIP_PROBABILITY = 0.5;

export interface TrainPlan {
  /** Colour distortion for the image pixels (not the fill), or null for none. */
  colour: ColourTransform | null;
  /** The crop window in the original image's pixel coordinates; may extend past the image (fill). */
  window: PixelRect;
  interpolation: Interpolation;
  flip: boolean;
  /** Surviving boxes as pixel corners relative to the window's top-left, kept.length * 4. */
  boxes: Float64Array;
  /** Indices into the input ground truth of the surviving boxes. */
  kept: number[];
}

export interface Expansion {
  /** Where the image's top-left sits on the canvas. */
  offsetX: number;
  offsetY: number;
  /** Canvas size. */
  width: number;
  height: number;
}

/** Step 2: the canvas, or the image itself when the coin says no. */
export function sampleExpansion(
  rng: Rng,
  width: number,
  height: number,
  options = EXPANSION_DEFAULTS,
): Expansion {
  if (!rng.chance(options.probability) || options.maxRatio <= 1) {
    return { offsetX: 0, offsetY: 0, width, height };
  }
  const ratio = rng.uniform(1, options.maxRatio);
  const canvasW = Math.floor(width * ratio);
  const canvasH = Math.floor(height * ratio);
  const offsetY = rng.int(canvasH - height + 1);
  const offsetX = rng.int(canvasW - width + 1);
  return { offsetX, offsetY, width: canvasW, height: canvasH };
}

/** Normalised boxes to pixel corners on the canvas. */
export function toCanvasBoxes(gt: GroundTruth, width: number, height: number, e: Expansion): Float64Array {
  const out = new Float64Array(gt.boxes.length);
  for (let i = 0; i < out.length; i += 4) {
    out[i] = gt.boxes[i]! * width + e.offsetX;
    out[i + 1] = gt.boxes[i + 1]! * height + e.offsetY;
    out[i + 2] = gt.boxes[i + 2]! * width + e.offsetX;
    out[i + 3] = gt.boxes[i + 3]! * height + e.offsetY;
  }
  return out;
}

export interface TrainPlanOptions {
  expansion?: typeof EXPANSION_DEFAULTS;
  crop?: CropOptions;
  photometric?: typeof PHOTOMETRIC_DEFAULTS;
}

/** Draws the whole augmentation for an image of width x height with ground truth `gt`. */
export function planTrainTransform(
  rng: Rng,
  width: number,
  height: number,
  gt: GroundTruth,
  options: TrainPlanOptions = {},
): TrainPlan {
  const colour = samplePhotometric(rng, options.photometric);
  const expansion = sampleExpansion(rng, width, height, options.expansion);
  const canvasBoxes = toCanvasBoxes(gt, width, height, expansion);
  const choice = sampleCrop(
    rng,
    canvasBoxes,
    expansion.width,
    expansion.height,
    options.crop ?? CROP_DEFAULTS,
  );
  const interpolation = INTERPOLATIONS[rng.int(INTERPOLATIONS.length)]!;
  const flip = rng.chance(FLIP_PROBABILITY);
  const window: PixelRect = {
    x: choice.crop.x - expansion.offsetX,
    y: choice.crop.y - expansion.offsetY,
    width: choice.crop.width,
    height: choice.crop.height,
  };
  return { colour, window, interpolation, flip, boxes: choice.boxes, kept: choice.kept };
}
