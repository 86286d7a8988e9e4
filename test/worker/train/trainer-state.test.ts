import test from 'ava';
import {
  afterEpoch,
  afterStep,
  copyTrainerState,
  initialProgress,
} from '../../../worker/train/trainer-state.js';
import { assertSameState, makeState } from '../../coordinator/checkpoint/fixtures.js';

const hp = {
  epochs: 10,
  early_stopping: true,
  early_stopping_min_epochs: 2,
  early_stopping_patience: 2,
  early_stopping_tolerance: 0,
};

test('afterStep moves the position and counts the step, images and skipped records', (t) => {
  const p = afterStep(afterStep(initialProgress(5), 8, 8, 0), 16, 7, 1);
  t.like(p, { seed: 5, epoch: 0, position: 16, globalStep: 2, imagesTrained: 15, skippedRecords: 1 });
});

test('afterEpoch starts the next epoch at position 0 and records the validation mAP', (t) => {
  const p = afterEpoch(afterStep(initialProgress(0), 8, 8, 0), 0.5, hp);
  t.like(p, { epoch: 1, position: 0, globalStep: 1, finished: false, stoppedEarly: false });
  t.deepEqual(p.validationMaps, [0.5]);
  t.like(p.earlyStopping, { bestMap: 0.5, bestEpoch: 0 });
});

test('afterEpoch finishes after the last epoch', (t) => {
  let p = initialProgress(0);
  for (let e = 0; e < 3; e++) p = afterEpoch(p, null, { ...hp, epochs: 3, early_stopping: false });
  t.like(p, { epoch: 3, finished: true, stoppedEarly: false });
  t.deepEqual(p.validationMaps, []);
});

test('afterEpoch stops early after patience epochs without improvement, not before min epochs', (t) => {
  const run = (minEpochs: number) => {
    let p = initialProgress(0);
    return [0.5, 0.4, 0.45].map((map) => {
      p = afterEpoch(p, map, { ...hp, early_stopping_min_epochs: minEpochs });
      return [p.epoch, p.finished, p.stoppedEarly];
    });
  };
  t.deepEqual(run(2), [
    [1, false, false],
    [2, false, false],
    [3, true, true],
  ]);
  t.deepEqual(run(5).at(-1), [3, false, false]);
});

test('copyTrainerState copies every array, so training after the snapshot does not change it', (t) => {
  const state = makeState({ globalStep: 3 });
  const snapshot = copyTrainerState(state);
  assertSameState(t, snapshot, state);
  const expected = copyTrainerState(state);
  for (const { values } of [...state.weights.values(), ...state.optimizer.slots.values()]) values.fill(0.5);
  assertSameState(t, snapshot, expected);
  t.not(snapshot.progress, state.progress);
});
