/**
 * The learning-rate schedule (pure): SageMaker's step decay plus ssd-cluster's linear warm-up.
 *
 *   lr(epoch, step) = learning_rate x lr_scheduler_factor^k x warmup(step)
 *   k         = the number of lr_scheduler_step entries <= epoch (epochs are 0-based)
 *   warmup(s) = min(1, (s + 1) / lr_warmup_steps) when lr_warmup_steps > 0, else 1
 *
 * This is MXNet's MultiFactorScheduler as the SSD example drives it: the steps are epoch boundaries
 * times the epoch size, and the rate drops on the first update past a boundary, i.e. for the whole of
 * epoch e when e is in the list. `step` is the global optimizer step (0-based, counted across epochs),
 * so warm-up spans epochs and survives a change in the number of workers.
 */

import type { Hyperparameters } from '../../shared/config/hyperparameters.js';
import { ClusterError } from '../../shared/errors.js';

export type LearningRateParams = Pick<
  Hyperparameters,
  'learning_rate' | 'lr_scheduler_step' | 'lr_scheduler_factor' | 'lr_warmup_steps'
>;

function checkCount(what: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new ClusterError(
      'INTERNAL',
      `learning-rate schedule: ${what} must be an integer >= 0, got ${value}`,
    );
  }
}

/** How many times the rate has been multiplied by the factor by `epoch`. */
export function lrDecayCount(schedulerSteps: readonly number[], epoch: number): number {
  checkCount('epoch', epoch);
  return schedulerSteps.filter((boundary) => boundary <= epoch).length;
}

/** The warm-up multiplier of global step `step`: (step + 1) / warmupSteps, capped at 1. */
export function warmupFactor(step: number, warmupSteps: number): number {
  checkCount('step', step);
  checkCount('lr_warmup_steps', warmupSteps);
  return warmupSteps > 0 ? Math.min(1, (step + 1) / warmupSteps) : 1;
}

/** The learning rate of global optimizer step `step`, which belongs to `epoch`. */
export function learningRateAt(hp: LearningRateParams, epoch: number, step: number): number {
  let lr = hp.learning_rate;
  // Repeated multiplication, as MultiFactorScheduler does (base_lr *= factor), not factor ** k.
  for (let k = lrDecayCount(hp.lr_scheduler_step, epoch); k > 0; k--) lr *= hp.lr_scheduler_factor;
  return lr * warmupFactor(step, hp.lr_warmup_steps);
}
