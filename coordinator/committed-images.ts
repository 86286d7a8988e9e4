/**
 * Images trained into the model, each step counted once (ssd_cluster_images_total and the summary's
 * `images` on the coordinator), and the bad records those steps skipped (ssd_cluster_bad_records_total on
 * the coordinator). Pure: plain data in, numbers out.
 *
 * Every rank reports its slice of each global step, so a step's images are the sum over its ring. Reports
 * wait in a tally per global step until the step is known to be in the model:
 *  1. A step report adds to its step's tally (once per worker; a step already counted is ignored).
 *  2. A commit through progress c (every rank of the ring reported c; coordinator/job/job.ts) counts the
 *     tallies up to c. They are complete: the sum of the ring's reports.
 *  3. A new generation starts at s, the least advanced survivor's progress. Steps up to s are in the model:
 *     the old ring trained them, even when a dead rank's report of its last step was lost. Steps after s
 *     are repeated by the new ring from a snapshot (worker/rollback.ts): their tallies are dropped, or the
 *     repeat would count them twice. A step up to s that misses reports counts what it consumed from the
 *     epoch permutation (positions; every sample of a step is an image or a bad record) minus the bad
 *     records reported. That is exact unless the lost slice also held bad records (counted as images then).
 *  4. Bad records count with their step, as images do: the reported ones of every counted step, once (a step
 *     the new ring repeats skips its bad records again; they are not counted twice).
 * The first generation's start is where the count begins (a resumed job or a restarted coordinator
 * counts what this run trains); before it, the count begins at `from`.
 */
import { compareProgress, type Progress } from './job/job.js';

interface StepTally {
  progress: Progress;
  images: number;
  badRecords: number;
  reporters: Set<string>;
  ringSize: number;
}

export interface StepImagesReport {
  workerId: string;
  /** Progress after the step. */
  progress: Progress;
  images: number;
  badRecords: number;
  /** Members of the ring of the report's generation. */
  ringSize: number;
}

/** Samples of the epoch permutation consumed from `from` to `to` (`from` ends its epoch when they differ). */
function consumed(from: Progress, to: Progress): number {
  return to.epoch === from.epoch ? to.position - from.position : to.position;
}

export class CommittedImages {
  #total = 0;
  #badRecords = 0;
  /** The progress counted through. */
  #counted: Progress;
  #started = false;
  readonly #tallies = new Map<number, StepTally>();

  constructor(from: Progress = { epoch: 0, position: 0, globalStep: 0 }) {
    this.#counted = from;
  }

  get total(): number {
    return this.#total;
  }

  /** Bad records of the counted steps (step 4 of the header). */
  get badRecords(): number {
    return this.#badRecords;
  }

  /** Step 1 of the header. */
  onReport(r: StepImagesReport): void {
    if (r.progress.globalStep <= this.#counted.globalStep) return;
    let tally = this.#tallies.get(r.progress.globalStep);
    if (!tally) {
      tally = { progress: r.progress, images: 0, badRecords: 0, reporters: new Set(), ringSize: r.ringSize };
      this.#tallies.set(r.progress.globalStep, tally);
    }
    if (tally.reporters.has(r.workerId)) return;
    tally.reporters.add(r.workerId);
    tally.images += r.images;
    tally.badRecords += r.badRecords;
  }

  /** Step 2 of the header. */
  onCommit(progress: Progress): void {
    this.#countThrough(progress);
  }

  /** Step 3 of the header: `start` is the new generation's start. */
  onStart(start: Progress): void {
    if (this.#started) this.#countThrough(start);
    else this.#counted = start;
    this.#started = true;
    this.#tallies.clear();
  }

  #countThrough(to: Progress): void {
    if (compareProgress(to, this.#counted) <= 0) return;
    let from = this.#counted;
    const steps = [...this.#tallies.keys()].filter((s) => s <= to.globalStep).sort((a, b) => a - b);
    for (const step of steps) {
      const tally = this.#tallies.get(step)!;
      this.#tallies.delete(step);
      const complete = tally.reporters.size >= tally.ringSize;
      this.#badRecords += tally.badRecords;
      this.#total += complete
        ? tally.images
        : Math.max(tally.images, consumed(from, tally.progress) - tally.badRecords);
      from = tally.progress;
    }
    // Steps up to `to` that no report reached (every report of them was lost): their samples.
    if (to.globalStep > from.globalStep) this.#total += Math.max(0, consumed(from, to));
    this.#counted = to;
  }
}
