import test from 'ava';
import { isClusterError } from '../../../shared/errors.js';
import { createOptimizer, type OptimizerName } from '../../../worker/train/optimizers.js';
import {
  createTrainStep,
  type GradientReducer,
  STEP_EXTRAS,
  type StepBatch,
} from '../../../worker/train/step.js';
import { drawnBatch, splitBatch, tinyModel, updateDifference, wasmTf, weightsOf } from './step-fixtures.js';

// The tfjs engine is global: every test here is serial.
const tf = await wasmTf();
const signal = new AbortController().signal;

function stepFor(
  t: { teardown(fn: () => void): void },
  options: { seed?: number; reducer?: GradientReducer; optimizer?: OptimizerName; clip?: number } = {},
) {
  const model = tinyModel(t, options.seed ?? 1);
  const optimizer = createOptimizer(tf, {
    optimizer: options.optimizer ?? 'sgd',
    momentum: 0.9,
    weight_decay: 0,
  });
  t.teardown(() => optimizer.dispose());
  const step = createTrainStep({
    tf,
    model,
    optimizer,
    trainableNames: model.trainableNames(),
    reducer: options.reducer,
    clipGradientNorm: options.clip,
  });
  return { model, step };
}

const sub = (a: Map<string, Float32Array>, b: Map<string, Float32Array>) =>
  new Map([...a].map(([name, x]) => [name, x.map((v, i) => v - b.get(name)![i]!)]));

test.serial('train step lowers the loss on a tiny overfit set', async (t) => {
  const { step } = stepFor(t, { optimizer: 'adam' });
  const batch = drawnBatch(4, 1);
  const losses: number[] = [];
  for (let i = 0; i < 25; i++) {
    const r = await step.step(batch, { lr: 0.005, signal });
    losses.push(r.clsLoss + r.locLoss);
  }
  t.log(`loss ${losses[0]!.toFixed(3)} -> ${losses.at(-1)!.toFixed(3)}`);
  t.true(losses.every(Number.isFinite));
  t.true(losses.at(-1)! < 0.3 * losses[0]!, `loss went ${losses[0]} -> ${losses.at(-1)}`);
  t.true(Math.max(...losses.slice(-5)) < Math.min(...losses.slice(0, 5)));
});

test.serial('train step leaves tf.memory().numTensors unchanged from one step to the next', async (t) => {
  const { step } = stepFor(t);
  const batch = drawnBatch(2, 2);
  await step.step(batch, { lr: 0.01, signal }); // creates the optimizer's momentum slots
  const before = tf.memory().numTensors;
  for (let i = 0; i < 3; i++) await step.step(batch, { lr: 0.01, signal });
  t.is(tf.memory().numTensors, before);
});

test.serial(
  'train step hands the reducer one buffer in the packed layout, loss sums and positives last',
  async (t) => {
    const seen: Float32Array[] = [];
    const { step } = stepFor(t, {
      reducer: {
        async reduce(buffer) {
          seen.push(buffer.slice());
        },
      },
    });
    const result = await step.step(drawnBatch(3, 3), { lr: 0.01, signal });
    t.is(seen.length, 1);
    const { layout } = step;
    t.deepEqual(layout.extras, [...STEP_EXTRAS]);
    t.is(seen[0]!.length, layout.totalSize);
    const [cls, loc, positives] = seen[0]!.subarray(layout.gradientSize);
    t.is(positives, result.numPositives);
    t.true(positives! >= 3); // every box gets at least its best anchor
    t.is(Math.fround(cls! / positives!), Math.fround(result.clsLoss));
    t.is(Math.fround(loc! / positives!), Math.fround(result.locLoss));
  },
);

test.serial(
  'a reducer that doubles the gradients doubles the first SGD update and the gradient norm',
  async (t) => {
    const doubleGradients: GradientReducer = {
      async reduce(buffer) {
        for (let i = 0; i < buffer.length - STEP_EXTRAS.length; i++) buffer[i]! *= 2;
      },
    };
    const plain = stepFor(t);
    const doubled = stepFor(t, { reducer: doubleGradients });
    const batch = drawnBatch(2, 4);
    const w0 = await weightsOf(plain.model);
    const a = await plain.step.step(batch, { lr: 0.01, signal });
    const b = await doubled.step.step(batch, { lr: 0.01, signal });
    t.is(b.numPositives, a.numPositives);
    t.is(b.clsLoss, a.clsLoss);
    t.true(Math.abs(b.gradNorm / a.gradNorm - 2) < 1e-5);
    const deltaA = sub(await weightsOf(plain.model), w0);
    const twice = new Map([...deltaA].map(([name, d]) => [name, d.map((v) => 2 * v)]));
    const deltaB = sub(await weightsOf(doubled.model), w0);
    t.true(updateDifference(deltaB, twice) < 1e-4);
  },
);

/** Reducers for `size` in-process workers: the last buffer to arrive sums them all; each gets the sum. */
function summingReducers(size: number): GradientReducer[] {
  const buffers: Float32Array[] = [];
  let release!: (sum: Float32Array) => void;
  const total = new Promise<Float32Array>((resolve) => (release = resolve));
  return Array.from({ length: size }, () => ({
    async reduce(buffer) {
      buffers.push(buffer);
      if (buffers.length === size) {
        const sum = new Float32Array(buffer.length);
        for (const b of buffers) for (let i = 0; i < b.length; i++) sum[i]! += b[i]!;
        release(sum);
      }
      buffer.set(await total);
    },
  }));
}

test.serial(
  'two workers with half batches each make the update of one process with the whole batch',
  async (t) => {
    const whole = drawnBatch(4, 5);
    const single = stepFor(t, { clip: 0 });
    const w0 = await weightsOf(single.model);
    const one = await single.step.step(whole, { lr: 0.05, signal });
    const [r0, r1] = summingReducers(2);
    const workers = [stepFor(t, { reducer: r0 }), stepFor(t, { reducer: r1 })];
    const halves = splitBatch(whole, 2);
    const results = await Promise.all(workers.map((w, i) => w.step.step(halves[i]!, { lr: 0.05, signal })));
    for (const r of results) {
      t.is(r.numPositives, one.numPositives);
      t.true(Math.abs(r.clsLoss - one.clsLoss) < 1e-4 * one.clsLoss);
    }
    const expected = sub(await weightsOf(single.model), w0);
    for (const w of workers) {
      const diff = updateDifference(sub(await weightsOf(w.model), w0), expected);
      t.log(`update difference ${diff}`);
      t.true(diff < 1e-4);
    }
    t.deepEqual(await weightsOf(workers[0]!.model), await weightsOf(workers[1]!.model));
  },
);

test.serial(
  'train step clips the gradient to clip_gradient_norm and reports the norm before clipping',
  async (t) => {
    const batch = drawnBatch(2, 6);
    const free = stepFor(t);
    const clipped = stepFor(t, { clip: 0.01 });
    const w0 = await weightsOf(free.model);
    const a = await free.step.step(batch, { lr: 0.01, signal });
    const b = await clipped.step.step(batch, { lr: 0.01, signal });
    t.false(a.clipped);
    t.true(b.clipped);
    t.is(b.gradNorm, a.gradNorm);
    const scale = 0.01 / a.gradNorm;
    const deltaA = sub(await weightsOf(free.model), w0);
    const scaled = new Map([...deltaA].map(([name, d]) => [name, d.map((v) => v * scale)]));
    // The clipped update is small next to the weights, so float32 rounding of w + delta shows at ~1e-3.
    t.true(updateDifference(sub(await weightsOf(clipped.model), w0), scaled) < 1e-2);
  },
);

test.serial(
  'a non-finite gradient fails the step naming the losses and leaves the weights unchanged',
  async (t) => {
    const { model, step } = stepFor(t, {
      reducer: {
        async reduce(buffer) {
          buffer[0] = Number.NaN;
        },
      },
    });
    const before = await weightsOf(model);
    const err = await t.throwsAsync(step.step(drawnBatch(2, 7), { lr: 0.01, signal }));
    t.true(isClusterError(err, 'MODEL'));
    t.regex(err!.message, /gradient norm is NaN .*cross-entropy/);
    t.deepEqual(await weightsOf(model), before);
  },
);

test.serial('a worker with an empty batch sends zeros and applies the others’ gradient', async (t) => {
  const [r0, r1] = summingReducers(2);
  const busy = stepFor(t, { reducer: r0 });
  const idle = stepFor(t, { reducer: r1 });
  const empty: StepBatch = { images: new Float32Array(0), gt: [] };
  const [a, b] = await Promise.all([
    busy.step.step(drawnBatch(2, 8), { lr: 0.01, signal }),
    idle.step.step(empty, { lr: 0.01, signal }),
  ]);
  t.is(b.numPositives, a.numPositives);
  t.deepEqual(await weightsOf(idle.model), await weightsOf(busy.model));
});

test.serial("an empty batch after a full one sends zeros, not the last step's gradients", async (t) => {
  // The step reuses one fusion buffer: the empty path must clear what the previous step packed.
  const sent: Float32Array[] = [];
  const { step } = stepFor(t, {
    reducer: {
      async reduce(buffer) {
        sent.push(buffer.slice());
      },
    },
  });
  await step.step(drawnBatch(2, 10), { lr: 0.01, signal });
  const r = await step.step({ images: new Float32Array(0), gt: [] }, { lr: 0.01, signal });
  t.true(sent[0]!.some((v) => v !== 0));
  t.true(sent[1]!.every((v) => v === 0));
  t.is(r.numPositives, 0);
});

test.serial('train step rejects an aborted signal before computing anything', async (t) => {
  const { model, step } = stepFor(t);
  const before = await weightsOf(model);
  const controller = new AbortController();
  controller.abort(new Error('stop'));
  await t.throwsAsync(step.step(drawnBatch(1, 9), { lr: 0.01, signal: controller.signal }), {
    message: 'stop',
  });
  t.deepEqual(await weightsOf(model), before);
});

test.serial(
  'after a failed all-reduce the next step packs into a new buffer, not the one still being sent',
  async (t) => {
    // A transport may still read the buffer of a call that failed (an aborted HTTP/2 write settles early).
    const handed: Float32Array[] = [];
    let fail = true;
    const { step } = stepFor(t, {
      reducer: {
        async reduce(buffer) {
          handed.push(buffer);
          if (fail) throw new Error('peer lost');
        },
      },
    });
    await t.throwsAsync(step.step(drawnBatch(2, 11), { lr: 0.01, signal }), { message: 'peer lost' });
    const failedBytes = handed[0]!.slice();
    fail = false;
    await step.step(drawnBatch(2, 12), { lr: 0.01, signal });
    await step.step(drawnBatch(2, 13), { lr: 0.01, signal });
    t.not(handed[1], handed[0]);
    t.deepEqual(handed[0], failedBytes, 'the failed call’s bytes are left as they were');
    t.is(handed[2], handed[1], 'successful steps still reuse one buffer');
  },
);
