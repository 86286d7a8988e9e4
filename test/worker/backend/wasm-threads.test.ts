import os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import test from 'ava';
import { noopLogger } from '../../../shared/logging.js';
import { initBackend } from '../../../worker/backend/backend.js';
import { relativeError, runOn, seeded, TIGHT } from './backend-compare.js';

// Own file: the threaded build can only be chosen before the process first initialises wasm. No
// teardown closes the backend on purpose: if the pool threads kept the process alive, AVA would
// report that this file failed to exit.
const realCpus = os.cpus;
const realCreateObjectURL = URL.createObjectURL;

test.serial(
  'wasm runs the threaded SIMD build with 2 XNNPACK threads under Node and removes its shims',
  async (t) => {
    const backend = await initBackend('wasm', { logger: noopLogger, threads: 2 });
    t.is(backend.name, 'wasm');
    t.is(backend.threads, 2);
    t.is(os.cpus, realCpus);
    t.is(URL.createObjectURL, realCreateObjectURL);
  },
);

test.serial('the threaded build computes convolution gradients equal to the cpu backend', async (t) => {
  await initBackend('wasm', { logger: noopLogger, threads: 2 });
  const x = seeded([2, 24, 24, 16], 1);
  const w = seeded([3, 3, 16, 32], 2);
  const loss = (a: tf.Tensor, b: tf.Tensor) =>
    tf.sum(tf.square(tf.relu(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, [2, 1], 'same'))));
  const [dxWasm, dwWasm] = await runOn('wasm', () => tf.grads(loss)([x, w]));
  const [dxCpu, dwCpu] = await runOn('cpu', () => tf.grads(loss)([x, w]));
  t.true(relativeError(dxWasm!, dxCpu!) < TIGHT, `dx ${relativeError(dxWasm!, dxCpu!)}`);
  t.true(relativeError(dwWasm!, dwCpu!) < TIGHT, `dw ${relativeError(dwWasm!, dwCpu!)}`);
  tf.dispose([x, w]);
});
