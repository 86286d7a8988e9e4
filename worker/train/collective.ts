/**
 * How a trainer takes part in a data-parallel job, and the one-process collective. The cluster
 * worker (worker/main.ts) supplies its own over the coordinator's ReportStep/ReportEpoch.
 */
import type { Hyperparameters } from '../../shared/config/hyperparameters.js';
import type { Logger } from '../../shared/logging.js';
import type { StepResult } from './step.js';
import type { TrainingProgress } from './trainer-state.js';
import { mapFromRows, type ValidationRows } from './validation.js';

/** What one step did, as the cluster reports it to the coordinator. */
export interface StepInfo {
  progress: TrainingProgress;
  result: StepResult;
  images: number;
  skipped: number;
  lr: number;
  dataSeconds: number;
  /** The last step of the epoch's plan: validation and the epoch's decision come next. */
  lastInEpoch: boolean;
}

/** The epoch's outcome: the combined validation mAP (null without validation) and whether to stop. */
export interface EpochDecision {
  validationMap: number | null;
  stop: boolean;
}

/**
 * Rank r of N trains slice r of every global batch (coordinator/sharding/plan.ts) and validates
 * shard r of the validation set; the collective decides the epoch from every rank's rows.
 */
export interface Collective {
  readonly rank: number;
  readonly worldSize: number;
  /**
   * After each step, before the next one starts (the state may be copied synchronously here);
   * resolving false stops run() at this step boundary (a new generation, the job ended).
   */
  afterStep(info: StepInfo): Promise<boolean>;
  /** This rank's validation rows (null without a validation channel) -> the epoch's decision. */
  decideEpoch(epoch: number, rows: ValidationRows | null, progress: TrainingProgress): Promise<EpochDecision>;
}

/** One process: every step counts, and the epoch is decided from this process's rows alone. */
export function soloCollective(hp: Pick<Hyperparameters, 'overlap_threshold'>, logger: Logger): Collective {
  return {
    rank: 0,
    worldSize: 1,
    afterStep: async () => true,
    decideEpoch: async (epoch, rows) => {
      if (!rows) return { validationMap: null, stop: false };
      const result = mapFromRows([rows], { iouThreshold: hp.overlap_threshold });
      // No class with ground truth at all (an empty or all-difficult validation set): count it as 0.
      if (Number.isNaN(result.map))
        logger.warn('validation has no ground truth; mAP counted as 0', { epoch });
      return { validationMap: Number.isNaN(result.map) ? 0 : result.map, stop: false };
    },
  };
}
