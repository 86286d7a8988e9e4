/**
 * Multi-worker speedup and scaling efficiency, estimated while the job runs (pure).
 *
 *   speedup    = cluster images/s / single-worker images/s
 *   efficiency = speedup / workers
 *
 * The single-worker rate is not measured by a separate run: each worker's own steps give it, as
 * images / (data + compute + update) seconds, the step without the all-reduce (median over the window,
 * see step-window.ts). A perfect cluster of N workers has speedup N and efficiency 1; time in the
 * all-reduce, waiting for the slowest rank and coordinator round trips all lower both.
 */
import { type StepWindow, singleWorkerThroughput, throughput } from './step-window.js';

export interface ScalingEstimate {
  clusterImagesPerSecond: number;
  singleWorkerImagesPerSecond: number;
  /** NaN until a step has been seen. */
  speedup: number;
  /** NaN until a step has been seen or while no worker is in the ring. */
  efficiency: number;
}

export function scalingFromRates(
  clusterImagesPerSecond: number,
  singleWorkerImagesPerSecond: number,
  workers: number,
): ScalingEstimate {
  const speedup =
    singleWorkerImagesPerSecond > 0 ? clusterImagesPerSecond / singleWorkerImagesPerSecond : Number.NaN;
  return {
    clusterImagesPerSecond,
    singleWorkerImagesPerSecond,
    speedup,
    efficiency: workers > 0 ? speedup / workers : Number.NaN,
  };
}

export function estimateScaling(window: StepWindow, nowMs: number, workers: number): ScalingEstimate {
  return scalingFromRates(throughput(window, nowMs), singleWorkerThroughput(window, nowMs), workers);
}
