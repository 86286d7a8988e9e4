import * as tf from '@tensorflow/tfjs-core';
import test from 'ava';
import { createRng, RNG_STREAM } from '../../../../shared/random.js';
import { groupNorm } from '../../../../worker/backend/group-norm-op.js';
import { initWasmAndCpu, relativeError, runOn } from '../backend-compare.js';

/**
 * The fused GroupNorm kernels on wasm against (1) the tfjs composite on the cpu backend, through the
 * same `groupNorm` op, and (2) a float64 reference written from the definition (two-pass variance).
 */
test.before(async () => {
  await initWasmAndCpu();
  await tf.setBackend('wasm');
});

const EPSILON = 1e-5;

interface Case {
  shape: [number, number, number, number];
  groups: number;
  /** Added to every x, plus channel c gets `channelOffset * (c - C/2)`. */
  offset: number;
  channelOffset: number;
}

interface Inputs {
  x: Float32Array;
  gamma: Float32Array;
  beta: Float32Array;
  /** Upstream gradient: loss = sum(y * w). */
  w: Float32Array;
}

function makeInputs({ shape, offset, channelOffset }: Case, seed: number): Inputs {
  const rng = createRng(seed, RNG_STREAM.test, 29);
  const channels = shape[3];
  const size = shape.reduce((a, b) => a * b, 1);
  const normal = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
  const x = Float32Array.from(
    normal(size),
    (v, i) => 2 * v + offset + channelOffset * ((i % channels) - channels / 2),
  );
  return { x, gamma: normal(channels), beta: normal(channels), w: normal(size) };
}

/** [y, dx, dgamma, dbeta] of loss = sum(groupNorm(x) * w), by tfjs on the active backend. */
function forwardAndGradients({ shape, groups }: Case, inputs: Inputs): tf.Tensor[] {
  const x = tf.tensor4d(inputs.x, shape);
  const gamma = tf.tensor1d(inputs.gamma);
  const beta = tf.tensor1d(inputs.beta);
  const w = tf.tensor4d(inputs.w, shape);
  const f = (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => groupNorm(a as tf.Tensor4D, g, b, groups, EPSILON);
  const y = f(x, gamma, beta);
  const grads = tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(f(a, g, b), w)))([
    x,
    gamma,
    beta,
  ]);
  return [y, ...grads];
}

/** The same four in float64, straight from the definition. */
function reference({ shape, groups }: Case, { x, gamma, beta, w }: Inputs): Float64Array[] {
  const [batch, h, wd, channels] = shape;
  const pixels = h * wd;
  const perGroup = channels / groups;
  const n = pixels * perGroup;
  const y = new Float64Array(x.length);
  const dx = new Float64Array(x.length);
  const dgamma = new Float64Array(channels);
  const dbeta = new Float64Array(channels);
  for (let b = 0; b < batch; b++) {
    for (let g = 0; g < groups; g++) {
      const at: number[] = [];
      for (let p = 0; p < pixels; p++)
        for (let k = 0; k < perGroup; k++) at.push((b * pixels + p) * channels + g * perGroup + k);
      const mean = at.reduce((s, i) => s + x[i]!, 0) / n;
      const variance = at.reduce((s, i) => s + (x[i]! - mean) ** 2, 0) / n;
      const rstd = 1 / Math.sqrt(variance + EPSILON);
      const xhat = (i: number) => (x[i]! - mean) * rstd;
      const gy = (i: number) => w[i]! * gamma[i % channels]!;
      const meanG = at.reduce((s, i) => s + gy(i), 0) / n;
      const meanGXhat = at.reduce((s, i) => s + gy(i) * xhat(i), 0) / n;
      for (const i of at) {
        const c = i % channels;
        y[i] = xhat(i) * gamma[c]! + beta[c]!;
        dx[i] = rstd * (gy(i) - meanG - xhat(i) * meanGXhat);
        dgamma[c] = dgamma[c]! + w[i]! * xhat(i);
        dbeta[c] = dbeta[c]! + w[i]!;
      }
    }
  }
  return [y, dx, dgamma, dbeta];
}

const NAMES = ['y', 'dx', 'dgamma', 'dbeta'];

const matchesComposite = test.macro({
  async exec(t, c: Case, tolerance: { composite: number; reference: number }) {
    const inputs = makeInputs(
      c,
      c.shape.reduce((a, b) => a * 31 + b, c.groups),
    );
    const profile = await tf.profile(() => tf.dispose(forwardAndGradients(c, inputs)));
    const kernels = new Set(profile.kernels.map((k) => k.name));
    t.true(kernels.has('GroupNorm') && kernels.has('GroupNormGrad'), 'wasm runs the fused kernels');
    const fused = await runOn('wasm', () => forwardAndGradients(c, inputs));
    const composite = await runOn('cpu', () => forwardAndGradients(c, inputs));
    const exact = reference(c, inputs);
    for (const [i, name] of NAMES.entries()) {
      const toComposite = relativeError(fused[i]!, composite[i]!);
      const toReference = relativeError(fused[i]!, Float32Array.from(exact[i]!));
      t.true(toComposite < tolerance.composite, `${name}: ${toComposite} from the composite`);
      t.true(toReference < tolerance.reference, `${name}: ${toReference} from the float64 reference`);
    }
  },
  title: (_p, c: Case) =>
    `wasm GroupNorm and its three gradients match the composite and float64 on [${c.shape}], ${c.groups} groups, offset ${c.offset}`,
});

const usual = { composite: 1e-4, reference: 1e-6 };
test.serial(matchesComposite, { shape: [1, 1, 1, 8], groups: 8, offset: 0, channelOffset: 0 }, usual);
test.serial(matchesComposite, { shape: [3, 5, 7, 16], groups: 8, offset: 0.5, channelOffset: 1 }, usual);
test.serial(matchesComposite, { shape: [1, 4, 3, 32], groups: 2, offset: -3, channelOffset: 0.25 }, usual);
test.serial(matchesComposite, { shape: [3, 1, 1, 32], groups: 2, offset: 2, channelOffset: 0 }, usual);
test.serial(matchesComposite, { shape: [2, 9, 1, 6], groups: 1, offset: 0, channelOffset: 3 }, usual);
// Near 1000 a float32 is only good to ~3e-5, so the composite's float32 moments drift by about that (its
// gradients more); the fused forward is float64 to the end, its gradients read the float32-rounded mean.
test.serial(
  matchesComposite,
  { shape: [2, 6, 5, 16], groups: 8, offset: 1000, channelOffset: 0 },
  { composite: 5e-4, reference: 1e-4 },
);

test.serial('wasm GroupNorm gradients agree with central finite differences of its own forward', (t) => {
  const c: Case = { shape: [2, 3, 2, 4], groups: 2, offset: 0.3, channelOffset: 0.5 };
  const inputs = makeInputs(c, 5);
  const loss = (v: Inputs): number => {
    const y = tf.tidy(() =>
      groupNorm(tf.tensor4d(v.x, c.shape), tf.tensor1d(v.gamma), tf.tensor1d(v.beta), c.groups, EPSILON),
    );
    const values = y.dataSync() as Float32Array;
    y.dispose();
    return values.reduce((s, yi, i) => s + yi * v.w[i]!, 0);
  };
  const analytic = tf.tidy(() =>
    forwardAndGradients(c, inputs)
      .slice(1)
      .map((g) => g.dataSync()),
  );
  const h = 1e-3;
  (['x', 'gamma', 'beta'] as const).forEach((name, which) => {
    for (let i = 0; i < inputs[name].length; i++) {
      const nudged = (delta: number) => {
        const copy = { ...inputs, [name]: Float32Array.from(inputs[name]) };
        copy[name][i] = copy[name][i]! + delta;
        return loss(copy);
      };
      const numeric = (nudged(h) - nudged(-h)) / (2 * h);
      const exact = analytic[which]![i]!;
      t.true(
        Math.abs(numeric - exact) < 2e-3 * Math.max(1, Math.abs(exact)),
        `d${name}[${i}]: ${numeric} vs ${exact}`,
      );
    }
  });
});

test.serial('wasm GroupNorm kernels refuse int32 inputs and mismatched shapes, naming the input', (t) => {
  const x = tf.zeros([1, 2, 2, 4]);
  const xInt = tf.zeros([1, 2, 2, 4], 'int32');
  const gamma = tf.ones([4]);
  const beta = tf.zeros([4]);
  const stats = tf.zeros([1, 2]);
  const run = (name: string, inputs: tf.NamedTensorMap, attrs: object) => () =>
    tf.engine().runKernel(name, inputs, attrs as tf.NamedAttrMap);
  const attrs = { groups: 2, epsilon: EPSILON };
  t.throws(run('GroupNorm', { x: xInt, gamma, beta }, attrs), {
    message: "wasm GroupNorm: input 'x' is int32, expected float32",
  });
  t.throws(run('GroupNorm', { x, gamma: tf.ones([3]), beta }, attrs), {
    message: 'wasm GroupNorm: gamma must be [4], got [3]',
  });
  t.throws(run('GroupNorm', { x, gamma, beta }, { groups: 3, epsilon: EPSILON }), {
    message: /groups must be a positive integer dividing the 4 channels, got 3/,
  });
  const grad = { dy: x, x, gamma, mean: stats, rstd: stats };
  t.throws(run('GroupNormGrad', { ...grad, dy: xInt }, { groups: 2 }), {
    message: "wasm GroupNormGrad: input 'dy' is int32, expected float32",
  });
  t.throws(run('GroupNormGrad', { ...grad, rstd: tf.zeros([2, 1]) }, { groups: 2 }), {
    message: 'wasm GroupNormGrad: rstd must be [1, 2], got [2,1]',
  });
  t.throws(run('GroupNormGrad', { ...grad, dy: tf.zeros([1, 2, 1, 4]) }, { groups: 2 }), {
    message: /dy \[1,2,1,4\] must have x's shape \[1,2,2,4\]/,
  });
  tf.dispose([x, xInt, gamma, beta, stats]);
});

test.serial(
  'wasm GroupNorm and its gradient leave their inputs, and tensors sharing their buffers, unchanged',
  (t) => {
    const c: Case = { shape: [2, 3, 3, 8], groups: 4, offset: 1, channelOffset: 1 };
    const inputs = makeInputs(c, 9);
    const flat = tf.tensor1d(inputs.x);
    // x shares flat's buffer (Reshape on wasm does not copy), so a write into x would show in flat too.
    const x = tf.reshape(flat, c.shape) as tf.Tensor4D;
    const gamma = tf.tensor1d(inputs.gamma);
    const beta = tf.tensor1d(inputs.beta);
    const dy = tf.tensor4d(inputs.w, c.shape);
    const watched = [flat, gamma, beta, dy];
    const before = watched.map((v) => Array.from(v.dataSync()));
    tf.tidy(() => {
      const [y, mean, rstd] = tf
        .engine()
        .runKernel('GroupNorm', { x, gamma, beta }, { groups: 4, epsilon: EPSILON }) as tf.Tensor[];
      tf.engine().runKernel('GroupNormGrad', { dy, x, gamma, mean: mean!, rstd: rstd! }, { groups: 4 });
      tf.grads((a: tf.Tensor, g: tf.Tensor) =>
        tf.sum(tf.mul(groupNorm(a as tf.Tensor4D, g, beta, 4, EPSILON), dy)),
      )([x, gamma]);
      return y!;
    }).dispose();
    t.deepEqual(
      watched.map((v) => Array.from(v.dataSync())),
      before,
    );
    tf.dispose([...watched, x]);
  },
);

test.serial('a tidy wasm GroupNorm forward and backward leaves no tensor or wasm buffer behind', (t) => {
  const c: Case = { shape: [3, 4, 4, 16], groups: 8, offset: 0, channelOffset: 0 };
  const inputs = makeInputs(c, 13);
  const backend = tf.engine().backend;
  const run = () => {
    const results = tf.tidy(() => forwardAndGradients(c, inputs));
    tf.dispose(results);
    return results.length;
  };
  run(); // warm-up: lazily created constants stay outside the count
  const tensors = tf.memory().numTensors;
  const buffers = backend.numDataIds();
  t.is(run(), 4);
  t.is(tf.memory().numTensors, tensors);
  t.is(backend.numDataIds(), buffers);
});
