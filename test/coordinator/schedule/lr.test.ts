import test from 'ava';
import { learningRateAt, lrDecayCount, warmupFactor } from '../../../coordinator/schedule/lr.js';
import { compileHyperparameters } from '../../../shared/config/compile.js';
import { ClusterError } from '../../../shared/errors.js';

const BASE = { learning_rate: 0.1, lr_scheduler_step: [2, 5], lr_scheduler_factor: 0.5, lr_warmup_steps: 0 };

test('learningRateAt multiplies by the factor once per scheduler step at or before the epoch', (t) => {
  const expected = [0.1, 0.1, 0.1 * 0.5, 0.1 * 0.5, 0.1 * 0.5, 0.1 * 0.5 * 0.5, 0.1 * 0.5 * 0.5];
  expected.forEach((lr, epoch) => {
    t.is(learningRateAt(BASE, epoch, 1000), lr, `epoch ${epoch}`);
  });
  t.is(lrDecayCount([2, 5], 1), 0);
  t.is(lrDecayCount([2, 5], 2), 1);
  t.is(lrDecayCount([2, 5], 99), 2);
});

test('learningRateAt is constant without scheduler steps', (t) => {
  const hp = { ...BASE, lr_scheduler_step: [] };
  for (const epoch of [0, 1, 50]) t.is(learningRateAt(hp, epoch, epoch * 10), 0.1);
});

/**
 * An independent model of MXNet's MultiFactorScheduler as the SSD example drives it: steps are
 * boundary x epochSize updates, num_update counts from 1, and the rate drops once num_update > step.
 */
function multiFactorScheduler(base: number, boundaries: number[], factor: number, epochSize: number) {
  const steps = boundaries.map((b) => b * epochSize);
  let index = 0;
  let lr = base;
  return (numUpdate: number) => {
    while (index < steps.length && numUpdate > steps[index]!) {
      index++;
      lr *= factor;
    }
    return lr;
  };
}

test('learningRateAt matches MXNet MultiFactorScheduler update by update', (t) => {
  const epochSize = 3;
  const reference = multiFactorScheduler(0.1, [2, 5], 0.5, epochSize);
  for (let epoch = 0; epoch < 8; epoch++) {
    for (let i = 0; i < epochSize; i++) {
      const step = epoch * epochSize + i;
      t.is(learningRateAt(BASE, epoch, step), reference(step + 1), `epoch ${epoch} step ${step}`);
    }
  }
});

test('learningRateAt warms up linearly over lr_warmup_steps, then holds', (t) => {
  const hp = { ...BASE, lr_warmup_steps: 4 };
  t.deepEqual(
    [0, 1, 2, 3, 4, 100].map((step) => learningRateAt(hp, 0, step)),
    [0.1 * 0.25, 0.1 * 0.5, 0.1 * 0.75, 0.1, 0.1, 0.1],
  );
  t.is(learningRateAt(hp, 2, 1), 0.1 * 0.5 * 0.5, 'warm-up and decay multiply');
  t.is(warmupFactor(0, 0), 1);
  t.is(warmupFactor(0, 1), 1);
});

test('learningRateAt reads compiled SageMaker hyperparameters', (t) => {
  const hp = compileHyperparameters({
    num_classes: '2',
    num_training_samples: '10',
    learning_rate: '0.004',
    lr_scheduler_step: '80, 160',
    lr_warmup_steps: '10',
  });
  t.is(learningRateAt(hp, 0, 4), 0.004 * 0.5);
  t.is(learningRateAt(hp, 79, 9999), 0.004);
  t.is(learningRateAt(hp, 80, 9999), 0.004 * 0.1);
  t.is(learningRateAt(hp, 160, 9999), 0.004 * 0.1 * 0.1);
});

test('learningRateAt rejects a negative or fractional epoch or step', (t) => {
  t.throws(() => learningRateAt(BASE, -1, 0), {
    instanceOf: ClusterError,
    message: /epoch must be an integer >= 0, got -1/,
  });
  t.throws(() => learningRateAt(BASE, 0, 1.5), {
    instanceOf: ClusterError,
    message: /step must be an integer >= 0, got 1.5/,
  });
});
