import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import test from 'ava';
import { createRng, RNG_STREAM } from '../../../shared/random.js';
import { registerTrainingGradients } from '../../../worker/backend/backend.js';
import { anchorConfig, anchorsPerCell, type BaseNetwork } from '../../../worker/model/anchors.js';
import { createSsdModel, describeSsd, type SsdModel, trainableNames } from '../../../worker/model/ssd.js';

test.before(async () => {
  await registerTrainingGradients();
  await tf.setBackend('cpu');
});

function images(batch: number, side: number, key: number): tf.Tensor4D {
  const rng = createRng(3, RNG_STREAM.test, key);
  const data = Float32Array.from({ length: batch * side * side * 3 }, () => rng.normal());
  return tf.tensor4d(data, [batch, side, side, 3]);
}

function tiny(t: { teardown(fn: () => void): void }, imageShape = 64, seed = 1, numClasses = 3): SsdModel {
  const model = createSsdModel({ baseNetwork: 'tiny', imageShape, numClasses, seed });
  t.teardown(() => model.dispose());
  return model;
}

async function weightsOf(model: SsdModel): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const [name, v] of model.variables) out.set(name, (await v.data()) as Float32Array);
  return out;
}

const describes = test.macro({
  exec(t, baseNetwork: BaseNetwork, imageShape: number, anchors: number, featureMaps: number[][]) {
    const d = describeSsd({ baseNetwork, imageShape, numClasses: 20 });
    t.is(d.numAnchors, anchors);
    t.deepEqual(d.featureMaps, featureMaps);
    t.is(
      featureMaps.reduce((n, [h, w, k]) => n + h! * w! * k!, 0),
      anchors,
    );
  },
  title: (_p, base, size, anchors) =>
    `describeSsd gives ${base} at ${size} ${anchors} anchors and the reference feature maps`,
});

test(describes, 'vgg-16', 300, 8732, [
  [38, 38, 4],
  [19, 19, 6],
  [10, 10, 6],
  [5, 5, 6],
  [3, 3, 4],
  [1, 1, 4],
]);
test(describes, 'vgg-16', 512, 24564, [
  [64, 64, 4],
  [32, 32, 6],
  [16, 16, 6],
  [8, 8, 6],
  [4, 4, 6],
  [2, 2, 4],
  [1, 1, 4],
]);
test(describes, 'resnet-50', 512, 6132, [
  [32, 32, 4],
  [16, 16, 6],
  [8, 8, 6],
  [4, 4, 6],
  [2, 2, 4],
  [1, 1, 4],
]);

test("the networks give the anchor tables' feature sizes at image sizes from 300 to 1024 and every tiny size", (t) => {
  const sizes = (from: number, to: number, step: number) =>
    Array.from({ length: Math.floor((to - from) / step) + 1 }, (_, i) => from + i * step);
  const cases: [BaseNetwork, number][] = [
    ...sizes(300, 1024, 7).flatMap((s): [BaseNetwork, number][] => [
      ['vgg-16', s],
      ['resnet-50', s],
    ]),
    ...sizes(64, 1024, 32).map((s): [BaseNetwork, number] => ['tiny', s]),
  ];
  for (const [baseNetwork, imageShape] of cases) {
    // describeSsd throws a MODEL error when a source map differs from its anchor layer.
    t.notThrows(
      () => describeSsd({ baseNetwork, imageShape, numClasses: 2 }),
      `${baseNetwork} at ${imageShape}`,
    );
  }
});

test('vgg-16 SSD300 for 20 classes has exactly the parameters of torchvision ssd300_vgg16 (21 outputs)', (t) => {
  // Same topology: VGG-16 convs, atrous fc6/fc7, L2Norm scale (512), the four extra stages, and
  // 3x3 heads with 4,6,6,6,4,4 boxes per cell. torchvision counts 26,285,486 (SPEC Part 2, measured facts).
  const d = describeSsd({ baseNetwork: 'vgg-16', imageShape: 300, numClasses: 20 });
  t.is(d.parameterCount, 26_285_486);
  t.is(d.trainableParameterCount, d.parameterCount);
  const heads = d.params.filter((p) => p.part === 'head' && p.role === 'kernel');
  t.deepEqual(
    heads.map((p) => p.shape[3]),
    [4, 4, 6, 6, 6, 6, 6, 6, 4, 4, 4, 4].map((k, i) => k * (i % 2 === 0 ? 21 : 4)),
  );
  t.is(heads[0]!.name, 'conv4_3_mbox_conf/kernel');
});

test('the default SageMaker freeze pattern freezes conv1_* and conv2_* of vgg-16 and nothing else', (t) => {
  const d = describeSsd({ baseNetwork: 'vgg-16', imageShape: 300, numClasses: 20 });
  const all = trainableNames(d.params);
  const kept = trainableNames(d.params, /^(conv1_|conv2_).*/g);
  const frozen = all.filter((n) => !kept.includes(n));
  t.deepEqual(
    frozen,
    ['conv1_1', 'conv1_2', 'conv2_1', 'conv2_2'].flatMap((l) => [`${l}/kernel`, `${l}/bias`]),
  );
  t.deepEqual(
    trainableNames(d.params, /^(conv1_|conv2_).*/g),
    kept,
    'a global regex gives the same answer twice',
  );
});

test('resnet-50 never trains its BatchNorm statistics or the frozen base affines', (t) => {
  const d = describeSsd({ baseNetwork: 'resnet-50', imageShape: 512, numClasses: 20 });
  const names = trainableNames(d.params);
  t.false(names.some((n) => n.endsWith('/moving_mean') || n.endsWith('/moving_variance')));
  t.false(names.includes('bn0/gamma'));
  t.true(names.includes('expand_bn0/gamma'));
  t.true(names.includes('conv0/kernel'));
  t.false(trainableNames(d.params, /^(conv0|stage1_)/).some((n) => /^(conv0|stage1_)/.test(n)));
});

test('a network whose feature sizes disagree with the anchor table fails at build time naming the layer', (t) => {
  const anchors = anchorConfig('tiny', 64);
  const wrong = {
    ...anchors,
    layers: anchors.layers.map((l, i) => (i === 2 ? { ...l, featureSize: 3 } : l)),
  };
  t.throws(() => describeSsd({ baseNetwork: 'tiny', imageShape: 64, numClasses: 3 }, wrong), {
    message:
      /tiny at image_shape 64: source 2 \(tiny_source3\) is 2x2 but anchor layer tiny_source3 expects 3x3/,
  });
  t.throws(() => describeSsd({ baseNetwork: 'tiny', imageShape: 64, numClasses: 0 }), {
    message: /num_classes/,
  });
});

const tinyForward = test.macro({
  async exec(t, imageShape: number, batch: number) {
    const model = tiny(t, imageShape);
    const before = tf.memory().numTensors;
    const input = images(batch, imageShape, imageShape);
    const { clsLogits, locPred } = model.apply(input);
    t.is(model.numAnchors * 4, model.anchors.length);
    t.is(
      model.featureMaps.reduce((n, [h, w, k]) => n + h * w * k, 0),
      model.numAnchors,
    );
    model.anchorConfig.layers.forEach((l, i) => {
      t.deepEqual(model.featureMaps[i], [l.featureSize, l.featureSize, anchorsPerCell(l)]);
    });
    t.deepEqual(clsLogits.shape, [batch, model.numAnchors, 4]);
    t.deepEqual(locPred.shape, [batch, model.numAnchors, 4]);
    t.true((await clsLogits.data()).every(Number.isFinite));
    tf.dispose([input, clsLogits, locPred]);
    t.is(tf.memory().numTensors, before);
  },
  title: (_p, size, batch) => `tiny at ${size} maps a batch of ${batch} to one prediction per anchor`,
});

test.serial(tinyForward, 64, 2);
test.serial(tinyForward, 96, 1);
test.serial(tinyForward, 128, 1);

test.serial('the same seed gives identical weights and a different seed different ones', async (t) => {
  const [a, b, c] = await Promise.all([
    weightsOf(tiny(t, 64, 5)),
    weightsOf(tiny(t, 64, 5)),
    weightsOf(tiny(t, 64, 6)),
  ]);
  t.deepEqual([...a.keys()], [...b.keys()]);
  for (const [name, values] of a) t.deepEqual(values, b.get(name), name);
  const kernels = [...a.keys()].filter((n) => n.endsWith('/kernel'));
  t.true(kernels.every((n) => !a.get(n)!.every((v, i) => v === c.get(n)![i])));
  t.true(a.get('tiny_conv1_gn/gamma')!.every((v) => v === 1));
});

test.serial('weights are bit-identical on the cpu and wasm backends', async (t) => {
  const onCpu = await weightsOf(tiny(t, 64, 9));
  await tf.setBackend('wasm');
  t.teardown(() => tf.setBackend('cpu'));
  const onWasm = await weightsOf(tiny(t, 64, 9));
  for (const [name, values] of onCpu) t.deepEqual(onWasm.get(name), values, name);
});

test.serial("tiny's output for an image is the same alone or inside a batch of 3", async (t) => {
  const model = tiny(t, 64);
  const batch = images(3, 64, 77);
  const together = model.apply(batch);
  const alone = model.apply(tf.slice(batch, [1, 0, 0, 0], [1, 64, 64, 3]));
  const middle = (x: tf.Tensor3D) => tf.slice(x, [1, 0, 0], [1, -1, -1]).dataSync();
  t.deepEqual(alone.clsLogits.dataSync(), middle(together.clsLogits));
  t.deepEqual(alone.locPred.dataSync(), middle(together.locPred));
});

test.serial('apply inside tidy leaks nothing and every trainable variable gets a gradient', (t) => {
  const model = tiny(t, 64);
  const input = images(1, 64, 5);
  const before = tf.memory().numTensors;
  tf.tidy(() => {
    model.apply(input);
  });
  t.is(tf.memory().numTensors, before);
  const names = model.trainableNames(/^tiny_conv1/);
  t.false(names.includes('tiny_conv1/kernel'));
  const { value, grads } = tf.variableGrads(
    () =>
      tf.tidy(() => {
        const { clsLogits, locPred } = model.apply(input);
        return tf.add(tf.sum(tf.square(clsLogits)), tf.sum(tf.square(locPred))) as tf.Scalar;
      }),
    names.map((n) => model.variables.get(n)!),
  );
  const nonZero = names.filter(
    (n) => tf.tidy(() => tf.max(tf.abs(grads[model.variables.get(n)!.name]!)).dataSync()[0]!) > 0,
  );
  t.deepEqual(nonZero, names);
  tf.dispose([value, ...Object.values(grads)]);
  t.is(tf.memory().numTensors, before);
  input.dispose();
});

test.serial('apply rejects images of the wrong size and a disposed model', (t) => {
  const model = tiny(t, 64);
  const wrong = images(1, 96, 1);
  t.throws(() => model.apply(wrong), { message: /images must be \[B, 64, 64, 3\], got \[1,96,96,3\]/ });
  wrong.dispose();
  const before = tf.memory().numTensors;
  model.dispose();
  model.dispose();
  t.is(tf.memory().numTensors, before - model.variables.size);
  t.throws(() => model.apply(images(1, 64, 1)), { message: /disposed/ });
});
