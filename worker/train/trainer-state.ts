/**
 * Everything a training run needs to continue exactly where it stopped (for checkpoints and resume):
 * where it is (epoch, position in the epoch's permutation, global step), what it has decided (early
 * stopping, validation mAPs), the seed that drives the data order and augmentation, and the tensors
 * (weights, optimizer slots). The progress part is plain data updated by pure functions here; the
 * trainer owns the tensors.
 */

import {
  type EarlyStoppingState,
  INITIAL_EARLY_STOPPING_STATE,
  updateEarlyStopping,
} from '../../coordinator/schedule/early-stopping.js';
import type { Hyperparameters } from '../../shared/config/hyperparameters.js';
import type { OptimizerState } from './optimizers.js';

export interface TrainingProgress {
  readonly seed: number;
  /** The epoch in progress, 0-based; equals the epochs run once finished. */
  readonly epoch: number;
  /** Samples of `epoch`'s permutation consumed (coordinator/sharding/plan.ts). */
  readonly position: number;
  /** Optimizer updates since the start (drives warm-up). */
  readonly globalStep: number;
  readonly imagesTrained: number;
  /** Records skipped as bad data while training. */
  readonly skippedRecords: number;
  readonly earlyStopping: EarlyStoppingState;
  /** Validation mAP of each finished epoch (empty without a validation channel). */
  readonly validationMaps: readonly number[];
  /** Last epoch done or early stopping decided: run() has nothing left to do. */
  readonly finished: boolean;
  readonly stoppedEarly: boolean;
}

export interface NamedArray {
  shape: number[];
  values: Float32Array;
}

export interface TrainerState {
  progress: TrainingProgress;
  /** Every model variable by name (weights and BatchNorm statistics alike). */
  weights: Map<string, NamedArray>;
  optimizer: OptimizerState;
}

/**
 * A copy of `state` that shares no arrays with it (nor its progress object), so the copy stays as it
 * is while training goes on or the original's arrays are reused.
 */
export function copyTrainerState(state: TrainerState): TrainerState {
  const copy = (arrays: ReadonlyMap<string, NamedArray>) =>
    new Map([...arrays].map(([name, a]) => [name, { shape: [...a.shape], values: a.values.slice() }]));
  return {
    progress: structuredClone(state.progress),
    weights: copy(state.weights),
    optimizer: { ...state.optimizer, slots: copy(state.optimizer.slots) },
  };
}

export function initialProgress(seed: number): TrainingProgress {
  return Object.freeze({
    seed,
    epoch: 0,
    position: 0,
    globalStep: 0,
    imagesTrained: 0,
    skippedRecords: 0,
    earlyStopping: INITIAL_EARLY_STOPPING_STATE,
    validationMaps: [],
    finished: false,
    stoppedEarly: false,
  });
}

/** After one optimizer step that consumed `consumed` samples of the permutation and trained `images`. */
export function afterStep(
  p: TrainingProgress,
  position: number,
  images: number,
  skipped: number,
): TrainingProgress {
  return Object.freeze({
    ...p,
    position,
    globalStep: p.globalStep + 1,
    imagesTrained: p.imagesTrained + images,
    skippedRecords: p.skippedRecords + skipped,
  });
}

/**
 * After the last step of `p.epoch` and its validation (`map`, or null without a validation channel):
 * the next epoch at position 0, or finished (last epoch, or SageMaker early stopping).
 */
export function afterEpoch(
  p: TrainingProgress,
  map: number | null,
  hp: Pick<
    Hyperparameters,
    | 'epochs'
    | 'early_stopping'
    | 'early_stopping_min_epochs'
    | 'early_stopping_patience'
    | 'early_stopping_tolerance'
  >,
): TrainingProgress {
  let { earlyStopping } = p;
  let stop = false;
  if (map !== null) {
    const update = updateEarlyStopping(earlyStopping, p.epoch, map, hp);
    earlyStopping = update.state;
    stop = update.stop;
  }
  const epoch = p.epoch + 1;
  return Object.freeze({
    ...p,
    epoch,
    position: 0,
    earlyStopping,
    validationMaps: map === null ? p.validationMaps : [...p.validationMaps, map],
    finished: stop || epoch >= hp.epochs,
    stoppedEarly: stop,
  });
}
