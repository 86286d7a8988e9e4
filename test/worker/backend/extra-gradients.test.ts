import * as tf from '@tensorflow/tfjs-core';
import test from 'ava';
import { initWasmAndCpu, relativeError, runOn, seeded, TIGHT } from './backend-compare.js';

test.before(async () => {
  await initWasmAndCpu();
});

/** L(x, w) = sum(conv2d(x, w) * probe): linear in each argument, so its gradients are exact targets. */
const fc6 = { x: [1, 19, 19, 3], w: [3, 3, 3, 4], pad: 6, dilation: 6 };
const fc6Loss = (probe: tf.Tensor) => (x: tf.Tensor, w: tf.Tensor) =>
  tf.sum(tf.mul(tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, fc6.pad, 'NHWC', fc6.dilation), probe));

test.serial(
  'the Conv2D gradient with dilation 6 on wasm matches central differences of the forward conv',
  async (t) => {
    const x = seeded(fc6.x, 1);
    const w = seeded(fc6.w, 2);
    const probe = seeded([1, 19, 19, 4], 3);
    const loss = fc6Loss(probe);
    const [dx, dw] = await runOn('wasm', () => tf.grads(loss)([x, w]));
    const lossAt = (a: tf.Tensor, b: tf.Tensor) => tf.tidy(() => loss(a, b).dataSync()[0]!);
    // L is linear, so (L(v + h e) - L(v - h e)) / 2h is the derivative up to float32 rounding of L.
    const h = 0.5;
    const check = (values: Float32Array, shape: number[], index: number, grad: number, which: 'x' | 'w') => {
      const bump = (sign: number) => {
        const v = values.slice();
        v[index] = v[index]! + sign * h;
        return tf.tensor(v, shape);
      };
      const [plus, minus] = [bump(1), bump(-1)];
      const numeric =
        which === 'x'
          ? (lossAt(plus, w) - lossAt(minus, w)) / (2 * h)
          : (lossAt(x, plus) - lossAt(x, minus)) / (2 * h);
      tf.dispose([plus, minus]);
      t.true(
        Math.abs(numeric - grad) < 1e-3 * Math.max(1, Math.abs(grad)),
        `${which}[${index}]: ${numeric} vs ${grad}`,
      );
    };
    const xs = x.dataSync() as Float32Array;
    const ws = w.dataSync() as Float32Array;
    // Corners and the centre of x (reached by few and by all taps), and several filter taps.
    for (const i of [0, 3 * 9 + 1, (9 * 19 + 9) * 3 + 2, xs.length - 1]) check(xs, fc6.x, i, dx![i]!, 'x');
    for (const i of [0, 13, 4 * 12 + 7, ws.length - 1]) check(ws, fc6.w, i, dw![i]!, 'w');
    tf.dispose([x, w, probe]);
  },
);

test.serial(
  'the dilated Conv2D gradient agrees between wasm (native kernels) and cpu (spread-filter route)',
  async (t) => {
    const x = seeded([2, 13, 12, 3], 4);
    const w = seeded([3, 3, 3, 5], 5);
    const probe = seeded([2, 13, 12, 5], 6);
    const loss = (a: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, 'same', 'NHWC', 2), probe));
    const [dxWasm, dwWasm] = await runOn('wasm', () => tf.grads(loss)([x, w]));
    const [dxCpu, dwCpu] = await runOn('cpu', () => tf.grads(loss)([x, w]));
    t.true(relativeError(dxWasm!, dxCpu!) < TIGHT);
    t.true(relativeError(dwWasm!, dwCpu!) < TIGHT);
    tf.dispose([x, w, probe]);
  },
);

test.serial('comparisons on the tape get zero gradients, so a smooth L1 mask differentiates', async (t) => {
  const x = tf.tensor1d([-3, -0.5, 0.25, 2]);
  const [dx] = await runOn('cpu', () =>
    tf.grad((v: tf.Tensor) => {
      const a = tf.abs(v);
      const inside = tf.logicalAnd(tf.less(a, 1), tf.greaterEqual(a, 0));
      return tf.sum(tf.where(inside, tf.mul(0.5, tf.square(v)), tf.sub(a, 0.5)));
    })(x),
  );
  t.deepEqual(Array.from(dx!), [-1, -0.5, 0.25, 1]);
  x.dispose();
});

test.serial(
  'the GatherNd gradient scatters dy back to the gathered positions, adding duplicates',
  async (t) => {
    const params = tf.tensor2d([1, 2, 3, 4, 5, 6], [3, 2]);
    const indices = tf.tensor2d([2, 1, 0, 0, 2, 1], [3, 2], 'int32');
    const weights = tf.tensor1d([10, 20, 30]);
    for (const backend of ['wasm', 'cpu'] as const) {
      const [dParams] = await runOn(backend, () =>
        tf.grad((p: tf.Tensor) => tf.sum(tf.mul(tf.gatherND(p, indices), weights)))(params),
      );
      t.deepEqual(Array.from(dParams!), [20, 0, 0, 0, 0, 40], backend);
    }
    tf.dispose([params, indices, weights]);
  },
);

/** d/dx of sum(reduce(x, axis) * probe): probe at x's position with the reduced axes dropped, / n for mean. */
function expectedReductionGradient(shape: number[], axes: number[], probe: Float32Array, mean: boolean) {
  const keptShape = shape.map((size, i) => (axes.includes(i) ? 1 : size));
  const count = axes.reduce((n, i) => n * shape[i]!, 1);
  const total = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(total);
  for (let flat = 0; flat < total; flat++) {
    let rest = flat;
    let keptIndex = 0;
    let stride = 1;
    for (let d = shape.length - 1; d >= 0; d--) {
      const coordinate = rest % shape[d]!;
      rest = Math.floor(rest / shape[d]!);
      keptIndex += (axes.includes(d) ? 0 : coordinate) * stride;
      stride *= keptShape[d]!;
    }
    out[flat] = probe[keptIndex]! / (mean ? count : 1);
  }
  return out;
}

for (const [axis, keepDims] of [
  [[1, 3], true],
  [-1, false],
  [0, false],
  [undefined, false],
] as const) {
  test.serial(
    `Sum and Mean over ${JSON.stringify(axis)} (keepDims ${keepDims}) differentiate to the spread dy on wasm and cpu`,
    async (t) => {
      const shape = [2, 3, 4, 5];
      const axes = tf.util.parseAxisParam(axis === undefined ? [0, 1, 2, 3] : [...[axis].flat()], shape);
      const x = seeded(shape, 7);
      const reducedSize = shape.reduce((n, size, i) => (axes.includes(i) ? n : n * size), 1);
      const probeValues = (seeded([reducedSize], 8).dataSync() as Float32Array).slice();
      for (const mean of [false, true]) {
        const f = (v: tf.Tensor) => {
          const axisArg = axis === undefined ? undefined : typeof axis === 'number' ? axis : [...axis];
          const r = mean ? tf.mean(v, axisArg, keepDims) : tf.sum(v, axisArg, keepDims);
          return tf.sum(tf.mul(r, tf.reshape(tf.tensor1d(probeValues), r.shape)));
        };
        const expected = expectedReductionGradient(shape, axes, probeValues, mean);
        for (const backend of ['wasm', 'cpu'] as const) {
          const [dx] = await runOn(backend, () => tf.grad(f)(x));
          t.true(relativeError(dx!, expected) < TIGHT, `${backend} ${mean ? 'mean' : 'sum'}`);
        }
      }
      x.dispose();
    },
  );
}

test.serial(
  'Sum and Mean gradients of int32 inputs are float32 and spread dy over negative, mixed and kept axes',
  async (t) => {
    const shape = [2, 3, 4];
    const values = Array.from({ length: 24 }, (_, i) => (i * 7) % 11);
    for (const [axis, keepDims] of [
      [[-1, 0], false],
      [[-2], true],
      [-3, true],
      [null, true],
    ] as const) {
      const axes = tf.util.parseAxisParam(axis === null ? [0, 1, 2] : [axis].flat(), shape);
      const reducedSize = shape.reduce((n, size, i) => (axes.includes(i) ? n : n * size), 1);
      const probe = Float32Array.from({ length: reducedSize }, (_, i) => i - 1.5);
      for (const mean of [false, true]) {
        const expected = expectedReductionGradient(shape, axes, probe, mean);
        for (const backend of ['wasm', 'cpu'] as const) {
          await tf.setBackend(backend);
          const x = tf.tensor(values, shape, 'int32');
          const dx = tf.tidy(() =>
            tf.grad((v: tf.Tensor) => {
              const axisArg = axis === null ? undefined : typeof axis === 'number' ? axis : [...axis];
              const r = mean ? tf.mean(v, axisArg, keepDims) : tf.sum(v, axisArg, keepDims);
              return tf.sum(tf.mul(r, tf.reshape(tf.tensor1d(probe), r.shape)));
            })(x),
          );
          const what = `${backend} ${mean ? 'mean' : 'sum'} over ${JSON.stringify(axis)}`;
          t.is(dx.dtype, 'float32', what);
          t.deepEqual(dx.shape, shape, what);
          t.true(relativeError(dx.dataSync() as Float32Array, expected) < TIGHT, what);
          tf.dispose([x, dx]);
        }
      }
    }
    await tf.setBackend('wasm');
  },
);
