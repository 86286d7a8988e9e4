/**
 * How a trainer takes part in a data-parallel job, and the one-process collective. The cluster
 * worker (worker/cluster-collective.ts) supplies its own over the coordinator's ReportStep/ReportEpoch.
 */
import type { Hyperparameters } from '../../shared/config/hyperparameters.js';
import type { Logger } from '../../shared/logging.js';
import type { StepResult } from './step.js';
import type { TrainingProgress } from './trainer-state.js';
import { mapFromRows, type ValidationRows, validationMapOf } from './validation.js';

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
      const validationMap = validationMapOf(mapFromRows([rows], { iouThreshold: hp.overlap_threshold }));
      // No class with ground truth at all (an empty or all-difficult validation set): no mAP (SPEC).
      if (validationMap === null) logger.warn('validation has no ground truth; no mAP this epoch', { epoch });
      return { validationMap, stop: false };
    },
  };
}

/**
 * Step acknowledgements read one step late, so the coordinator's round trip overlaps the next step's
 * compute instead of adding to every step.
 *
 * Order, per step k of a generation:
 *  1. The report of step k is sent, and settle() called with its ack at once.
 *  2. Not the last step of the epoch: the ack of step k-1 (sent a whole step earlier, so normally
 *     already here) is awaited and judged; step k's ack is kept for step k+1.
 *  3. The last step of the epoch: the acks of k-1 and k are both awaited, so nothing is in flight
 *     when the epoch's report goes out.
 * A rejected ack (a stale generation, the coordinator lost) is thrown at the step that reads it.
 * So a newer generation stops the trainer at most one step later than a synchronous ack would: the
 * members keep training in the old ring, which is still whole, and the assignment barrier starts the
 * next ring from the least advanced of them (a member one step ahead rolls back: worker/rollback.ts).
 * An ack still pending when the trainer stops is dropped, and its rejection with it.
 */
export class LaggingAcks {
  private pending: Promise<boolean> | undefined;

  /**
   * `accepted`: step k's ack, judged (true: training goes on; a rejection ends the generation).
   * Resolves whether training goes on after step k.
   */
  async settle(accepted: Promise<boolean>, lastInEpoch: boolean): Promise<boolean> {
    accepted.catch(() => {}); // read a step later, or dropped when the trainer stops first
    const previous = this.pending;
    this.pending = lastInEpoch ? undefined : accepted;
    const goOn = previous === undefined || (await previous);
    if (!lastInEpoch) return goOn;
    return (await accepted) && goOn;
  }
}
