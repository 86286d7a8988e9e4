import type { ProgressMsg } from '../coordinator/protocol.js';
import type { Trainer } from './train/trainer.js';
import type { TrainerState, TrainingProgress } from './train/trainer-state.js';

/**
 * The last two states of this worker after a step (copies), so a new generation can start from the
 * least advanced survivor: a worker whose all-reduce finished while a peer's failed is one step
 * ahead and steps back (coordinator/job/job.ts, assignment barrier). The ring keeps members within
 * one step of each other (a member cannot finish step k+1's all-reduce before every member has
 * finished step k), so two states are enough.
 *
 * Recording runs after every step of a multi-worker job, so it allocates nothing in steady state:
 * `depth` slots take turns, each copy goes into the arrays of the oldest slot, synchronously, in one
 * copy per tensor (Trainer.readStateInto). Restoring reads a slot without keeping it (Trainer.setState
 * holds no reference to the arrays), so the slot can be written again later.
 */
export class RollbackSnapshots {
  /** Oldest first, at most `depth`. */
  private readonly kept: TrainerState[] = [];
  /** Slots not kept, whose arrays the next record reuses. */
  private readonly spare: TrainerState[] = [];

  constructor(private readonly depth = 2) {}

  /** Copies the trainer's current state into the oldest slot (training may go on at once). */
  record(trainer: Pick<Trainer, 'readStateInto'>): void {
    const slot = this.kept.length >= this.depth ? this.kept.shift() : this.spare.pop();
    this.kept.push(trainer.readStateInto(slot));
  }

  /** Puts the trainer at `start`; false when neither it nor a snapshot is there. */
  restore(trainer: Pick<Trainer, 'progress' | 'setState'>, start: ProgressMsg): boolean {
    if (sameProgress(trainer.progress, start)) return true;
    const snapshot = this.kept.find((s) => sameProgress(s.progress, start));
    if (!snapshot) return false;
    trainer.setState(snapshot);
    return true;
  }

  /** Forgets the snapshots (their arrays stay for reuse). */
  clear(): void {
    this.spare.push(...this.kept);
    this.kept.length = 0;
  }
}

export function sameProgress(
  p: Pick<TrainingProgress, 'epoch' | 'position' | 'globalStep'>,
  q: ProgressMsg,
): boolean {
  return p.epoch === q.epoch && p.position === q.position && p.globalStep === q.globalStep;
}
