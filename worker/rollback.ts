import { snapshotState } from '../coordinator/checkpoint/store.js';
import type { ProgressMsg } from '../coordinator/protocol.js';
import type { Trainer } from './train/trainer.js';
import type { TrainerState, TrainingProgress } from './train/trainer-state.js';

/**
 * The last two committed-or-about-to-be states of this worker (copies), so a new generation can start
 * from the least advanced survivor: a worker whose all-reduce finished while a peer's failed is one
 * step ahead and steps back (coordinator/job/job.ts, assignment barrier).
 */
export class RollbackSnapshots {
  private readonly kept: TrainerState[] = [];

  constructor(private readonly depth = 2) {}

  /** Records the trainer's current state (a copy: training may go on). */
  async record(trainer: Trainer): Promise<void> {
    this.kept.push(snapshotState(await trainer.getState()));
    while (this.kept.length > this.depth) this.kept.shift();
  }

  /** Puts the trainer at `start`; false when neither it nor a snapshot is there. */
  restore(trainer: Trainer, start: ProgressMsg): boolean {
    if (sameProgress(trainer.progress, start)) return true;
    const snapshot = this.kept.find((s) => sameProgress(s.progress, start));
    if (!snapshot) return false;
    trainer.setState(snapshotState(snapshot));
    return true;
  }

  clear(): void {
    this.kept.length = 0;
  }
}

export function sameProgress(
  p: Pick<TrainingProgress, 'epoch' | 'position' | 'globalStep'>,
  q: ProgressMsg,
): boolean {
  return p.epoch === q.epoch && p.position === q.position && p.globalStep === q.globalStep;
}
