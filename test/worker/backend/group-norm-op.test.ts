import * as tf from '@tensorflow/tfjs-core';
import test from 'ava';
import { ClusterError } from '../../../shared/errors.js';
import { groupNorm, hasFusedGroupNorm } from '../../../worker/backend/group-norm-op.js';
import {
  registerWasmTrainingKernels,
  unregisterWasmTrainingKernels,
} from '../../../worker/backend/wasm-kernels/register.js';
import { initWasmAndCpu, relativeError, runOn, seeded } from './backend-compare.js';

test.before(async () => {
  await initWasmAndCpu();
  await tf.setBackend('wasm');
});

const SHAPE: [number, number, number, number] = [2, 5, 3, 12];

/** y and the gradients of sum(y * w) for x, gamma and beta, through the op on the active backend. */
function forwardAndGradients(): tf.Tensor[] {
  const x = tf.add(tf.mul(seeded(SHAPE, 1), 3), 2) as tf.Tensor4D;
  const gamma = seeded([12], 2);
  const beta = seeded([12], 3);
  const w = seeded(SHAPE, 4);
  const f = (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => groupNorm(a as tf.Tensor4D, g, b, 3, 1e-5);
  return [f(x, gamma, beta), ...tf.grads((a, g, b) => tf.sum(tf.mul(f(a!, g!, b!), w)))([x, gamma, beta])];
}

async function kernelsRun(f: () => tf.Tensor[]): Promise<Set<string>> {
  const profile = await tf.profile(() => tf.dispose(f()));
  return new Set(profile.kernels.map((k) => k.name));
}

test.serial(
  'groupNorm runs the fused kernels on wasm and the tfjs composite on cpu, with equal results',
  async (t) => {
    t.true(hasFusedGroupNorm());
    const wasmKernels = await kernelsRun(forwardAndGradients);
    t.true(wasmKernels.has('GroupNorm') && wasmKernels.has('GroupNormGrad'));
    t.false(wasmKernels.has('Mean'), 'no composite moments on wasm');
    await tf.setBackend('cpu');
    t.false(hasFusedGroupNorm());
    const cpuKernels = await kernelsRun(forwardAndGradients);
    await tf.setBackend('wasm');
    t.false(cpuKernels.has('GroupNorm'));
    t.true(cpuKernels.has('Mean'));
    const fused = await runOn('wasm', forwardAndGradients);
    const composite = await runOn('cpu', forwardAndGradients);
    for (const [i, name] of ['y', 'dx', 'dgamma', 'dbeta'].entries()) {
      t.true(relativeError(fused[i]!, composite[i]!) < 1e-4, name);
    }
  },
);

test.serial(
  'groupNorm on wasm falls back to the composite while the GroupNorm kernel is unregistered',
  async (t) => {
    const fused = await runOn('wasm', forwardAndGradients);
    unregisterWasmTrainingKernels();
    t.teardown(registerWasmTrainingKernels);
    t.false(hasFusedGroupNorm());
    const kernels = await kernelsRun(forwardAndGradients);
    t.false(kernels.has('GroupNorm'));
    const composite = await runOn('wasm', forwardAndGradients);
    for (const [i, values] of composite.entries()) t.true(relativeError(values, fused[i]!) < 1e-4);
    registerWasmTrainingKernels();
    t.true(hasFusedGroupNorm());
  },
);

test.serial(
  'the GroupNorm gradient runs GroupNormGrad once per node and frees the gradients nobody asked for',
  async (t) => {
    const x = seeded(SHAPE, 5) as tf.Tensor4D;
    const gamma = seeded([12], 6);
    const beta = seeded([12], 7);
    const betaOnly = () => {
      const [dbeta] = tf.grads((b) => tf.sum(tf.square(groupNorm(x, gamma, b!, 4, 1e-5))))([beta]);
      return [dbeta!];
    };
    const profile = await tf.profile(() => tf.dispose(betaOnly()));
    t.is(profile.kernels.filter((k) => k.name === 'GroupNormGrad').length, 1);
    const tensors = tf.memory().numTensors;
    const buffers = tf.engine().backend.numDataIds();
    const [dbeta] = tf.tidy(betaOnly);
    t.deepEqual(dbeta!.shape, [12]);
    t.is(tf.memory().numTensors, tensors + 1, 'only dbeta survives');
    t.is(tf.engine().backend.numDataIds(), buffers + 1);
    tf.dispose([dbeta!, x, gamma, beta]);
  },
);

test.serial('groupNorm names what is wrong with x, gamma, beta or groups before it picks a kernel', (t) => {
  const x = tf.zeros([1, 2, 2, 6]) as tf.Tensor4D;
  const ones = tf.ones([6]);
  const fails = (f: () => unknown, message: string) => {
    const err = t.throws(f, { instanceOf: ClusterError, message: `groupNorm: ${message}` });
    t.is(err?.code, 'MODEL');
  };
  fails(
    () => groupNorm(tf.zeros([2, 2, 6]) as tf.Tensor as tf.Tensor4D, ones, ones, 2, 1e-5),
    'x must be [batch, height, width, channels], got [2,2,6]',
  );
  fails(
    () => groupNorm(tf.zeros([1, 2, 2, 6], 'int32') as tf.Tensor4D, ones, ones, 2, 1e-5),
    'x is int32, expected float32',
  );
  fails(() => groupNorm(x, tf.ones([6], 'int32'), ones, 2, 1e-5), 'gamma is int32, expected float32');
  fails(() => groupNorm(x, ones, tf.ones([2, 3]), 2, 1e-5), 'beta must be [6], got [2,3]');
  for (const groups of [0, 4, 1.5]) {
    fails(
      () => groupNorm(x, ones, ones, groups, 1e-5),
      `groups must be a positive integer dividing the 6 channels, got ${groups}`,
    );
  }
  tf.dispose([x, ones]);
});
