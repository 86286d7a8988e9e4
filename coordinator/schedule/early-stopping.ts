/**
 * Early stopping with SageMaker's semantics (pure; the state is plain JSON for checkpoints).
 *
 * After each validation (epoch e, 0-based, mAP m):
 * 1. The first validation sets the best. Later, the relative change r = (m - best) / best is an
 *    improvement unless r < early_stopping_tolerance ("no improvement when the ratio is smaller than
 *    the tolerance", SageMaker's docs); with best = 0, r is +Infinity for m > 0 and 0 for m = 0.
 * 2. An improvement sets best = m and resets the counter; otherwise the counter grows and best stays
 *    (as in Keras: gains below the tolerance add up against the old best, not the latest value).
 * 3. Stop when early_stopping is on, at least early_stopping_min_epochs epochs have run (e + 1 >= min),
 *    and early_stopping_patience validations in a row brought no improvement.
 * The state is tracked with early_stopping off too (the best mAP and epoch name the best checkpoint).
 */

import type { Hyperparameters } from '../../shared/config/hyperparameters.js';
import { ClusterError } from '../../shared/errors.js';

export interface EarlyStoppingState {
  /** The best validation mAP so far; null before the first validation. */
  readonly bestMap: number | null;
  /** The epoch of bestMap; null before the first validation. */
  readonly bestEpoch: number | null;
  readonly epochsWithoutImprovement: number;
}

export type EarlyStoppingParams = Pick<
  Hyperparameters,
  'early_stopping' | 'early_stopping_min_epochs' | 'early_stopping_patience' | 'early_stopping_tolerance'
>;

export interface EarlyStoppingUpdate {
  readonly state: EarlyStoppingState;
  readonly stop: boolean;
  /** This validation counted as an improvement (it is the new best). */
  readonly improved: boolean;
}

export const INITIAL_EARLY_STOPPING_STATE: EarlyStoppingState = Object.freeze({
  bestMap: null,
  bestEpoch: null,
  epochsWithoutImprovement: 0,
});

/** (map - best) / best, with best = 0 handled: any gain over 0 is infinite, none is 0. */
export function relativeImprovement(map: number, best: number): number {
  if (best === 0) return map > 0 ? Number.POSITIVE_INFINITY : 0;
  return (map - best) / best;
}

export function updateEarlyStopping(
  state: EarlyStoppingState,
  epoch: number,
  map: number,
  hp: EarlyStoppingParams,
): EarlyStoppingUpdate {
  if (!Number.isSafeInteger(epoch) || epoch < 0) {
    throw new ClusterError('INTERNAL', `early stopping: epoch must be an integer >= 0, got ${epoch}`);
  }
  if (!Number.isFinite(map) || map < 0 || map > 1) {
    throw new ClusterError(
      'INTERNAL',
      `early stopping: epoch ${epoch} mAP must be a number in [0, 1], got ${map}`,
    );
  }
  const improved =
    state.bestMap === null || relativeImprovement(map, state.bestMap) >= hp.early_stopping_tolerance;
  const next: EarlyStoppingState = improved
    ? { bestMap: map, bestEpoch: epoch, epochsWithoutImprovement: 0 }
    : { ...state, epochsWithoutImprovement: state.epochsWithoutImprovement + 1 };
  const stop =
    hp.early_stopping &&
    epoch + 1 >= hp.early_stopping_min_epochs &&
    next.epochsWithoutImprovement >= hp.early_stopping_patience;
  return { state: Object.freeze(next), stop, improved };
}

/** Validates a state read back from a checkpoint. */
export function parseEarlyStoppingState(value: unknown, source = 'checkpoint'): EarlyStoppingState {
  const v = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>;
  const isCount = (x: unknown) => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
  const fresh = v.bestMap === null && v.bestEpoch === null;
  const seen = typeof v.bestMap === 'number' && v.bestMap >= 0 && v.bestMap <= 1 && isCount(v.bestEpoch);
  if (!(fresh || seen) || !isCount(v.epochsWithoutImprovement)) {
    throw new ClusterError(
      'CHECKPOINT_CORRUPT',
      `${source}: early-stopping state must be { bestMap: number in [0, 1] | null, bestEpoch: integer | null, ` +
        `epochsWithoutImprovement: integer >= 0 }, got ${JSON.stringify(value)}`,
    );
  }
  return Object.freeze({
    bestMap: v.bestMap as number | null,
    bestEpoch: v.bestEpoch as number | null,
    epochsWithoutImprovement: v.epochsWithoutImprovement as number,
  });
}
