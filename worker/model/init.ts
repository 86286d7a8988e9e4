import { createRng, RNG_STREAM } from '../../shared/random.js';
import { type ParamSpec, sizeOf } from './backbones/layers.js';

/**
 * Deterministic initial values, computed on the host so that the same seed gives bit-identical
 * weights on every backend and in every worker: parameter i (in the model's fixed order) draws from
 * createRng(seed, RNG_STREAM.init, i) and nothing else.
 *
 * Kernels are HWIO [kh, kw, in, out]; fan_in = kh*kw*in, fan_out = kh*kw*out (MXNet's Xavier fans).
 * - 'xavier-gaussian-out': N(0, 2 / fan_out), i.e. MXNet Xavier(rnd_type='gaussian', factor_type='out',
 *   magnitude=2) = MSRA/He for ReLU nets. GluonCV uses it for the SSD expander layers; here it is used
 *   for every base and extra conv, which only matters when training without a pretrained base.
 * - 'xavier-uniform-avg': U(-s, s) with s = sqrt(2 / ((fan_in + fan_out) / 2)), i.e. MXNet Xavier(magnitude=2)
 *   as GluonCV's ConvPredictor uses for the class and box heads.
 * - constants: biases 0 (including the class-logit bias, as caffe and GluonCV: no focal-loss prior, because
 *   hard negative mining already balances background), BatchNorm gamma 1 / beta 0 / mean 0 / variance 1
 *   (gamma 0 where the layer's spec says so: a from-scratch resnet-50's residual ends, resnet50.ts),
 *   GroupNorm gamma 1 / beta 0, the L2Norm scale 20.
 */
export function initialValues(spec: ParamSpec, seed: number, index: number): Float32Array {
  const out = new Float32Array(sizeOf(spec.shape));
  const { init } = spec;
  if (init.kind === 'constant') return out.fill(init.value);
  const [kh = 1, kw = 1, inputs = 1, outputs = 1] = spec.shape;
  const fanIn = kh * kw * inputs;
  const fanOut = kh * kw * outputs;
  const rng = createRng(seed, RNG_STREAM.init, index);
  if (init.kind === 'xavier-gaussian-out') {
    const std = Math.sqrt(2 / fanOut);
    for (let i = 0; i < out.length; i++) out[i] = rng.normal() * std;
  } else {
    const limit = Math.sqrt(2 / ((fanIn + fanOut) / 2));
    for (let i = 0; i < out.length; i++) out[i] = rng.uniform(-limit, limit);
  }
  return out;
}
