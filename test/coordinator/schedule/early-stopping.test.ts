import test from 'ava';
import {
  type EarlyStoppingParams,
  type EarlyStoppingState,
  INITIAL_EARLY_STOPPING_STATE,
  parseEarlyStoppingState,
  relativeImprovement,
  updateEarlyStopping,
} from '../../../coordinator/schedule/early-stopping.js';
import { compileHyperparameters } from '../../../shared/config/compile.js';
import { ClusterError } from '../../../shared/errors.js';

const ON: EarlyStoppingParams = {
  early_stopping: true,
  early_stopping_min_epochs: 1,
  early_stopping_patience: 2,
  early_stopping_tolerance: 0,
};

/** Runs a validation sequence (epoch i gets maps[i]); returns each step's decision and the last state. */
function run(maps: number[], hp: EarlyStoppingParams, viaJson = false) {
  let state: EarlyStoppingState = INITIAL_EARLY_STOPPING_STATE;
  const stops: boolean[] = [];
  const improved: boolean[] = [];
  maps.forEach((map, epoch) => {
    const update = updateEarlyStopping(state, epoch, map, hp);
    state = viaJson ? parseEarlyStoppingState(JSON.parse(JSON.stringify(update.state))) : update.state;
    stops.push(update.stop);
    improved.push(update.improved);
  });
  return { state, stops, improved };
}

test('early stopping stops after patience epochs without improvement', (t) => {
  const { stops, improved, state } = run([0.1, 0.2, 0.19, 0.18, 0.3], ON);
  t.deepEqual(improved, [true, true, false, false, true]);
  t.deepEqual(stops, [false, false, false, true, false]);
  t.deepEqual(state, { bestMap: 0.3, bestEpoch: 4, epochsWithoutImprovement: 0 });
});

test('early stopping waits for early_stopping_min_epochs epochs', (t) => {
  const hp = { ...ON, early_stopping_patience: 1, early_stopping_min_epochs: 5 };
  const { stops } = run([0.5, 0.4, 0.3, 0.2, 0.1, 0.05], hp);
  t.deepEqual(stops, [false, false, false, false, true, true]);
});

test('early stopping never stops when early_stopping is off but still tracks the best epoch', (t) => {
  const { stops, state } = run([0.4, 0.3, 0.2, 0.1], {
    ...ON,
    early_stopping: false,
    early_stopping_patience: 1,
  });
  t.deepEqual(stops, [false, false, false, false]);
  t.deepEqual(state, { bestMap: 0.4, bestEpoch: 0, epochsWithoutImprovement: 3 });
});

test('early stopping counts a gain below the tolerance as no improvement and keeps the old best', (t) => {
  const hp = { ...ON, early_stopping_tolerance: 0.25, early_stopping_patience: 3 };
  // 0.5 -> 0.6 is +20% (< 25%): no improvement; 0.625 is +25% over the kept best 0.5: improvement.
  const { improved, state } = run([0.5, 0.6, 0.625], hp);
  t.deepEqual(improved, [true, false, true]);
  t.deepEqual(state, { bestMap: 0.625, bestEpoch: 2, epochsWithoutImprovement: 0 });
});

test('early stopping with tolerance 0 counts an equal mAP as improvement and a drop as none', (t) => {
  t.deepEqual(run([0.5, 0.5, 0.25], ON).improved, [true, true, false]);
});

test('early stopping handles a best mAP of 0', (t) => {
  t.is(relativeImprovement(0.01, 0), Number.POSITIVE_INFINITY);
  t.is(relativeImprovement(0, 0), 0);
  const hp = { ...ON, early_stopping_tolerance: 0.01, early_stopping_patience: 2 };
  const { improved, stops, state } = run([0, 0, 0, 0.01], hp);
  t.deepEqual(improved, [true, false, false, true]);
  t.deepEqual(stops, [false, false, true, false]);
  t.is(state.bestMap, 0.01);
});

test('early stopping gives the same decisions when its state goes through JSON between epochs', (t) => {
  const maps = [0.1, 0.3, 0.29, 0.31, 0.3, 0.2, 0.1];
  const hp = { ...ON, early_stopping_tolerance: 0.05, early_stopping_patience: 3 };
  t.deepEqual(run(maps, hp, true), run(maps, hp, false));
  t.true(run(maps, hp).stops.includes(true));
});

test('early stopping reads its parameters from compiled hyperparameters', (t) => {
  const hp = compileHyperparameters({
    num_classes: '1',
    num_training_samples: '1',
    early_stopping: 'True',
    early_stopping_min_epochs: '2',
    early_stopping_patience: '1',
  });
  t.deepEqual(run([0.5, 0.4], hp).stops, [false, true]);
  t.deepEqual(run([0.5, 0.4], compileHyperparameters({ num_classes: 1, num_training_samples: 1 })).stops, [
    false,
    false,
  ]);
});

test('updateEarlyStopping rejects a mAP that is not a number in [0, 1]', (t) => {
  for (const map of [Number.NaN, -0.1, 1.5]) {
    t.throws(() => updateEarlyStopping(INITIAL_EARLY_STOPPING_STATE, 3, map, ON), {
      instanceOf: ClusterError,
      message: /epoch 3 mAP must be a number in \[0, 1\]/,
    });
  }
});

test('parseEarlyStoppingState rejects a corrupt checkpointed state, naming the source', (t) => {
  t.deepEqual(
    parseEarlyStoppingState({ bestMap: null, bestEpoch: null, epochsWithoutImprovement: 0 }),
    INITIAL_EARLY_STOPPING_STATE,
  );
  for (const bad of [
    null,
    {},
    { bestMap: 0.5, bestEpoch: null, epochsWithoutImprovement: 0 },
    { bestMap: 2, bestEpoch: 1, epochsWithoutImprovement: 0 },
    { bestMap: 0.5, bestEpoch: 1, epochsWithoutImprovement: -1 },
  ]) {
    const err = t.throws(() => parseEarlyStoppingState(bad, 'ckpt/manifest.json'), {
      instanceOf: ClusterError,
    });
    t.is(err.code, 'CHECKPOINT_CORRUPT');
    t.regex(err.message, /^ckpt\/manifest\.json: early-stopping state must be/);
  }
});
