import * as tf from '@tensorflow/tfjs-core';
import test from 'ava';
import {
  registerWasmTrainingKernels,
  unregisterWasmTrainingKernels,
} from '../../../../worker/backend/wasm-kernels/register.js';
import { initWasmAndCpu, relativeError, runOn, seeded, TIGHT } from '../backend-compare.js';

test.before(async () => {
  await initWasmAndCpu();
});

/** ReLU output: whole 2x2 windows of zeros, then one window whose maximum is tied. */
const reluOutput = () => tf.tensor4d([0, 0, 3, 1, 0, 0, 2, 3, 5, 0, 0, 0, 0, 5, 0, 0], [1, 4, 4, 1]);

const poolGrad = (x: tf.Tensor) => tf.grad((v: tf.Tensor) => tf.maxPool(v as tf.Tensor4D, 2, 2, 'valid'))(x);

test.serial(
  'the stock wasm MaxPoolGrad sends the gradient of windows without a positive value to element 0',
  async (t) => {
    unregisterWasmTrainingKernels();
    try {
      const [stock] = await runOn('wasm', () => poolGrad(reluOutput()));
      // Window 0 (zeros) lands on x[0] only because x[0] is in it; window 3 (zeros) is lost; the tied
      // windows 1 and 2 pick their last maximum.
      t.deepEqual(Array.from(stock!), [1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0]);
    } finally {
      registerWasmTrainingKernels();
    }
  },
);

test.serial(
  'wasm MaxPoolGrad routes each window to its first maximum, as the cpu backend does',
  async (t) => {
    const [wasm] = await runOn('wasm', () => poolGrad(reluOutput()));
    // Windows: {0,0,0,0} -> first zero; {3,1,2,3} -> first 3; {5,0,0,5} -> first 5; {0,0,0,0} -> first.
    t.deepEqual(Array.from(wasm!), [1, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0]);
    const [cpu] = await runOn('cpu', () => poolGrad(reluOutput()));
    t.deepEqual(Array.from(wasm!), Array.from(cpu!));
  },
);

const pools: [string, number[], number, number, 'same' | 'valid' | number][] = [
  ['2x2 stride 2 VALID, batch 2, odd 9x9', [2, 9, 9, 3], 2, 2, 'valid'],
  ['3x3 stride 1 SAME (VGG pool5)', [2, 7, 6, 4], 3, 1, 'same'],
  ['3x3 stride 2 pad 1 (ResNet pool0)', [1, 11, 11, 5], 3, 2, 1],
  ['2x2 stride 2 SAME on odd 75x75 (VGG pool3, ceil mode)', [1, 75, 75, 2], 2, 2, 'same'],
];

for (const [name, shape, size, stride, pad] of pools) {
  test.serial(`wasm MaxPoolGrad matches the cpu backend for ${name}`, async (t) => {
    const x = seeded(shape, 3);
    const f = (v: tf.Tensor) => tf.mul(tf.maxPool(v as tf.Tensor4D, size, stride, pad), seeded([1], 4));
    const [wasm] = await runOn('wasm', () => tf.grad(f)(x));
    const [cpu] = await runOn('cpu', () => tf.grad(f)(x));
    t.true(relativeError(wasm!, cpu!) < TIGHT);
    x.dispose();
  });
}
