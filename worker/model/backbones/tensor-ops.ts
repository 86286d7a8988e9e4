import * as tf from '@tensorflow/tfjs-core';
import { ClusterError } from '../../../shared/errors.js';
import {
  BATCH_NORM_EPSILON,
  type FeatureShape,
  GROUP_NORM_EPSILON,
  L2_NORM_EPSILON,
  type NetOps,
  type ParamRole,
} from './layers.js';

/**
 * The tfjs interpreter of `NetOps` (see layers.ts): every call reads its parameters from `variables`
 * by `<layer>/<role>`. Only tfjs-core ops, so any registered backend runs it. Call it inside tf.tidy.
 */
export function createTensorOps(variables: ReadonlyMap<string, tf.Variable>): NetOps<tf.Tensor4D> {
  const param = (layer: string, role: ParamRole): tf.Tensor => {
    const v = variables.get(`${layer}/${role}`);
    if (!v) throw new ClusterError('MODEL', `the model has no parameter '${layer}/${role}'`);
    return v;
  };
  return {
    shape: (x): FeatureShape => [x.shape[1], x.shape[2], x.shape[3]],
    conv(name, x, spec) {
      const kernel = param(name, 'kernel') as tf.Tensor4D;
      const bias = spec.bias === false ? undefined : param(name, 'bias');
      const { stride = 1, pad = 'valid', dilation = 1 } = spec;
      if (dilation > 1) {
        let y = dilatedConv2d(x, kernel, pad as number, dilation);
        if (bias) y = tf.add(y, bias);
        return spec.relu ? tf.relu(y) : y;
      }
      // Fused on the inference path; tfjs itself unfuses the ReLU when recording gradients.
      return tf.fused.conv2d({
        x,
        filter: kernel,
        strides: stride,
        pad,
        bias,
        activation: spec.relu ? 'relu' : 'linear',
      });
    },
    relu: (x) => tf.relu(x),
    maxPool: (x, { size, stride, pad }) => tf.maxPool(x, size, stride, pad),
    batchNorm(name, x) {
      // y = (x - mean) * gamma / sqrt(var + eps) + beta, folded per channel into x * a + b.
      const a = tf.mul(
        param(name, 'gamma'),
        tf.rsqrt(tf.add(param(name, 'moving_variance'), BATCH_NORM_EPSILON)),
      );
      const b = tf.sub(param(name, 'beta'), tf.mul(param(name, 'moving_mean'), a));
      return tf.add(tf.mul(x, a), b);
    },
    groupNorm(name, x, groups) {
      const [batch, h, w, c] = x.shape;
      // Statistics per sample and group only: the result never depends on the rest of the batch.
      const grouped = tf.reshape(x, [batch, h * w, groups, c / groups]);
      const { mean, variance } = tf.moments(grouped, [1, 3], true);
      const normed = tf.mul(tf.sub(grouped, mean), tf.rsqrt(tf.add(variance, GROUP_NORM_EPSILON)));
      return tf.add(tf.mul(tf.reshape(normed, x.shape), param(name, 'gamma')), param(name, 'beta'));
    },
    l2Norm(name, x) {
      // MXNet L2Normalization(mode='channel'): x / sqrt(sum_c x^2 + eps), then the learned scale.
      const inverseNorm = tf.rsqrt(tf.add(tf.sum(tf.square(x), 3, true), L2_NORM_EPSILON));
      return tf.mul(tf.mul(x, inverseNorm), param(name, 'scale'));
    },
    add: (a, b) => tf.add(a, b),
  };
}

/**
 * tf.conv2d with dilation > 1 (VGG's atrous fc6), with the gradient that tfjs-core refuses ("dilation
 * rates greater than 1 are not yet supported in gradients"). For stride 1, symmetric pad p, kernel k,
 * rate d:
 *   y[o]  = sum_t W[t] x[o + d t - p]
 *   dx    = conv2d(dy, W flipped in space with in/out swapped, pad d (k - 1) - p, rate d)
 *   dW[t] = sum_o xpad[o + d t] dy[o]
 *         = conv2d(xpad as [in, H, W, batch], dy as a [h, w, batch, out] filter, stride d, valid)
 * Both are plain forward convolutions, so every backend runs them with its fast conv kernel.
 */
export function dilatedConv2d(
  x: tf.Tensor4D,
  kernel: tf.Tensor4D,
  pad: number,
  dilation: number,
): tf.Tensor4D {
  const k = kernel.shape[0];
  if (pad > dilation * (k - 1)) {
    throw new ClusterError('MODEL', `dilated conv: pad ${pad} exceeds the dilated kernel extent`);
  }
  const forward = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [input, filter, save] = args as [tf.Tensor4D, tf.Tensor4D, tf.GradSaveFunc];
    save([input, filter]);
    const value = tf.conv2d(input, filter, 1, pad, 'NHWC', dilation);
    const gradFunc = (dy: tf.Tensor4D, saved: tf.Tensor[]) => {
      const [xs, w] = saved as [tf.Tensor4D, tf.Tensor4D];
      const flipped = tf.transpose(tf.reverse(w, [0, 1]), [0, 1, 3, 2]);
      const dx = tf.conv2d(dy, flipped, 1, dilation * (k - 1) - pad, 'NHWC', dilation);
      const padded = tf.pad(xs, [
        [0, 0],
        [pad, pad],
        [pad, pad],
        [0, 0],
      ]);
      const dwT = tf.conv2d(
        tf.transpose(padded, [3, 1, 2, 0]),
        tf.transpose(dy, [1, 2, 0, 3]),
        dilation,
        'valid',
      );
      return [dx, tf.transpose(dwT, [1, 2, 0, 3])];
    };
    return { value, gradFunc };
  });
  return forward(x, kernel) as tf.Tensor4D;
}
