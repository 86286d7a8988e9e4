import * as tf from '@tensorflow/tfjs-core';
import { ClusterError } from '../../shared/errors.js';

/**
 * The GroupNorm op: y = (x - mean) * rstd * gamma + beta with statistics per (sample, group of C/G
 * adjacent channels) over x [B, H, W, C] (NHWC).
 *
 * It runs the fused 'GroupNorm' kernel when the active backend has one (wasm, registered by
 * wasm-kernels/register.ts with `groupNormGradient` below) and otherwise the tfjs composite, so the
 * tensorflow and cpu backends compute what they always did. The op lives here, with the backend, because
 * choosing a kernel and differentiating it is the backend's business: the model only calls `groupNorm`.
 *
 * Kernel contract (wasm-kernels/group-norm.ts):
 *   GroupNorm {x, gamma, beta} {groups, epsilon} -> [y, mean, rstd]   (mean, rstd: [B, G])
 *   GroupNormGrad {dy, x, gamma, mean, rstd} {groups} -> [dx, dgamma, dbeta]
 */
export const GROUP_NORM = 'GroupNorm';
export const GROUP_NORM_GRAD = 'GroupNormGrad';

/**
 * The gradient of GroupNorm through GroupNormGrad. One kernel call yields all three gradients, so it
 * runs when tfjs asks for this node's gradients (inside tfjs's backward tidy, which disposes whichever
 * of them no input needs) rather than once per input thunk. Only y's dy counts: the op disposes mean and
 * rstd before anyone can use them, so their dys are the zeros tfjs fills in. Not differentiable twice.
 */
export const groupNormGradient: tf.GradConfig = {
  kernelName: GROUP_NORM,
  inputsToSave: ['x', 'gamma'],
  outputsToSave: [false, true, true],
  gradFunc: (dys, saved, attrs) => {
    const [x, gamma, mean, rstd] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
    const dy = Array.isArray(dys) ? dys[0]! : dys;
    const { groups } = attrs as unknown as { groups: number };
    const [dx, dgamma, dbeta] = tf
      .engine()
      .runKernel(GROUP_NORM_GRAD, { dy, x, gamma, mean, rstd }, { groups }) as tf.Tensor[];
    return { x: () => dx!, gamma: () => dgamma!, beta: () => dbeta! };
  },
};

/** Whether `groupNorm` takes the fused kernel on the active backend. */
export function hasFusedGroupNorm(): boolean {
  const gradient = tf.getGradient(GROUP_NORM);
  return tf.getKernel(GROUP_NORM, tf.getBackend()) !== undefined && gradient === groupNormGradient;
}

export function groupNorm(
  x: tf.Tensor4D,
  gamma: tf.Tensor,
  beta: tf.Tensor,
  groups: number,
  epsilon: number,
): tf.Tensor4D {
  checkGroupNormArgs(x, gamma, beta, groups);
  if (!hasFusedGroupNorm()) return groupNormComposite(x, gamma, beta, groups, epsilon);
  const [y, mean, rstd] = tf
    .engine()
    .runKernel(GROUP_NORM, { x, gamma, beta }, { groups, epsilon }) as tf.Tensor[];
  // The tape keeps its own clones of mean and rstd for the gradient.
  tf.dispose([mean!, rstd!]);
  return y as tf.Tensor4D;
}

/** The same op from tfjs ops: what every backend without the kernel runs, and the tests' reference. */
export function groupNormComposite(
  x: tf.Tensor4D,
  gamma: tf.Tensor,
  beta: tf.Tensor,
  groups: number,
  epsilon: number,
): tf.Tensor4D {
  return tf.tidy(() => {
    const [batch, h, w, c] = x.shape;
    // Statistics per sample and group only: the result never depends on the rest of the batch.
    const grouped = tf.reshape(x, [batch, h * w, groups, c / groups]);
    const { mean, variance } = tf.moments(grouped, [1, 3], true);
    // (x - mean) * rstd * gamma + beta, folded into x * scale + shift ([B, 1, G, C/G]): two full-size ops.
    const perGroup = (t: tf.Tensor) => tf.reshape(t, [1, 1, groups, c / groups]);
    const scale = tf.mul(tf.rsqrt(tf.add(variance, epsilon)), perGroup(gamma));
    const shift = tf.sub(perGroup(beta), tf.mul(mean, scale));
    return tf.reshape(tf.add(tf.mul(grouped, scale), shift), x.shape);
  });
}

function checkGroupNormArgs(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, groups: number): void {
  const fail = (what: string) => {
    throw new ClusterError('MODEL', `groupNorm: ${what}`);
  };
  if (x.rank !== 4) fail(`x must be [batch, height, width, channels], got [${x.shape}]`);
  const channels = x.shape[3]!;
  if (!Number.isInteger(groups) || groups < 1 || channels % groups !== 0) {
    fail(`groups must be a positive integer dividing the ${channels} channels, got ${groups}`);
  }
  for (const [name, t] of [
    ['x', x],
    ['gamma', gamma],
    ['beta', beta],
  ] as const) {
    if (t.dtype !== 'float32') fail(`${name} is ${t.dtype}, expected float32`);
  }
  for (const [name, t] of [
    ['gamma', gamma],
    ['beta', beta],
  ] as const) {
    if (t.rank !== 1 || t.shape[0] !== channels) fail(`${name} must be [${channels}], got [${t.shape}]`);
  }
}
