/**
 * A sliding window over step observations, and the rates the metrics derive from it. Pure: every
 * function takes `nowMs` (monotonic milliseconds) and the caller owns the clock.
 *
 * Definitions (docs/metrics.md repeats them):
 *  - throughput = sum(images) / (now - earliest step start), over steps that ended in the window, where
 *    a step starts `stepSeconds` before it was observed. With N ranks reporting, that is the cluster's
 *    images per second.
 *  - single-worker throughput = median over the window of images / (data + compute + update) seconds:
 *    what one worker does per second when it spends no time in the all-reduce.
 *  - bus bandwidth (nccl-tests) = sum(allreduce bytes) / sum(allreduce seconds) * 2(n-1)/n, where the
 *    bytes are each rank's all-reduced buffer size S.
 */

export const STEP_PHASES = ['data', 'compute', 'allreduce', 'update'] as const;
export type StepPhase = (typeof STEP_PHASES)[number];

export type PhaseSeconds = Record<StepPhase, number>;

export interface StepSample {
  /** Monotonic milliseconds when the step was observed (its end). */
  atMs: number;
  images: number;
  phases: PhaseSeconds;
  /** Size of the buffer this rank all-reduced in the step (nccl-tests' S), in bytes. */
  allreduceBytes: number;
}

export interface StepWindow {
  readonly windowMs: number;
  readonly samples: readonly StepSample[];
}

export const DEFAULT_WINDOW_MS = 30_000;

export function createStepWindow(windowMs = DEFAULT_WINDOW_MS): StepWindow {
  if (!(windowMs > 0)) throw new RangeError(`step window: windowMs must be > 0, got ${windowMs}`);
  return { windowMs, samples: [] };
}

/** Adds a sample and drops those that ended before `sample.atMs - windowMs`. */
export function addSample(window: StepWindow, sample: StepSample): StepWindow {
  return { windowMs: window.windowMs, samples: [...inWindow(window, sample.atMs), sample] };
}

export function inWindow(window: StepWindow, nowMs: number): StepSample[] {
  return window.samples.filter((s) => s.atMs >= nowMs - window.windowMs && s.atMs <= nowMs);
}

export function stepSeconds(phases: PhaseSeconds): number {
  return phases.data + phases.compute + phases.allreduce + phases.update;
}

/** Seconds a worker works on a step when the all-reduce is free. */
export function computeOnlySeconds(phases: PhaseSeconds): number {
  return phases.data + phases.compute + phases.update;
}

/** Images per second over the window; 0 without samples. */
export function throughput(window: StepWindow, nowMs: number): number {
  const samples = inWindow(window, nowMs);
  if (samples.length === 0) return 0;
  const images = samples.reduce((sum, s) => sum + s.images, 0);
  const startMs = Math.min(...samples.map((s) => s.atMs - 1000 * stepSeconds(s.phases)));
  const spanSeconds = (nowMs - startMs) / 1000;
  return spanSeconds > 0 ? images / spanSeconds : 0;
}

/** Median of images / compute-only seconds over the window; NaN without a usable sample. */
export function singleWorkerThroughput(window: StepWindow, nowMs: number): number {
  const rates = inWindow(window, nowMs)
    .filter((s) => s.images > 0 && computeOnlySeconds(s.phases) > 0)
    .map((s) => s.images / computeOnlySeconds(s.phases));
  return median(rates);
}

/** nccl-tests bus bandwidth over the window for a ring of `ranks`; 0 for one rank or no all-reduce time. */
export function busBandwidth(window: StepWindow, nowMs: number, ranks: number): number {
  const samples = inWindow(window, nowMs);
  const bytes = samples.reduce((sum, s) => sum + s.allreduceBytes, 0);
  const seconds = samples.reduce((sum, s) => sum + s.phases.allreduce, 0);
  if (ranks < 2 || !(seconds > 0)) return 0;
  return ((bytes / seconds) * 2 * (ranks - 1)) / ranks;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
