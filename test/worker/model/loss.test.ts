import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import test from 'ava';
import { createRng, RNG_STREAM } from '../../../shared/random.js';
import { registerTrainingGradients } from '../../../worker/backend/backend.js';
import { multiboxLoss, selectHardNegatives } from '../../../worker/model/loss.js';

test.before(async () => {
  // tfjs-core's Node bundle has no gradient functions; training registers them the same way.
  await registerTrainingGradients();
  await tf.setBackend('cpu');
  await tf.ready();
});

const softplus = (x: number) => Math.log1p(Math.exp(x));

/** One image, 6 anchors, 2 classes + background; anchor 0 is the only positive (class 1 -> target 2). */
function handCase() {
  // Negatives' CE = softplus(max-ish): logits [0, d, -50] give CE ~ softplus(d).
  const diffs = [1, 2, 0, 1, 1];
  const logits = [[0, -50, 3], ...diffs.map((d) => [0, d, -50])];
  const loc = [
    [0.5, -2, 0, 1],
    [9, 9, 9, 9],
    [9, 9, 9, 9],
    [9, 9, 9, 9],
    [9, 9, 9, 9],
    [9, 9, 9, 9],
  ];
  return {
    clsLogits: tf.tensor3d([logits]),
    locPred: tf.tensor3d([loc]),
    clsTarget: tf.tensor2d([[2, 0, 0, 0, 0, 0]], undefined, 'int32'),
    locTarget: tf.zeros([1, 6, 4]) as tf.Tensor3D,
  };
}

function disposeAll(inputs: Record<string, tf.Tensor>) {
  for (const t of Object.values(inputs)) t.dispose();
}

test.serial('multiboxLoss keeps the 3 hardest negatives, ties to the lower anchor, and sums by hand', (t) => {
  const inputs = handCase();
  const loss = multiboxLoss(tf, inputs);
  // Positive CE: logits [0, -50, 3] target 2 -> softplus(-3) (up to e^-53). Negatives ranked: anchor 2 (d=2),
  // then anchors 1 and 4 (d=1; anchor 5 also d=1 but has a larger index), anchor 3 (d=0) is dropped.
  const expectedCls = softplus(-3) + softplus(2) + 2 * softplus(1);
  t.true(Math.abs(loss.clsLossSum.dataSync()[0]! - expectedCls) < 1e-4, `${loss.clsLossSum.dataSync()[0]}`);
  // Smooth L1 of [0.5, -2, 0, 1]: 0.125 + 1.5 + 0 + 0.5 (|d| = 1 is on both branches: 0.5).
  t.true(Math.abs(loss.locLossSum.dataSync()[0]! - 2.125) < 1e-6);
  t.is(loss.numPositives, 1);
  t.is(loss.numNegatives, 3);
  loss.clsLossSum.dispose();
  loss.locLossSum.dispose();
  disposeAll(inputs);
});

test.serial('multiboxLoss gradients are softmax minus one-hot on kept anchors and zero elsewhere', (t) => {
  const inputs = handCase();
  const before = tf.memory().numTensors;
  const grads = tf.grads((logits: tf.Tensor, loc: tf.Tensor) => {
    const l = multiboxLoss(tf, { ...inputs, clsLogits: logits as tf.Tensor3D, locPred: loc as tf.Tensor3D });
    return tf.add(l.clsLossSum, l.locLossSum);
  })([inputs.clsLogits, inputs.locPred]);
  const [dLogits, dLoc] = grads.map((g) => g!.arraySync() as number[][][]);
  const probs = tf.tidy(() => tf.softmax(inputs.clsLogits).arraySync() as number[][][]);
  const kept = [true, true, true, false, true, false];
  const target = [2, 0, 0, 0, 0, 0];
  for (let a = 0; a < 6; a++) {
    for (let c = 0; c < 3; c++) {
      const expected = kept[a] ? probs[0]![a]![c]! - (c === target[a] ? 1 : 0) : 0;
      t.true(Math.abs(dLogits![0]![a]![c]! - expected) < 1e-5, `dLogits[${a}][${c}]`);
    }
  }
  // Smooth L1 derivative: d inside (-1, 1), sign(d) outside; negatives get nothing.
  // (+ 0 turns -0 into 0.)
  t.deepEqual(
    dLoc![0]![0]!.map((v) => v + 0),
    [0.5, -1, 0, 1],
  );
  t.deepEqual(
    dLoc![0]![1]!.map((v) => v + 0),
    [0, 0, 0, 0],
  );
  for (const g of grads) g!.dispose();
  t.is(tf.memory().numTensors, before);
  disposeAll(inputs);
});

function randomBatch(seed: number, batch: number, anchors: number, classes: number, positives: number[]) {
  const rng = createRng(seed, RNG_STREAM.test);
  const logits = Array.from({ length: batch * anchors * (classes + 1) }, () => rng.normal() * 2);
  const targets = new Int32Array(batch * anchors);
  for (let b = 0; b < batch; b++) {
    for (let p = 0; p < positives[b]!; p++) targets[b * anchors + rng.int(anchors)] = 1 + rng.int(classes);
  }
  return {
    clsLogits: tf.tensor3d(logits, [batch, anchors, classes + 1]),
    locPred: tf.tensor3d(
      Array.from({ length: batch * anchors * 4 }, () => rng.normal()),
      [batch, anchors, 4],
    ),
    clsTarget: tf.tensor2d(targets, [batch, anchors], 'int32'),
    locTarget: tf.tensor3d(
      Array.from({ length: batch * anchors * 4 }, () => rng.normal()),
      [batch, anchors, 4],
    ),
  };
}

test.serial(
  'multiboxLoss of a batch is the sum of its images, and an image without positives adds nothing',
  (t) => {
    const batch = randomBatch(11, 3, 50, 4, [4, 0, 7]);
    const whole = multiboxLoss(tf, batch);
    let cls = 0;
    let loc = 0;
    let negatives = 0;
    let positives = 0;
    for (let b = 0; b < 3; b++) {
      const part = Object.fromEntries(
        Object.entries(batch).map(([k, v]) => [k, tf.slice(v, [b], [1])]),
      ) as unknown as typeof batch;
      const l = multiboxLoss(tf, part);
      const [c, o] = [l.clsLossSum.dataSync()[0]!, l.locLossSum.dataSync()[0]!];
      if (b === 1) t.deepEqual([c, o, l.numNegatives], [0, 0, 0]);
      cls += c;
      loc += o;
      negatives += l.numNegatives;
      positives += l.numPositives;
      tf.dispose([l.clsLossSum, l.locLossSum, ...Object.values(part)]);
    }
    t.true(Math.abs(whole.clsLossSum.dataSync()[0]! - cls) < 1e-3);
    t.true(Math.abs(whole.locLossSum.dataSync()[0]! - loc) < 1e-3);
    t.is(whole.numNegatives, negatives);
    t.is(whole.numPositives, positives);
    // 3:1 per image, where positives may collide on the same anchor: 3 * P_i negatives each.
    t.is(whole.numNegatives, 3 * whole.numPositives);
    tf.dispose([whole.clsLossSum, whole.locLossSum]);
    disposeAll(batch);
  },
);

test.serial('selectHardNegatives caps negatives at those available and honours a custom ratio', (t) => {
  const ce = Float32Array.from([5, 4, 3, 2, 1, 0]);
  const targets = Int32Array.from([1, 1, 0, 0, 0, 0]);
  const all = selectHardNegatives(ce, targets, 1, 6, 3);
  t.deepEqual(Array.from(all.clsMask), [1, 1, 1, 1, 1, 1]);
  t.is(all.numNegatives, 4);
  const half = selectHardNegatives(ce, targets, 1, 6, 0.75);
  t.deepEqual(Array.from(half.clsMask), [1, 1, 1, 1, 0, 0]);
  t.deepEqual(Array.from(half.positiveMask), [1, 1, 0, 0, 0, 0]);
});

test.serial('multiboxLoss under tf.variableGrads leaks no tensors', (t) => {
  const batch = randomBatch(12, 2, 40, 3, [3, 2]);
  const weights = tf.variable(tf.ones([1, 1, 4]), true, 'loss_test_scale');
  const before = tf.memory().numTensors;
  const { value, grads } = tf.variableGrads(() => {
    const scaled = tf.mul(batch.clsLogits, weights) as tf.Tensor3D;
    const l = multiboxLoss(tf, { ...batch, clsLogits: scaled });
    return tf.add(l.clsLossSum, l.locLossSum) as tf.Scalar;
  });
  t.true(Number.isFinite(value.dataSync()[0]!));
  t.true(tf.tidy(() => tf.sum(tf.abs(grads.loss_test_scale!)).dataSync()[0]!) > 0);
  tf.dispose([value, ...Object.values(grads)]);
  t.is(tf.memory().numTensors, before);
  weights.dispose();
  disposeAll(batch);
});
