import * as tf from '@tensorflow/tfjs-core';
import test from 'ava';
import { initWasmAndCpu, relativeError, runOn, seeded, TIGHT } from '../backend-compare.js';

test.before(async () => {
  await initWasmAndCpu();
});

test.serial(
  'wasm UnsortedSegmentSum adds rows per segment and drops ids outside [0, numSegments)',
  async (t) => {
    const x = tf.tensor2d([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], [6, 2]);
    const ids = tf.tensor1d([0, 2, 2, -1, 4, 1], 'int32');
    const [wasm] = await runOn('wasm', () => tf.unsortedSegmentSum(x, ids, 4));
    t.deepEqual(Array.from(wasm!), [1, 2, 11, 12, 8, 10, 0, 0]);
    const [cpu] = await runOn('cpu', () => tf.unsortedSegmentSum(x, ids, 4));
    t.deepEqual(Array.from(wasm!), Array.from(cpu!));
    tf.dispose([x, ids]);
  },
);

test.serial(
  'the gather gradient on wasm matches the cpu backend along inner axes with repeats',
  async (t) => {
    const x = seeded([4, 7, 3], 1);
    const indices = tf.tensor1d([6, 0, 6, 2, 6], 'int32');
    const f = (v: tf.Tensor) => tf.mul(tf.gather(v, indices, 1), seeded([4, 5, 3], 2));
    const [wasm] = await runOn('wasm', () => tf.grad(f)(x));
    const [cpu] = await runOn('cpu', () => tf.grad(f)(x));
    t.true(relativeError(wasm!, cpu!) < TIGHT);
    tf.dispose([x, indices]);
  },
);
