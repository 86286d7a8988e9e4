/**
 * Stall inspection (Horovod's stall inspector): when no step has been committed for `stallTimeoutMs`,
 * name the ranks that hold the ring up and where they are. Pure: the coordinator passes what it has
 * seen (heartbeat positions) and the time, and logs and counts what comes back.
 */
import type { PositionMsg } from './protocol.js';

export interface SeenPosition {
  generation: number;
  position: PositionMsg;
  atMs: number;
}

export interface LaggingRank {
  workerId: string;
  rank: number;
  generation: number;
  epoch: number;
  step: number;
  phase: string;
  bucket: number;
  /** How long ago its last heartbeat arrived. */
  silentMs: number;
}

export interface StallReport {
  waitedMs: number;
  /** The least advanced ranks (lowest step); the others wait for them in the all-reduce. */
  behind: LaggingRank[];
}

export function inspectStall(input: {
  nowMs: number;
  lastProgressMs: number;
  stallTimeoutMs: number;
  ring: readonly string[];
  positions: ReadonlyMap<string, SeenPosition>;
}): StallReport | null {
  const waitedMs = input.nowMs - input.lastProgressMs;
  if (waitedMs < input.stallTimeoutMs || input.ring.length === 0) return null;
  const ranks: LaggingRank[] = input.ring.map((workerId, rank) => {
    const seen = input.positions.get(workerId);
    const p = seen?.position ?? { epoch: -1, step: -1, phase: 'unknown', bucket: 0 };
    return {
      workerId,
      rank,
      generation: seen?.generation ?? -1,
      epoch: p.epoch,
      step: p.step,
      phase: p.phase,
      bucket: p.bucket,
      silentMs: seen ? input.nowMs - seen.atMs : Number.POSITIVE_INFINITY,
    };
  });
  const least = Math.min(...ranks.map((r) => r.step));
  const atLeast = ranks.filter((r) => r.step === least);
  // Among equally advanced ranks, those not waiting in the all-reduce are the ones holding it up.
  const busy = atLeast.filter((r) => r.phase !== 'allreduce');
  return { waitedMs, behind: busy.length > 0 ? busy : atLeast };
}
