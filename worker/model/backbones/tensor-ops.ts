import * as tf from '@tensorflow/tfjs-core';
import { ClusterError } from '../../../shared/errors.js';
import { groupNorm as groupNormOp } from '../../backend/group-norm-op.js';
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
        // Unfused: tfjs's fused conv refuses dilated gradients; the Conv2D gradient from worker/backend takes them.
        let y = tf.conv2d(x, kernel, stride, pad, 'NHWC', dilation);
        if (bias) y = tf.add(y, bias);
        return spec.relu ? tf.relu(y) : y;
      }
      if (!bias && !spec.relu) {
        // Nothing to fuse: tf.conv2d's gradient computes dx and dfilter only when asked, while the fused
        // op's (a customGrad) always computes both, e.g. a dx for the input image of the first layer.
        return tf.conv2d(x, kernel, stride, pad);
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
    // Fused kernel where the backend has one (wasm), else the tfjs composite (group-norm-op.ts).
    groupNorm: (name, x, groups) =>
      groupNormOp(x, param(name, 'gamma'), param(name, 'beta'), groups, GROUP_NORM_EPSILON),
    l2Norm(name, x) {
      // MXNet L2Normalization(mode='channel'): x / sqrt(sum_c x^2 + eps), then the learned scale.
      const inverseNorm = tf.rsqrt(tf.add(tf.sum(tf.square(x), 3, true), L2_NORM_EPSILON));
      return tf.mul(tf.mul(x, inverseNorm), param(name, 'scale'));
    },
    add: (a, b) => tf.add(a, b),
  };
}
