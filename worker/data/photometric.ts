/**
 * SSD photometric distortion (GluonCV `random_color_distort`, after caffe's DistortImage), pure.
 *
 * Order and draws, each step applied with p = 0.5 (SPEC part 2, sections 1-2):
 *   1. brightness: x += delta, delta ~ U(-32, 32) on the 0-255 scale;
 *   2. a fair coin picks the order of the rest:
 *      contrast, saturation, hue   or   saturation, hue, contrast;
 *   contrast: x *= alpha, alpha ~ U(0.5, 1.5);
 *   saturation: x = alpha x + (1 - alpha) gray(x), gray = 0.299 R + 0.587 G + 0.114 B, alpha ~ U(0.5, 1.5);
 *   hue: rotate the I/Q plane of YIQ by theta ~ U(-18, 18) degrees.
 *
 * Like GluonCV (and unlike caffe, which works on uint8) nothing is clipped between steps, so every step
 * is an affine map of the RGB vector and the whole distortion is one 3x4 colour transform
 * y = M x + b. Resizing takes weighted averages with weights summing to 1, which commute with affine
 * maps, so the transform can be applied after the resize, to the S x S output only: the result is the
 * same (up to the resize's uint8 rounding) as distorting the full-size image first.
 *
 * One deliberate difference: GluonCV computes the hue angle as `alpha * pi` with alpha in +-18, i.e.
 * radians by mistake (+-18 pi); we use degrees, as caffe and the paper do.
 */
import type { Rng } from '../../shared/random.js';

/** y = matrix * x + offset per pixel, RGB on the 0-255 scale; matrix is row-major 3x3. */
export interface ColourTransform {
  matrix: Float64Array;
  offset: Float64Array;
}

export const PHOTOMETRIC_DEFAULTS = Object.freeze({
  probability: 0.5,
  brightnessDelta: 32,
  contrastRange: [0.5, 1.5] as const,
  saturationRange: [0.5, 1.5] as const,
  hueDeltaDegrees: 18,
});

const LUMA = [0.299, 0.587, 0.114] as const;
/** RGB -> YIQ and back, the matrices GluonCV and caffe use. */
const RGB_TO_YIQ = [0.299, 0.587, 0.114, 0.596, -0.274, -0.321, 0.211, -0.523, 0.311];
const YIQ_TO_RGB = [1.0, 0.956, 0.621, 1.0, -0.272, -0.647, 1.0, -1.107, 1.705];

export function identityColourTransform(): ColourTransform {
  return { matrix: Float64Array.of(1, 0, 0, 0, 1, 0, 0, 0, 1), offset: new Float64Array(3) };
}

function multiply3(a: ArrayLike<number>, b: ArrayLike<number>): Float64Array {
  const out = new Float64Array(9);
  for (let r = 0; r < 3; r++) {
    for (let c = 0; c < 3; c++) {
      out[3 * r + c] = a[3 * r]! * b[c]! + a[3 * r + 1]! * b[3 + c]! + a[3 * r + 2]! * b[6 + c]!;
    }
  }
  return out;
}

/** Applies the step y = a x + c after `t` (returns a new transform: a*M, a*b + c). */
export function thenAffine(t: ColourTransform, a: ArrayLike<number>, c: ArrayLike<number> = [0, 0, 0]) {
  const offset = new Float64Array(3);
  for (let r = 0; r < 3; r++) {
    offset[r] =
      a[3 * r]! * t.offset[0]! + a[3 * r + 1]! * t.offset[1]! + a[3 * r + 2]! * t.offset[2]! + c[r]!;
  }
  return { matrix: multiply3(a, t.matrix), offset };
}

export function brightnessStep(delta: number): { a: number[]; c: number[] } {
  return { a: [1, 0, 0, 0, 1, 0, 0, 0, 1], c: [delta, delta, delta] };
}

export function contrastStep(alpha: number): { a: number[]; c: number[] } {
  return { a: [alpha, 0, 0, 0, alpha, 0, 0, 0, alpha], c: [0, 0, 0] };
}

export function saturationStep(alpha: number): { a: number[]; c: number[] } {
  const a: number[] = [];
  for (let r = 0; r < 3; r++) {
    for (let c = 0; c < 3; c++) a.push((r === c ? alpha : 0) + (1 - alpha) * LUMA[c]!);
  }
  return { a, c: [0, 0, 0] };
}

export function hueStep(degrees: number): { a: number[]; c: number[] } {
  const theta = (degrees * Math.PI) / 180;
  const u = Math.cos(theta);
  const w = Math.sin(theta);
  const rotate = [1, 0, 0, 0, u, -w, 0, w, u];
  return { a: Array.from(multiply3(multiply3(YIQ_TO_RGB, rotate), RGB_TO_YIQ)), c: [0, 0, 0] };
}

/**
 * Draws the distortion from `rng` in GluonCV's order; null when no step fired (1 time in 16), so
 * callers can skip the pixel pass.
 */
export function samplePhotometric(rng: Rng, options = PHOTOMETRIC_DEFAULTS): ColourTransform | null {
  const p = options.probability;
  let t = identityColourTransform();
  let fired = false;
  const maybe = (draw: () => { a: number[]; c: number[] }) => {
    if (!rng.chance(p)) return;
    const step = draw();
    t = thenAffine(t, step.a, step.c);
    fired = true;
  };
  const [cLo, cHi] = options.contrastRange;
  const [sLo, sHi] = options.saturationRange;
  const contrast = () => maybe(() => contrastStep(rng.uniform(cLo, cHi)));
  const saturation = () => maybe(() => saturationStep(rng.uniform(sLo, sHi)));
  const hue = () => maybe(() => hueStep(rng.uniform(-options.hueDeltaDegrees, options.hueDeltaDegrees)));
  maybe(() => brightnessStep(rng.uniform(-options.brightnessDelta, options.brightnessDelta)));
  const steps = rng.chance(0.5) ? [contrast, saturation, hue] : [saturation, hue, contrast];
  for (const step of steps) step();
  return fired ? t : null;
}

/** The transform applied to one RGB triple (for tests and single pixels). */
export function applyColourTransform(t: ColourTransform, rgb: ArrayLike<number>): [number, number, number] {
  const m = t.matrix;
  const [r, g, b] = [rgb[0]!, rgb[1]!, rgb[2]!];
  return [
    m[0]! * r + m[1]! * g + m[2]! * b + t.offset[0]!,
    m[3]! * r + m[4]! * g + m[5]! * b + t.offset[1]!,
    m[6]! * r + m[7]! * g + m[8]! * b + t.offset[2]!,
  ];
}
