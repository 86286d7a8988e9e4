import type { Clock } from '../shared/clock.js';
import { estimateScaling, type ScalingEstimate } from '../shared/metrics/scaling.js';
import { addSample, createStepWindow, DEFAULT_WINDOW_MS, throughput } from '../shared/metrics/step-window.js';
import { CommittedImages } from './committed-images.js';
import type { Progress } from './job/job.js';
import { stepObservation } from './metrics.js';
import type { PositionMsg, StepReportMsg } from './protocol.js';

export interface WorkerPositionSeen {
  generation: number;
  position: PositionMsg;
  atMs: number;
}

/**
 * What the coordinator has seen of training, for the summary line and for metrics (the Prometheus
 * collectors read these fields in `collect()`): images, per-phase step times, losses, throughput
 * over a sliding window, generations, restarts, epochs.
 */
export interface CoordinatorStats {
  /** Images trained into the model, each step once (committed-images.ts): reports wait for the commit. */
  readonly imagesTotal: number;
  generation: number;
  workers: number;
  restarts: number;
  /** Stall episodes reported (coordinator/stall.ts). */
  stalls: number;
  /** Wall-clock ms of the last checkpoint written in full; null before the first. */
  lastCheckpointMs: number | null;
  /** Bad records of the counted steps, each step once (committed-images.ts). */
  readonly badRecords: number;
  committed: Progress | null;
  epochsDone: number;
  validationMap: number | null;
  lastLoss: { crossEntropy: number; smoothL1: number } | null;
  learningRate: number;
  readonly positions: Map<string, WorkerPositionSeen>;
  /** Called with every step report (metrics observe the phases here). */
  stepListeners: ((report: StepReportMsg) => void)[];
  /**
   * Called with every newly committed step, after `committed` is set. A step commits when the last
   * rank's report of it arrives, so a step listener still sees the step before it as committed.
   */
  commitListeners: ((progress: Progress) => void)[];
  onStep(report: StepReportMsg): void;
  onPosition(workerId: string, generation: number, position: PositionMsg): void;
  onGeneration(generation: number, workers: number): void;
  onRestart(): void;
  onCommit(progress: Progress): void;
  /** A generation's start (every member asked for its assignment): steps after it will be repeated. */
  onStart(start: Progress): void;
  onEpoch(epoch: number, validationMap: number): void;
  /**
   * Cluster images per second over the step window: ssd_cluster_images_per_second as a scrape now
   * reads it (images of the steps in the window over the time since the earliest of them began).
   */
  imagesPerSecond(): number;
  /** Seconds from the first step report to the last. */
  trainingSeconds(): number;
  /**
   * ssd_cluster_speedup and ssd_cluster_scaling_efficiency (coordinator/metrics.ts) as a scrape right
   * after the last step report reads them: the same step window and estimate, at the time of that
   * report, for the ring of the current generation. So the summary's numbers do not decay over the
   * final validation and shutdown. NaN before the first step.
   */
  scalingAtLastStep(): ScalingEstimate;
}

export function createCoordinatorStats(clock: Clock): CoordinatorStats {
  let firstStepMs: number | undefined;
  let lastStepMs: number | undefined;
  // The same window length and samples (stepObservation) as the metrics' TrainingMetrics window.
  let window = createStepWindow(DEFAULT_WINDOW_MS);
  const committedImages = new CommittedImages();
  const stats: CoordinatorStats = {
    get imagesTotal() {
      return committedImages.total;
    },
    generation: 0,
    workers: 0,
    restarts: 0,
    stalls: 0,
    lastCheckpointMs: null,
    get badRecords() {
      return committedImages.badRecords;
    },
    committed: null,
    epochsDone: 0,
    validationMap: null,
    lastLoss: null,
    learningRate: 0,
    positions: new Map(),
    stepListeners: [],
    commitListeners: [],
    onStep(report) {
      const now = clock.monotonic();
      // The first report marks the end of the first step: count from when that step began.
      firstStepMs ??=
        now -
        1000 * (report.dataSeconds + report.computeSeconds + report.allreduceSeconds + report.updateSeconds);
      lastStepMs = now;
      if (report.progress) {
        const { workerId, progress, badRecords } = report;
        committedImages.onReport({
          workerId,
          progress,
          images: report.images,
          badRecords,
          ringSize: stats.workers,
        });
      }
      stats.lastLoss = { crossEntropy: report.crossEntropy, smoothL1: report.smoothL1 };
      stats.learningRate = report.learningRate;
      const { images, phases, allreduceBytes } = stepObservation(report);
      window = addSample(window, { atMs: now, images, phases, allreduceBytes });
      for (const listener of stats.stepListeners) listener(report);
    },
    onPosition(workerId, generation, position) {
      stats.positions.set(workerId, { generation, position, atMs: clock.monotonic() });
    },
    onGeneration(generation, workers) {
      stats.generation = generation;
      stats.workers = workers;
    },
    onRestart() {
      stats.restarts += 1;
    },
    onCommit(progress) {
      committedImages.onCommit(progress);
      stats.committed = progress;
      for (const listener of stats.commitListeners) listener(progress);
    },
    onStart(start) {
      committedImages.onStart(start);
    },
    onEpoch(_epoch, validationMap) {
      stats.epochsDone += 1;
      stats.validationMap = Number.isNaN(validationMap) ? null : validationMap;
    },
    imagesPerSecond() {
      return throughput(window, clock.monotonic());
    },
    trainingSeconds() {
      return firstStepMs === undefined || lastStepMs === undefined ? 0 : (lastStepMs - firstStepMs) / 1000;
    },
    scalingAtLastStep() {
      return estimateScaling(window, lastStepMs ?? clock.monotonic(), stats.workers);
    },
  };
  return stats;
}
