import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import test from 'ava';
import { createRng, RNG_STREAM } from '../../../shared/random.js';
import { registerTrainingGradients } from '../../../worker/backend/backend.js';
import {
  BATCH_NORM_EPSILON,
  type ConvSpec,
  createShapeOps,
  type FeatureShape,
  type NetOps,
  type PoolSpec,
  sizeOf,
} from '../../../worker/model/backbones/layers.js';
import { createTensorOps } from '../../../worker/model/backbones/tensor-ops.js';
import { describeSsd } from '../../../worker/model/ssd.js';

test.before(async () => {
  await registerTrainingGradients();
  await tf.setBackend('cpu');
});

function randomTensor(shape: number[], key: number): tf.Tensor {
  const rng = createRng(7, RNG_STREAM.test, key);
  return tf.tensor(
    Float32Array.from({ length: sizeOf(shape) }, () => rng.normal()),
    shape,
  );
}

/** Runs `net` through the shape interpreter, then through the tensor one over random variables. */
function runBoth(
  net: <T>(ops: NetOps<T>, x: T) => T,
  input: [number, number, number, number],
): { predicted: FeatureShape; output: tf.Tensor4D; variables: Map<string, tf.Variable> } {
  const shapeOps = createShapeOps();
  const predicted = net(shapeOps, [input[1], input[2], input[3]] as FeatureShape);
  const variables = new Map<string, tf.Variable>();
  shapeOps.params.forEach((p, i) => {
    variables.set(p.name, tf.variable(randomTensor(p.shape, 100 + i), p.trainable));
  });
  const output = net(createTensorOps(variables), randomTensor(input, 1) as tf.Tensor4D);
  return { predicted, output, variables };
}

const convShape = test.macro({
  exec(t, input: [number, number, number, number], spec: ConvSpec) {
    const { predicted, output, variables } = runBoth((ops, x) => ops.conv('c', x, spec), input);
    t.deepEqual(output.shape.slice(1), [...predicted]);
    t.deepEqual(variables.get('c/kernel')!.shape, [spec.kernel, spec.kernel, input[3], spec.filters]);
    t.is(variables.has('c/bias'), spec.bias !== false);
    tf.dispose([output, ...variables.values()]);
  },
  title: (_p, input, spec) =>
    `a conv ${JSON.stringify(spec)} on ${input} has the shape the shape pass predicts`,
});

test.serial(convShape, [1, 7, 10, 3], { filters: 4, kernel: 3, pad: 1 });
test.serial(convShape, [1, 7, 10, 3], { filters: 4, kernel: 3, stride: 2, pad: 1, bias: false });
test.serial(convShape, [1, 7, 10, 3], { filters: 4, kernel: 3, stride: 2, pad: 'same' });
test.serial(convShape, [1, 7, 10, 3], { filters: 4, kernel: 1, stride: 2, relu: true });
test.serial(convShape, [1, 9, 9, 2], { filters: 4, kernel: 7, stride: 2, pad: 3 });
test.serial(convShape, [1, 2, 2, 2], { filters: 3, kernel: 4, pad: 1 });
test.serial(convShape, [1, 5, 5, 2], { filters: 3, kernel: 3 });
test.serial(convShape, [1, 9, 8, 2], { filters: 3, kernel: 3, pad: 2, dilation: 2, relu: true });

const poolShape = test.macro({
  exec(t, input: [number, number, number, number], spec: PoolSpec) {
    const { predicted, output } = runBoth((ops, x) => ops.maxPool(x, spec), input);
    t.deepEqual(output.shape.slice(1), [...predicted]);
    output.dispose();
  },
  title: (_p, input, spec) =>
    `a max-pool ${JSON.stringify(spec)} on ${input} has the shape the shape pass predicts`,
});

test.serial(poolShape, [1, 75, 75, 1], { size: 2, stride: 2, pad: 'same' });
test.serial(poolShape, [1, 19, 19, 1], { size: 3, stride: 1, pad: 1 });
test.serial(poolShape, [1, 150, 150, 1], { size: 3, stride: 2, pad: 1 });

test('the shape pass names the layer when a window does not fit its input', (t) => {
  const ops = createShapeOps();
  t.throws(() => ops.conv('conv9_2', [1, 1, 8], { filters: 4, kernel: 3 }), {
    message: /layer conv9_2.*1x1 input/,
  });
  ops.conv('fc7', [4, 4, 8], { filters: 4, kernel: 1 });
  t.throws(() => ops.conv('fc7', [4, 4, 8], { filters: 4, kernel: 1 }), { message: /'fc7' is used twice/ });
  t.throws(() => ops.conv('fc6', [9, 9, 8], { filters: 4, kernel: 3, dilation: 6, pad: 'same' }), {
    message: /fc6: a dilated conv needs stride 1 and a numeric pad/,
  });
});

/** The dilated kernel written out with zeros: an ordinary conv whose tfjs gradient is the reference. */
function zeroInserted(w: tf.Tensor4D, rate: number): tf.Tensor4D {
  const [k, , cin, cout] = w.shape;
  const size = rate * (k - 1) + 1;
  const src = w.dataSync();
  const out = new Float32Array(size * size * cin * cout);
  for (let i = 0; i < k; i++)
    for (let j = 0; j < k; j++)
      for (let c = 0; c < cin * cout; c++)
        out[(i * rate * size + j * rate) * cin * cout + c] = src[(i * k + j) * cin * cout + c]!;
  return tf.tensor4d(out, [size, size, cin, cout]);
}

const dilatedGradient = test.macro({
  exec(t, pad: number, rate: number) {
    const x = randomTensor([2, 8, 7, 3], 11) as tf.Tensor4D;
    const w = tf.variable(randomTensor([3, 3, 3, 4], 12));
    const ops = createTensorOps(new Map([['fc6/kernel', w]]));
    const big = zeroInserted(w as tf.Tensor as tf.Tensor4D, rate);
    const weights = randomTensor(tf.conv2d(x, big, 1, pad).shape, 13);
    const loss = (y: tf.Tensor) => tf.sum(tf.mul(y, weights));
    const spec = { filters: 4, kernel: 3, pad, dilation: rate, bias: false };
    // The gradient reaches w because ops.conv reads that very tensor from its map.
    const [dx, dw] = tf.grads((a: tf.Tensor) => loss(ops.conv('fc6', a as tf.Tensor4D, spec)))([x, w]);
    const [dxRef, dBig] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
      loss(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, pad)),
    )([x, big]);
    const dwRef = tf.stridedSlice(dBig!, [0, 0, 0, 0], dBig!.shape, [rate, rate, 1, 1]);
    const close = (a: tf.Tensor, b: tf.Tensor) => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!;
    t.true(close(ops.conv('fc6', x, spec), tf.conv2d(x, big, 1, pad)) < 1e-4);
    t.true(close(dx!, dxRef!) < 1e-4, 'input gradient');
    t.deepEqual(dw!.shape, w.shape);
    t.true(close(dw!, dwRef) < 1e-3, 'filter gradient');
  },
  title: (_p, pad, rate) =>
    `a dilated conv matches the zero-inserted kernel and its gradients at rate ${rate}, pad ${pad}`,
});

test.serial(dilatedGradient, 2, 2);
test.serial(dilatedGradient, 1, 2);
test.serial(dilatedGradient, 3, 3);

test.serial('groupNorm normalises each sample and group on its own, whatever else is in the batch', (t) => {
  const net = <T>(ops: NetOps<T>, x: T) => ops.groupNorm('gn', x, 4);
  const shapeOps = createShapeOps();
  net(shapeOps, [3, 5, 16]);
  const variables = new Map(
    shapeOps.params.map((p) => [
      p.name,
      tf.variable(tf.fill(p.shape, p.init.kind === 'constant' ? p.init.value : 0)),
    ]),
  );
  const ops = createTensorOps(variables);
  const batch = tf.add(tf.mul(randomTensor([3, 3, 5, 16], 21), 3), 5) as tf.Tensor4D;
  const together = net(ops, batch);
  const alone = net(ops, tf.slice(batch, [1, 0, 0, 0], [1, 3, 5, 16]));
  t.deepEqual(alone.dataSync(), tf.slice(together, [1, 0, 0, 0], [1, 3, 5, 16]).dataSync());
  // Group g holds channels 4g..4g+3 of one sample: mean 0, variance ~1 after normalisation.
  const grouped = tf.reshape(together, [3, 15, 4, 4]);
  const { mean, variance } = tf.moments(grouped, [1, 3]);
  t.true(tf.max(tf.abs(mean)).dataSync()[0]! < 1e-4);
  t.true(tf.max(tf.abs(tf.sub(variance, 1))).dataSync()[0]! < 1e-3);
});

test.serial(
  'frozen batchNorm applies its stored statistics and l2Norm rescales every pixel to its scale',
  (t) => {
    const stats = { gamma: [2, 0.5], beta: [1, -1], moving_mean: [3, -2], moving_variance: [4, 0.25] };
    const variables = new Map<string, tf.Variable>(
      Object.entries(stats).map(([role, v]) => [`bn/${role}`, tf.variable(tf.tensor1d(v))]),
    );
    variables.set('norm/scale', tf.variable(tf.tensor1d([20, 20])));
    const ops = createTensorOps(variables);
    const x = tf.tensor4d([1, 2, 5, -3], [1, 1, 2, 2]);
    const expected = [1, 2, 5, -3].map((v, i) => {
      const c = i % 2;
      return (
        ((v - stats.moving_mean[c]!) / Math.sqrt(stats.moving_variance[c]! + BATCH_NORM_EPSILON)) *
          stats.gamma[c]! +
        stats.beta[c]!
      );
    });
    const y = ops.batchNorm('bn', x, { trainAffine: false }).dataSync();
    for (const [i, e] of expected.entries())
      t.true(Math.abs(y[i]! - e) < 1e-5, `element ${i}: ${y[i]} vs ${e}`);
    const n = ops.l2Norm('norm', x, 20);
    const norms = tf.sqrt(tf.sum(tf.square(n), 3)).dataSync();
    for (const v of norms) t.true(Math.abs(v - 20) < 1e-3);
  },
);

test('vgg-16 has the MXNet layer names, the atrous fc6/fc7 and an L2Norm scale starting at 20', (t) => {
  const d = describeSsd({ baseNetwork: 'vgg-16', imageShape: 300, numClasses: 20 });
  const byName = new Map(d.params.map((p) => [p.name, p]));
  const base = d.params.filter((p) => p.part === 'base').map((p) => p.layer);
  t.deepEqual(
    [...new Set(base)],
    ['1_1', '1_2', '2_1', '2_2', '3_1', '3_2', '3_3', '4_1', '4_2', '4_3', '5_1', '5_2', '5_3']
      .map((s) => `conv${s}`)
      .concat(['fc6', 'fc7']),
  );
  t.deepEqual(byName.get('fc6/kernel')!.shape, [3, 3, 512, 1024]);
  t.deepEqual(byName.get('fc7/kernel')!.shape, [1, 1, 1024, 1024]);
  t.deepEqual(byName.get('conv4_3_norm/scale')!.init, { kind: 'constant', value: 20 });
  t.is(byName.get('conv4_3_norm/scale')!.part, 'extra');
  t.deepEqual(byName.get('conv10_2/kernel'), undefined);
  const d512 = describeSsd({ baseNetwork: 'vgg-16', imageShape: 512, numClasses: 20 });
  t.deepEqual(d512.params.find((p) => p.name === 'conv10_2/kernel')!.shape, [4, 4, 128, 256]);
});

test('resnet-50 is Gluon resnet50_v1: torchvision parameters + BatchNorm statistics + Gluon 1x1 biases', (t) => {
  const d = describeSsd({ baseNetwork: 'resnet-50', imageShape: 512, numClasses: 20 });
  const base = d.params.filter((p) => p.part === 'base');
  const count = (list: typeof base) => list.reduce((n, p) => n + sizeOf(p.shape), 0);
  const torchvisionResnet50WithoutFc = 25_557_032 - (2048 * 1000 + 1000);
  const bnChannels = count(base.filter((p) => p.role === 'moving_mean'));
  const unitBiases = count(base.filter((p) => p.role === 'bias'));
  t.is(bnChannels, 26_560);
  t.true(base.filter((p) => p.role === 'bias').every((p) => /^stage\d_unit\d_conv[13]$/.test(p.layer)));
  t.is(count(base), torchvisionResnet50WithoutFc + 2 * bnChannels + unitBiases);
  t.true(
    base.filter((p) => p.layer.includes('bn')).every((p) => !p.trainable),
    'base BatchNorm is frozen',
  );
  const expander = d.params.filter((p) => p.layer === 'expand_bn3');
  t.deepEqual(
    expander.map((p) => [p.role, p.trainable]),
    [
      ['gamma', true],
      ['beta', true],
      ['moving_mean', false],
      ['moving_variance', false],
    ],
  );
  t.deepEqual(d.params.find((p) => p.name === 'stage2_unit1_conv1/kernel')!.shape, [1, 1, 256, 128]);
  t.deepEqual(d.params.find((p) => p.name === 'expand_trans_conv0/kernel')!.shape, [1, 1, 2048, 512]);
});
