/**
 * The network input, S x S x 3 float32 in HWC order, RGB (pure).
 *
 * Normalisation is GluonCV's: v / 255, then (v - mean) / std per channel with the ImageNet mean
 * (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225). The expansion fill is the mean pixel
 * (mean * 255, as GluonCV fills), so it normalises to exactly 0: the output starts zeroed and only
 * image pixels are written.
 *
 * The colour distortion and the normalisation are both affine, so they are folded into one 3x4
 * transform and each pixel costs 9 multiply-adds.
 */
import type { ColourTransform } from './photometric.js';
import { identityColourTransform, thenAffine } from './photometric.js';
import type { Placement } from './placement.js';

export type Rgb = readonly [number, number, number];

export const IMAGENET_MEAN: Rgb = [0.485, 0.456, 0.406];
export const IMAGENET_STD: Rgb = [0.229, 0.224, 0.225];

export interface Normalisation {
  /** Per-channel mean on the 0-1 scale. */
  mean: Rgb;
  /** Per-channel standard deviation on the 0-1 scale. */
  std: Rgb;
}

export const IMAGENET_NORMALISATION: Normalisation = Object.freeze({
  mean: IMAGENET_MEAN,
  std: IMAGENET_STD,
});

/** `colour` (0-255 scale) followed by the normalisation, as one transform. */
export function foldNormalisation(colour: ColourTransform | null, norm: Normalisation): ColourTransform {
  const a = norm.std.map((s) => 1 / (255 * s));
  const c = norm.mean.map((m, k) => -m / norm.std[k]!);
  return thenAffine(colour ?? identityColourTransform(), [a[0]!, 0, 0, 0, a[1]!, 0, 0, 0, a[2]!], c);
}

/**
 * Writes one sample's input into out[offset .. offset + S*S*3): zeros (the mean fill), then the region's
 * uint8 RGB pixels (region.width * region.height * 3, row-major) at (left, top), transformed; mirrored
 * left-right when `flip`.
 */
export function composeInput(
  pixels: Uint8Array,
  p: Placement,
  transform: ColourTransform,
  flip: boolean,
  out: Float32Array,
  offset = 0,
): void {
  const s = p.size;
  out.fill(0, offset, offset + s * s * 3);
  if (p.region === null) return;
  const { width, height } = p.region;
  const m = transform.matrix;
  const [m0, m1, m2, m3, m4, m5, m6, m7, m8] = [
    m[0]!,
    m[1]!,
    m[2]!,
    m[3]!,
    m[4]!,
    m[5]!,
    m[6]!,
    m[7]!,
    m[8]!,
  ];
  const [b0, b1, b2] = [transform.offset[0]!, transform.offset[1]!, transform.offset[2]!];
  for (let row = 0; row < height; row++) {
    const outRow = offset + (p.top + row) * s * 3;
    for (let col = 0; col < width; col++) {
      const at = (row * width + col) * 3;
      const u = flip ? s - 1 - (p.left + col) : p.left + col;
      const o = outRow + u * 3;
      const r = pixels[at]!;
      const g = pixels[at + 1]!;
      const b = pixels[at + 2]!;
      out[o] = m0 * r + m1 * g + m2 * b + b0;
      out[o + 1] = m3 * r + m4 * g + m5 * b + b1;
      out[o + 2] = m6 * r + m7 * g + m8 * b + b2;
    }
  }
}
