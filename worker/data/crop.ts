/**
 * SSD random crop with IoU constraints (GluonCV `random_crop_with_constraints` and `bbox_crop`, after
 * caffe's batch_sampler), pure. Boxes are pixel corners (x1, y1, x2, y2), M*4, in an image of
 * width x height.
 *
 * 1. Candidates start with the whole image.
 * 2. For each constraint (min IoU 0.1, 0.3, 0.5, 0.7, 0.9, then "any": max IoU 1), up to 50 trials:
 *    scale ~ U(0.3, 1); aspect ratio ~ U(max(1/2, scale^2), min(2, 1/scale^2)) (so the crop fits);
 *    crop h = floor(H scale / sqrt(ar)), w = floor(W scale sqrt(ar)); top/left uniform integers. The
 *    first crop whose IoU with EVERY box lies in [min, max] becomes a candidate (GluonCV checks all
 *    boxes; caffe accepts a crop when any box qualifies). With no boxes, the first trial is the answer.
 * 3. Candidates are drawn at random without replacement until one keeps at least one box under the
 *    centre rule (a box survives when its centre lies in [left, right) x [top, bottom)); survivors are
 *    clipped to the crop and those left with no area dropped. If none works: the whole image.
 *
 * Difference from GluonCV: it draws top from randrange(H - h), which never touches the bottom edge
 * and fails when h == H; we draw from 0..H-h inclusive.
 */
import { cornerIou } from '../../shared/eval/box-iou.js';
import type { Rng } from '../../shared/random.js';

export interface PixelRect {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface IouConstraint {
  minIou: number;
  maxIou: number;
}

export interface CropOptions {
  minScale: number;
  maxScale: number;
  maxAspectRatio: number;
  maxTrials: number;
  constraints: readonly IouConstraint[];
}

export const CROP_DEFAULTS: Readonly<CropOptions> = Object.freeze({
  minScale: 0.3,
  maxScale: 1,
  maxAspectRatio: 2,
  maxTrials: 50,
  constraints: Object.freeze([
    ...[0.1, 0.3, 0.5, 0.7, 0.9].map((minIou) => ({ minIou, maxIou: Number.POSITIVE_INFINITY })),
    { minIou: Number.NEGATIVE_INFINITY, maxIou: 1 },
  ]),
});

export interface CroppedBoxes {
  /** Corners relative to the crop's top-left, clipped to it, kept.length * 4. */
  boxes: Float64Array;
  /** Indices of the surviving input boxes, in input order. */
  kept: number[];
}

export interface CropChoice extends CroppedBoxes {
  crop: PixelRect;
}

/** The centre rule, clipping and dropping of `bbox_crop(..., allow_outside_center=False)`. */
export function cropBoxes(boxes: ArrayLike<number>, crop: PixelRect): CroppedBoxes {
  const right = crop.x + crop.width;
  const bottom = crop.y + crop.height;
  const out: number[] = [];
  const kept: number[] = [];
  for (let i = 0; 4 * i < boxes.length; i++) {
    const [x1, y1, x2, y2] = [boxes[4 * i]!, boxes[4 * i + 1]!, boxes[4 * i + 2]!, boxes[4 * i + 3]!];
    const cx = (x1 + x2) / 2;
    const cy = (y1 + y2) / 2;
    if (cx < crop.x || cx >= right || cy < crop.y || cy >= bottom) continue;
    const clipped = [Math.max(x1, crop.x), Math.max(y1, crop.y), Math.min(x2, right), Math.min(y2, bottom)];
    if (!(clipped[0]! < clipped[2]! && clipped[1]! < clipped[3]!)) continue;
    out.push(clipped[0]! - crop.x, clipped[1]! - crop.y, clipped[2]! - crop.x, clipped[3]! - crop.y);
    kept.push(i);
  }
  return { boxes: Float64Array.from(out), kept };
}

/** One trial crop (step 2's geometry). */
export function sampleTrialCrop(rng: Rng, width: number, height: number, options: CropOptions): PixelRect {
  const scale = rng.uniform(options.minScale, options.maxScale);
  const arLo = Math.max(1 / options.maxAspectRatio, scale * scale);
  const arHi = Math.min(options.maxAspectRatio, 1 / (scale * scale));
  const ar = rng.uniform(arLo, arHi);
  const h = Math.max(1, Math.min(height, Math.floor((height * scale) / Math.sqrt(ar))));
  const w = Math.max(1, Math.min(width, Math.floor(width * scale * Math.sqrt(ar))));
  const y = rng.int(height - h + 1);
  const x = rng.int(width - w + 1);
  return { x, y, width: w, height: h };
}

/** IoU of every box with the crop lies in [minIou, maxIou]. */
export function satisfiesConstraint(boxes: ArrayLike<number>, crop: PixelRect, c: IouConstraint): boolean {
  const rect = [crop.x, crop.y, crop.x + crop.width, crop.y + crop.height];
  for (let i = 0; 4 * i < boxes.length; i++) {
    const iou = cornerIou(boxes, 4 * i, rect, 0);
    if (iou < c.minIou || iou > c.maxIou) return false;
  }
  return true;
}

export function sampleCrop(
  rng: Rng,
  boxes: ArrayLike<number>,
  width: number,
  height: number,
  options: CropOptions = CROP_DEFAULTS,
): CropChoice {
  const whole: PixelRect = { x: 0, y: 0, width, height };
  if (boxes.length === 0) {
    const crop = options.constraints.length > 0 ? sampleTrialCrop(rng, width, height, options) : whole;
    return { crop, boxes: new Float64Array(0), kept: [] };
  }
  const candidates: PixelRect[] = [whole];
  for (const constraint of options.constraints) {
    for (let trial = 0; trial < options.maxTrials; trial++) {
      const crop = sampleTrialCrop(rng, width, height, options);
      if (satisfiesConstraint(boxes, crop, constraint)) {
        candidates.push(crop);
        break;
      }
    }
  }
  while (candidates.length > 0) {
    const [crop] = candidates.splice(rng.int(candidates.length), 1);
    const result = cropBoxes(boxes, crop!);
    if (result.kept.length > 0) return { crop: crop!, ...result };
  }
  return { crop: whole, ...cropBoxes(boxes, whole) };
}
