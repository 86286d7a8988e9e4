import '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import test from 'ava';
import { noopLogger } from '../../../../shared/logging.js';
import { initBackend } from '../../../../worker/backend/backend.js';
import { groupNormComposite } from '../../../../worker/backend/group-norm-op.js';
import { GROUP_NORM_EPSILON } from '../../../../worker/model/backbones/layers.js';
import { createTensorOps } from '../../../../worker/model/backbones/tensor-ops.js';

test.before(async () => {
  await initBackend('wasm', { logger: noopLogger });
});

const seeded = (shape: number[], seed: number) => tf.randomNormal(shape, 0, 1, 'float32', seed);

async function kernelNames(f: () => tf.TensorContainer): Promise<string[]> {
  const profile = await tf.profile(() => tf.dispose(f()));
  return profile.kernels.map((k) => k.name);
}

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
