import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import test from 'ava';
import { createOptimizer, type OptimizerName } from '../../../worker/train/optimizers.js';

test.before(async () => {
  await tf.setBackend('cpu');
});

/** Plain-number reference of the MXNet update rules, one scalar weight. */
function reference(
  name: OptimizerName,
  w0: number,
  grads: number[],
  lr: number,
  momentum: number,
  wd: number,
): number {
  let w = w0;
  let [s1, s2] = [0, 0];
  grads.forEach((g, i) => {
    if (name === 'sgd') {
      s1 = momentum * s1 - lr * (g + wd * w);
      w += s1;
    } else if (name === 'adam') {
      s1 = 0.9 * s1 + 0.1 * g;
      s2 = 0.999 * s2 + 0.001 * g * g;
      const t = i + 1;
      w -= ((lr * Math.sqrt(1 - 0.999 ** t)) / (1 - 0.9 ** t)) * (s1 / (Math.sqrt(s2) + 1e-8));
    } else if (name === 'rmsprop') {
      const gw = g + wd * w;
      s1 = 0.9 * s1 + 0.1 * gw * gw;
      w -= (lr * gw) / Math.sqrt(s1 + 1e-8);
    } else {
      s1 = 0.9 * s1 + 0.1 * g * g;
      const d = (Math.sqrt(s2 + 1e-5) / Math.sqrt(s1 + 1e-5)) * g;
      s2 = 0.9 * s2 + 0.1 * d * d;
      w -= d;
    }
  });
  return w;
}

const follows = test.macro(async (t, name: OptimizerName) => {
  const grads = [0.5, -0.25, 1.5];
  const w = tf.variable(tf.tensor1d([2, -1]));
  const opt = createOptimizer(tf, { optimizer: name, momentum: 0.9, weight_decay: 0.01 });
  const before = tf.memory().numTensors;
  for (const g of grads) {
    const gt = tf.tensor1d([g, 2 * g]);
    opt.apply(new Map([['w', gt]]), new Map([['w', w]]), 0.1);
    gt.dispose();
  }
  t.is(tf.memory().numTensors, before + (name === 'sgd' || name === 'rmsprop' ? 1 : 2));
  const got = await w.data();
  t.true(Math.abs(got[0]! - reference(name, 2, grads, 0.1, 0.9, 0.01)) < 1e-5);
  t.true(
    Math.abs(
      got[1]! -
        reference(
          name,
          -1,
          grads.map((g) => 2 * g),
          0.1,
          0.9,
          0.01,
        ),
    ) < 1e-5,
  );
  opt.dispose();
  w.dispose();
});

for (const name of ['sgd', 'adam', 'rmsprop', 'adadelta'] as const) {
  test(`${name} follows the MXNet update rule over three steps`, follows, name);
}

test('optimizer state round-trips: a restored optimizer continues exactly like the original', async (t) => {
  const mk = () => tf.variable(tf.tensor2d([[1, 2, 3, 4]], [1, 4]));
  const [wa, wb] = [mk(), mk()];
  const a = createOptimizer(tf, { optimizer: 'adam', momentum: 0.9, weight_decay: 0 });
  const g = tf.tensor2d([[0.1, -0.2, 0.3, -0.4]], [1, 4]);
  a.apply(new Map([['w', g]]), new Map([['w', wa]]), 0.01);
  wb.assign(wa);
  const b = createOptimizer(tf, { optimizer: 'adam', momentum: 0.9, weight_decay: 0 });
  b.setState(await a.getState());
  a.apply(new Map([['w', g]]), new Map([['w', wa]]), 0.01);
  b.apply(new Map([['w', g]]), new Map([['w', wb]]), 0.01);
  t.deepEqual(await wa.data(), await wb.data());
  t.throws(() =>
    createOptimizer(tf, { optimizer: 'sgd', momentum: 0.9, weight_decay: 0 }).setState({
      name: 'adam',
      updates: 0,
      slots: new Map(),
    }),
  );
  for (const x of [wa, wb, g]) x.dispose();
  a.dispose();
  b.dispose();
});
