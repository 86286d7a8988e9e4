/** What an epoch barrier produces: the validation mAP of the members' rows and the decision they get. */
import type { Logger } from '../shared/logging.js';
import { mapFromRows, validationMapOf } from '../worker/train/validation.js';
import type { JobEvent } from './job/job.js';
import { type MembershipState, rankOf } from './membership/membership.js';
import type { EpochDecisionMsg } from './protocol.js';

/** One member's validation rows of an epoch (its EpochReport). */
export interface EpochPayload {
  detections: Float32Array;
  groundTruth: Float32Array;
}

/** The epoch's mAP over every member's rows; NaN without a validation set or without ground truth. */
export function epochValidationMap(
  payloads: EpochPayload[],
  o: { validationUrl: string; iouThreshold: number; log: Logger },
): number {
  if (!o.validationUrl) return Number.NaN;
  // The rule one process applies (validationMapOf): no class with ground truth gives no mAP (NaN
  // here, null to the workers and in the summary), not 0.
  const map = validationMapOf(mapFromRows(payloads, { iouThreshold: o.iouThreshold }));
  if (map === null) o.log.warn('validation has no ground truth; no mAP this epoch');
  return map ?? Number.NaN;
}

/** The decision the members of the current ring get at the barrier of `e.epoch`. */
export function epochDecision(
  e: Extract<JobEvent, { type: 'epoch-decided' }>,
  members: MembershipState,
): EpochDecisionMsg {
  const writerRank = e.writer ? rankOf(members, e.writer) : 0;
  return {
    generation: members.generation,
    epoch: e.epoch,
    validationMap: e.validationMap,
    stop: e.stop,
    writerRank: Math.max(0, writerRank),
  };
}
