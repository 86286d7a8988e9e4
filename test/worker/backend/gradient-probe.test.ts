import * as tf from '@tensorflow/tfjs-core';
import test from 'ava';
import {
  registerWasmTrainingKernels,
  unregisterWasmTrainingKernels,
} from '../../../worker/backend/wasm-kernels/register.js';
import { initWasmAndCpu, relativeError, runOn, seeded } from './backend-compare.js';

/**
 * Every op the SSD models and losses differentiate through, as f(x) -> tensor. The probe takes
 * tf.grad of each on wasm: first with tfjs's stock wasm kernels, to report what tfjs lacks, then with
 * this project's kernels, checking each gradient against the cpu backend's.
 */
type Probe = [name: string, shape: number[], f: (x: tf.Tensor) => tf.Tensor];

const nhwc = [2, 9, 9, 4];
const mat = [6, 5];
const w3 = () => seeded([3, 3, 4, 5], 7) as tf.Tensor4D;
const as4d = (x: tf.Tensor) => x as tf.Tensor4D;
const positive = (x: tf.Tensor) => tf.add(tf.abs(x), 0.5);
const labels = () => tf.oneHot(tf.tensor1d([0, 1, 2, 3, 4, 0], 'int32'), 5);
const smoothL1 = (x: tf.Tensor) => {
  const a = tf.abs(x);
  return tf.where(tf.less(a, 1), tf.mul(0.5, tf.square(x)), tf.sub(a, 0.5));
};

const probes: Probe[] = [
  ['conv2d 3x3 stride 1 SAME (input)', nhwc, (x) => tf.conv2d(as4d(x), w3(), 1, 'same')],
  [
    'conv2d 3x3 stride 1 SAME (filter)',
    [3, 3, 4, 5],
    (w) => tf.conv2d(as4d(seeded(nhwc, 8)), as4d(w), 1, 'same'),
  ],
  [
    'conv2d 3x3 stride 2 pad 1 (filter)',
    [3, 3, 4, 5],
    (w) => tf.conv2d(as4d(seeded(nhwc, 8)), as4d(w), 2, 1),
  ],
  ['conv2d 7x7 stride 2 pad 3 (input)', nhwc, (x) => tf.conv2d(as4d(x), as4d(seeded([7, 7, 4, 3], 9)), 2, 3)],
  ['conv2d 1x1 (filter)', [1, 1, 4, 3], (w) => tf.conv2d(as4d(seeded(nhwc, 8)), as4d(w), 1, 'valid')],
  [
    'conv2d dilation 2 pad 2 (filter)',
    [3, 3, 4, 5],
    (w) => tf.conv2d(as4d(seeded(nhwc, 8)), as4d(w), 1, 2, 'NHWC', 2),
  ],
  [
    'fused conv2d + bias + relu (filter)',
    [3, 3, 4, 5],
    (w) =>
      tf.fused.conv2d({
        x: as4d(seeded(nhwc, 8)),
        filter: as4d(w),
        strides: 1,
        pad: 'same',
        bias: tf.ones([5]),
        activation: 'relu',
      }),
  ],
  ['relu', nhwc, (x) => tf.relu(x)],
  ['maxPool 2x2 stride 2', nhwc, (x) => tf.maxPool(as4d(x), 2, 2, 'valid')],
  ['maxPool 3x3 stride 1 SAME', nhwc, (x) => tf.maxPool(as4d(x), 3, 1, 'same')],
  ['maxPool 3x3 stride 2 SAME', nhwc, (x) => tf.maxPool(as4d(x), 3, 2, 'same')],
  [
    'maxPool 2x2 stride 2 after relu (windows of zeros)',
    nhwc,
    (x) => tf.maxPool(as4d(tf.relu(tf.sub(x, 1))), 2, 2, 'valid'),
  ],
  ['avgPool 3x3 stride 1 SAME', nhwc, (x) => tf.avgPool(as4d(x), 3, 1, 'same')],
  ['add/mul/sub/div', mat, (x) => tf.div(tf.sub(tf.mul(x, x), tf.add(x, 1)), positive(seeded(mat, 9)))],
  ['sqrt and rsqrt', mat, (x) => tf.add(tf.sqrt(positive(x)), tf.rsqrt(positive(x)))],
  ['sum and mean over axes', nhwc, (x) => tf.add(tf.sum(x, [1, 2]), tf.mean(x, [1, 2]))],
  ['square', mat, (x) => tf.square(x)],
  [
    'reshape/transpose/concat/slice',
    mat,
    (x) => tf.slice(tf.concat([tf.transpose(x), tf.reshape(x, [5, 6])], 1), [1, 1], [3, 7]),
  ],
  ['logSoftmax', mat, (x) => tf.logSoftmax(x)],
  ['softmax cross-entropy', mat, (x) => tf.losses.softmaxCrossEntropy(labels(), x)],
  ['smooth L1 (abs/less/where)', mat, smoothL1],
  ['where on greater', mat, (x) => tf.where(tf.greater(x, 0), tf.mul(x, 2), tf.neg(x))],
  ['gather', mat, (x) => tf.gather(x, tf.tensor1d([0, 2, 2, 5], 'int32'))],
  [
    'gatherND',
    mat,
    (x) =>
      tf.gatherND(
        x,
        tf.tensor2d(
          [
            [0, 1],
            [3, 4],
            [0, 1],
          ],
          [3, 2],
          'int32',
        ),
      ),
  ],
  [
    'batchNorm (inference statistics)',
    nhwc,
    (x) => tf.batchNorm(x, seeded([4], 1), positive(seeded([4], 2)), seeded([4], 3), seeded([4], 4), 1e-5),
  ],
  [
    'moments (group norm)',
    nhwc,
    (x) => {
      const { mean, variance } = tf.moments(tf.reshape(x, [2, 81, 2, 2]), [1, 3], true);
      return tf.mul(tf.sub(tf.reshape(x, [2, 81, 2, 2]), mean), tf.rsqrt(tf.add(variance, 1e-5)));
    },
  ],
  ['L2 normalisation', nhwc, (x) => tf.mul(x, tf.rsqrt(tf.add(tf.sum(tf.square(x), 3, true), 1e-5)))],
  ['maximum and minimum', mat, (x) => tf.add(tf.maximum(x, 0.1), tf.minimum(x, -0.1))],
  ['exp and log', mat, (x) => tf.add(tf.exp(x), tf.log(positive(x)))],
  ['cast', mat, (x) => tf.mul(tf.cast(x, 'float32'), 3)],
  [
    'stack/unstack/tile/pad',
    mat,
    (x) =>
      tf.pad(tf.tile(tf.stack(tf.unstack(x)), [1, 2]), [
        [1, 1],
        [0, 2],
      ]),
  ],
];

test.before(async () => {
  await initWasmAndCpu();
});

function gradient(f: Probe[2], x: tf.Tensor): tf.Tensor {
  return tf.grad((v: tf.Tensor) => f(v))(x);
}

test.serial(
  'probe: tfjs 4.22 wasm lacks Conv2DBackpropFilter and UnsortedSegmentSum for SSD training',
  async (t) => {
    unregisterWasmTrainingKernels();
    const missing = new Set<string>();
    try {
      for (const [name, shape, f] of probes) {
        try {
          await runOn('wasm', () => gradient(f, seeded(shape, 1)));
        } catch (err) {
          const kernel = /Kernel '(\w+)' not registered for backend 'wasm'/.exec(String(err))?.[1];
          if (!kernel) throw err;
          missing.add(kernel);
          t.log(`${name}: missing ${kernel}`);
        }
      }
    } finally {
      registerWasmTrainingKernels();
    }
    t.deepEqual([...missing].sort(), ['Conv2DBackpropFilter', 'UnsortedSegmentSum']);
  },
);

const matchesCpu = test.macro({
  async exec(t, [, shape, f]: Probe) {
    const x = seeded(shape, 1);
    const tensors = tf.memory().numTensors;
    const [wasm] = await runOn('wasm', () => gradient(f, x));
    const [cpu] = await runOn('cpu', () => gradient(f, x));
    t.true(relativeError(wasm!, cpu!) < 1e-4, `relative error ${relativeError(wasm!, cpu!)}`);
    t.is(tf.memory().numTensors, tensors);
    x.dispose();
  },
  title: (_title, [name]: Probe) => `the gradient of ${name} on wasm matches the cpu backend`,
});

for (const probe of probes) test.serial(matchesCpu, probe);
