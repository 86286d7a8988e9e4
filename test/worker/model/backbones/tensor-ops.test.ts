import '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import test from 'ava';
import { noopLogger } from '../../../../shared/logging.js';
import { initBackend } from '../../../../worker/backend/backend.js';
import { groupNormComposite } from '../../../../worker/backend/group-norm-op.js';
import { type ConvSpec, GROUP_NORM_EPSILON } from '../../../../worker/model/backbones/layers.js';
import { createTensorOps } from '../../../../worker/model/backbones/tensor-ops.js';

test.before(async () => {
  await initBackend('wasm', { logger: noopLogger });
});

const seeded = (shape: number[], seed: number) => tf.randomNormal(shape, 0, 1, 'float32', seed);

async function kernelNames(f: () => tf.TensorContainer): Promise<string[]> {
  const profile = await tf.profile(() => tf.dispose(f()));
  return profile.kernels.map((k) => k.name);
}

/** Names of the kernels that differentiating one conv layer for its kernel (not its input) runs. */
async function kernelGradientKernels(spec: ConvSpec): Promise<string[]> {
  const kernel = tf.variable(seeded([3, 3, 3, 4], 1));
  const bias = tf.variable(tf.zeros([4]));
  const ops = createTensorOps(
    new Map([
      ['c/kernel', kernel],
      ['c/bias', bias],
    ]),
  );
  const image = seeded([2, 8, 8, 3], 2) as tf.Tensor4D;
  const names = await kernelNames(
    () => tf.variableGrads(() => tf.sum(ops.conv('c', image, spec)), [kernel]).grads,
  );
  tf.dispose([kernel, bias, image]);
  return names;
}

test.serial(
  'a conv without bias or relu differentiated for its kernel computes no input gradient',
  async (t) => {
    await tf.setBackend('wasm');
    const plain = await kernelGradientKernels({ filters: 4, kernel: 3, stride: 2, pad: 1, bias: false });
    t.true(plain.includes('Conv2D'));
    t.true(plain.includes('Conv2DBackpropFilter'));
    t.false(plain.includes('Conv2DBackpropInput'), plain.join(','));
    // With a bias there is something to fuse: the fused op (whose gradient computes both) stays.
    const fused = await kernelGradientKernels({ filters: 4, kernel: 3, stride: 2, pad: 1 });
    t.true(fused.includes('FusedConv2D'));
  },
);

test.serial('a conv without bias or relu gives what the fused conv gives', (t) => {
  const kernel = tf.variable(seeded([3, 3, 5, 6], 3));
  const ops = createTensorOps(new Map([['c/kernel', kernel]]));
  const x = seeded([2, 7, 9, 5], 4) as tf.Tensor4D;
  for (const pad of [1, 'same', 'valid'] as const) {
    const ours = ops.conv('c', x, { filters: 6, kernel: 3, stride: 2, pad, bias: false });
    const fused = tf.fused.conv2d({ x, filter: kernel as tf.Tensor as tf.Tensor4D, strides: 2, pad });
    t.deepEqual(ours.shape, fused.shape);
    t.true(tf.max(tf.abs(tf.sub(ours, fused))).dataSync()[0]! < 1e-5, `pad ${pad}`);
    tf.dispose([ours, fused]);
  }
  tf.dispose([kernel, x]);
});

test.serial('groupNorm reads the layer gamma and beta and runs the fused kernel on wasm', async (t) => {
  const gamma = tf.variable(seeded([16], 5));
  const beta = tf.variable(seeded([16], 6));
  const ops = createTensorOps(
    new Map([
      ['gn/gamma', gamma],
      ['gn/beta', beta],
    ]),
  );
  const x = tf.add(seeded([2, 4, 3, 16], 7), 3) as tf.Tensor4D;
  const names = await kernelNames(() => ops.groupNorm('gn', x, 8));
  t.true(names.includes('GroupNorm'));
  const ours = ops.groupNorm('gn', x, 8);
  const composite = groupNormComposite(x, gamma, beta, 8, GROUP_NORM_EPSILON);
  t.true(tf.max(tf.abs(tf.sub(ours, composite))).dataSync()[0]! < 1e-5);
  tf.dispose([gamma, beta, x, ours, composite]);
});
