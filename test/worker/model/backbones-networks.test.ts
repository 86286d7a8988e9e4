import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import test from 'ava';
import { createShapeOps, type FeatureShape, type NetOps } from '../../../worker/model/backbones/layers.js';
import { resnet50Base, resnet50Extras } from '../../../worker/model/backbones/resnet50.js';
import { createTensorOps } from '../../../worker/model/backbones/tensor-ops.js';
import { vgg16Base, vgg16Extras } from '../../../worker/model/backbones/vgg16.js';

/**
 * The real VGG-16 and ResNet-50 code through the tensor interpreter, on wasm (the cpu backend is too
 * slow for these widths). Full SSD300/512 forwards cost tens of GFLOP, so the bases run at 64x64 and
 * the VGG extras start from feature maps of the real sizes; each output must have the shape the
 * shape pass predicts. Weights are small constants: this checks wiring, not numerics (backbones.test.ts).
 */
test.before(async () => {
  await tf.setBackend('wasm');
});

type Network = <T>(ops: NetOps<T>, inputs: T[]) => T[];

function runBoth(t: { teardown(fn: () => void): void }, net: Network, inputs: FeatureShape[]) {
  const shapeOps = createShapeOps();
  const predicted = net(shapeOps, inputs);
  const variables = new Map(
    shapeOps.params.map((p) => [
      p.name,
      tf.variable(tf.fill(p.shape, p.init.kind === 'constant' ? p.init.value : 1e-3)),
    ]),
  );
  t.teardown(() => tf.dispose([...variables.values()]));
  return tf.tidy(() => {
    const outputs = net(
      createTensorOps(variables),
      inputs.map((s) => tf.fill([1, ...s], 0.5) as tf.Tensor4D),
    );
    return {
      predicted: predicted.map((s) => [1, ...s]),
      actual: outputs.map((o) => o.shape),
      finite: outputs.every((o) => tf.all(tf.isFinite(o)).dataSync()[0] === 1),
    };
  });
}

test.serial('the vgg-16 base runs on tensors with the shapes the shape pass predicts', (t) => {
  const r = runBoth(t, (ops, [x]) => vgg16Base(ops, x!), [[64, 64, 3]]);
  t.deepEqual(r.actual, r.predicted);
  t.deepEqual(r.actual, [
    [1, 8, 8, 512],
    [1, 4, 4, 1024],
  ]);
  t.true(r.finite);
});

const vggExtras = test.macro({
  exec(t, imageShape: number, conv4_3: number, expected: number[]) {
    const fc7 = Math.ceil(conv4_3 / 2);
    const extras: Network = (ops, inputs) => vgg16Extras(ops, inputs, imageShape).map((s) => s.value);
    const r = runBoth(t, extras, [
      [conv4_3, conv4_3, 512],
      [fc7, fc7, 1024],
    ]);
    t.deepEqual(r.actual, r.predicted);
    t.deepEqual(
      r.actual.map((s) => s[1]),
      expected,
    );
    t.true(r.finite);
  },
  title: (_p, imageShape) => `the vgg-16 SSD${imageShape} extras run on tensors with the predicted shapes`,
});

test.serial(vggExtras, 300, 38, [38, 19, 10, 5, 3, 1]);
test.serial(vggExtras, 512, 64, [64, 32, 16, 8, 4, 2, 1]);

const resnet = test.macro({
  exec(t, pretrained: boolean) {
    const net: Network = (ops, [x]) =>
      resnet50Extras(ops, resnet50Base(ops, x!, { pretrained })).map((s) => s.value);
    const r = runBoth(t, net, [[64, 64, 3]]);
    t.deepEqual(r.actual, r.predicted);
    t.deepEqual(
      r.actual.map((s) => s[3]),
      [1024, 2048, 512, 512, 256, 256],
    );
    t.true(r.finite);
  },
  title: (_p, pretrained) =>
    `the resnet-50 base (${pretrained ? 'pretrained' : 'from scratch'}) and expanders run on tensors with the predicted shapes`,
});

test.serial(resnet, true);
test.serial(resnet, false);
