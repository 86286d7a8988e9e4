/**
 * The loops of GroupNorm and its gradient (pure: typed arrays in and out; group-norm.ts runs them as wasm
 * kernels over heap views), fused: x [B, H, W, C] (NHWC), `groups` groups of
 * C/G adjacent channels, statistics per (sample, group) over H*W*(C/G) elements.
 *
 *   GroupNorm(x, gamma, beta; groups, epsilon) -> [y, mean, rstd]   (mean, rstd: [B, G])
 *     y = (x - mean) * rstd * gamma_c + beta_c,  rstd = 1 / sqrt(var + epsilon)
 *   GroupNormGrad(dy, x, gamma, mean, rstd; groups) -> [dx, dgamma, dbeta]
 *     xhat = (x - mean) * rstd, g = dy * gamma_c,
 *     dx = rstd * (g - mean_group(g) - xhat * mean_group(g * xhat)),
 *     dgamma_c = sum dy * xhat, dbeta_c = sum dy (over batch and pixels).
 *
 * The tfjs composite (reshape, moments, mul, add) makes ~6 full-size passes forward and more for its
 * gradient, several of them broadcasting binary ops that the wasm backend runs slowly. Here the forward
 * reads x twice and writes y once; the backward reads dy and x twice and writes dx once. The passes are
 * memory-bound, so their order matters more than the arithmetic: each walks a sample in blocks of about
 * BLOCK_FLOATS values (whole pixels, so in L1), channel by channel within a block (a strided loop with
 * the channel's constants and sums in locals), and adds the block's per-channel sums to Float64Arrays;
 * channels are summed per group afterwards. (Pixel by pixel with the channels innermost and the sums in
 * typed arrays ran ~3x slower.)
 *
 * Variance: one pass of sum and sum of squares of v = x - shift (shift: the group's first element),
 * accumulated in doubles, rather than a second pass over x, which would cost as much as normalising.
 * Doubles and the shift keep E[v^2] - E[v]^2 from cancelling when |mean| >> std: float32 sums without
 * the shift put y ~1e-2 off at x + 1000 (the test case), here y is float64 up to its final rounding.
 */
const BLOCK_FLOATS = 2048;

export interface GroupNormDims {
  batch: number;
  /** H * W. */
  pixels: number;
  channels: number;
  groups: number;
}

/** How a pass walks one sample: `size` values, blocks of `step` values (whole pixels). */
interface Walk {
  channels: number;
  size: number;
  step: number;
}

function walkOf({ pixels, channels }: GroupNormDims): Walk {
  return {
    channels,
    size: pixels * channels,
    step: Math.max(1, Math.floor(BLOCK_FLOATS / channels)) * channels,
  };
}

/** y, mean and rstd from x; per-channel work arrays are allocated once per call, not per element. */
export function groupNormForward(
  x: Float32Array,
  gamma: Float32Array,
  beta: Float32Array,
  dims: GroupNormDims,
  epsilon: number,
  out: { y: Float32Array; mean: Float32Array; rstd: Float32Array },
): void {
  const { batch, pixels, channels, groups } = dims;
  const perGroup = channels / groups;
  const count = pixels * perGroup;
  const walk = walkOf(dims);
  const shift = new Float64Array(channels);
  const sum = new Float64Array(channels);
  const squares = new Float64Array(channels);
  const scale = new Float64Array(channels);
  const offset = new Float64Array(channels);
  for (let b = 0; b < batch; b++) {
    const base = b * walk.size;
    for (let c = 0; c < channels; c++) shift[c] = x[base + c - (c % perGroup)]!;
    sampleMoments(x, base, walk, shift, sum, squares);
    for (let g = 0; g < groups; g++) {
      const first = g * perGroup;
      let s = 0;
      let q = 0;
      for (let c = first; c < first + perGroup; c++) {
        s += sum[c]!;
        q += squares[c]!;
      }
      const shifted = s / count;
      const mean = shift[first]! + shifted;
      const rstd = 1 / Math.sqrt(Math.max(0, q / count - shifted * shifted) + epsilon);
      out.mean[b * groups + g] = mean;
      out.rstd[b * groups + g] = rstd;
      for (let c = first; c < first + perGroup; c++) {
        scale[c] = rstd * gamma[c]!;
        offset[c] = beta[c]! - mean * scale[c]!;
      }
    }
    sampleAffine(x, out.y, base, walk, scale, offset);
  }
}

/** sum[c] and squares[c] = sums of (x - shift[c]) and its square over channel c of one sample. */
function sampleMoments(
  x: Float32Array,
  base: number,
  { channels, size, step }: Walk,
  shift: Float64Array,
  sum: Float64Array,
  squares: Float64Array,
): void {
  sum.fill(0);
  squares.fill(0);
  for (let start = base; start < base + size; start += step) {
    const end = Math.min(start + step, base + size);
    for (let c = 0; c < channels; c++) {
      const k = shift[c]!;
      let s = 0;
      let q = 0;
      for (let i = start + c; i < end; i += channels) {
        const v = x[i]! - k;
        s += v;
        q += v * v;
      }
      sum[c] = sum[c]! + s;
      squares[c] = squares[c]! + q;
    }
  }
}

/** y = x * scale[c] + offset[c] over one sample. */
function sampleAffine(
  x: Float32Array,
  y: Float32Array,
  base: number,
  { channels, size, step }: Walk,
  scale: Float64Array,
  offset: Float64Array,
): void {
  for (let start = base; start < base + size; start += step) {
    const end = Math.min(start + step, base + size);
    for (let c = 0; c < channels; c++) {
      const a = scale[c]!;
      const o = offset[c]!;
      for (let i = start + c; i < end; i += channels) y[i] = x[i]! * a + o;
    }
  }
}

/** dx, dgamma and dbeta from dy, x and the forward's mean and rstd (as float32, as saved). */
export function groupNormBackward(
  dy: Float32Array,
  x: Float32Array,
  gamma: Float32Array,
  stats: { mean: Float32Array; rstd: Float32Array },
  dims: GroupNormDims,
  out: { dx: Float32Array; dgamma: Float32Array; dbeta: Float32Array },
): void {
  const { batch, pixels, channels, groups } = dims;
  const perGroup = channels / groups;
  const count = pixels * perGroup;
  const walk = walkOf(dims);
  const mean = new Float64Array(channels);
  const sumDy = new Float64Array(channels);
  const sumDyXhat = new Float64Array(channels);
  const dgamma = new Float64Array(channels);
  const dbeta = new Float64Array(channels);
  // dx = dyScale[c] * dy + centredScale[c] * (x - mean[c]) + constant[c]
  const coefficients = {
    dyScale: new Float64Array(channels),
    centredScale: new Float64Array(channels),
    constant: new Float64Array(channels),
  };
  for (let b = 0; b < batch; b++) {
    const base = b * walk.size;
    for (let c = 0; c < channels; c++) mean[c] = stats.mean[b * groups + ((c / perGroup) | 0)]!;
    sampleGradientSums(dy, x, base, walk, mean, sumDy, sumDyXhat);
    for (let g = 0; g < groups; g++) {
      const first = g * perGroup;
      const rstd = stats.rstd[b * groups + g]!;
      let meanG = 0;
      let meanGXhat = 0;
      for (let c = first; c < first + perGroup; c++) {
        sumDyXhat[c] = sumDyXhat[c]! * rstd;
        dbeta[c] = dbeta[c]! + sumDy[c]!;
        dgamma[c] = dgamma[c]! + sumDyXhat[c]!;
        meanG += gamma[c]! * sumDy[c]!;
        meanGXhat += gamma[c]! * sumDyXhat[c]!;
      }
      // rstd * (gamma_c * dy - meanG / count - xhat * meanGXhat / count), xhat = (x - mean) * rstd.
      for (let c = first; c < first + perGroup; c++) {
        coefficients.dyScale[c] = rstd * gamma[c]!;
        coefficients.centredScale[c] = (-rstd * rstd * meanGXhat) / count;
        coefficients.constant[c] = (-rstd * meanG) / count;
      }
    }
    sampleInputGradient(dy, x, out.dx, base, walk, mean, coefficients);
  }
  out.dgamma.set(dgamma);
  out.dbeta.set(dbeta);
}

/** sumDy[c] and sumDyCentred[c] = sums of dy and dy * (x - mean[c]) over channel c of one sample. */
function sampleGradientSums(
  dy: Float32Array,
  x: Float32Array,
  base: number,
  { channels, size, step }: Walk,
  mean: Float64Array,
  sumDy: Float64Array,
  sumDyCentred: Float64Array,
): void {
  sumDy.fill(0);
  sumDyCentred.fill(0);
  for (let start = base; start < base + size; start += step) {
    const end = Math.min(start + step, base + size);
    for (let c = 0; c < channels; c++) {
      const m = mean[c]!;
      let s = 0;
      let sx = 0;
      for (let i = start + c; i < end; i += channels) {
        const d = dy[i]!;
        s += d;
        sx += d * (x[i]! - m);
      }
      sumDy[c] = sumDy[c]! + s;
      sumDyCentred[c] = sumDyCentred[c]! + sx;
    }
  }
}

function sampleInputGradient(
  dy: Float32Array,
  x: Float32Array,
  dx: Float32Array,
  base: number,
  { channels, size, step }: Walk,
  mean: Float64Array,
  { dyScale, centredScale, constant }: Record<'dyScale' | 'centredScale' | 'constant', Float64Array>,
): void {
  for (let start = base; start < base + size; start += step) {
    const end = Math.min(start + step, base + size);
    for (let c = 0; c < channels; c++) {
      const a = dyScale[c]!;
      const f = centredScale[c]!;
      const m = mean[c]!;
      const k = constant[c]!;
      for (let i = start + c; i < end; i += channels) dx[i] = a * dy[i]! + f * (x[i]! - m) + k;
    }
  }
}
