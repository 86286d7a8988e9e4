/**
 * The step metrics both the coordinator and every worker export (same names, same help), fed one
 * step observation at a time. The coordinator observes every rank's StepReport, so its counters and
 * histogram are cluster totals; a worker observes its own steps. Prometheus tells them apart by job.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Clock } from '../clock.js';
import {
  addSample,
  busBandwidth,
  createStepWindow,
  DEFAULT_WINDOW_MS,
  type PhaseSeconds,
  STEP_PHASES,
  type StepWindow,
  throughput,
} from './step-window.js';

export const LOSS_LABELS = { crossEntropy: 'cross_entropy', smoothL1: 'smooth_l1' } as const;

/** Step phases run from milliseconds (a tiny model, loopback) to a minute (a big model on a CPU). */
export const STEP_SECONDS_BUCKETS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60, 120,
];

export interface StepObservation {
  images: number;
  phases: PhaseSeconds;
  /** This rank's all-reduced buffer size in the step (after compression), in bytes. */
  allreduceBytes: number;
  losses: { crossEntropy: number; smoothL1: number };
  learningRate: number;
  /** Records skipped while loading this step's batch (default 0). */
  badRecords?: number;
}

export interface TrainingMetricsOptions {
  clock: Clock;
  /** Ring size for the bus bandwidth factor 2(n-1)/n. */
  ranks(): number;
  windowMs?: number;
  /**
   * ssd_cluster_images_total read at scrape time instead of adding each observed step's images: the
   * coordinator counts the images of committed steps, once (coordinator/committed-images.ts).
   */
  imagesTotal?: () => number;
  /** ssd_cluster_bad_records_total read at scrape time, likewise (observeStep and addBadRecords then add nothing). */
  badRecordsTotal?: () => number;
}

export interface TrainingMetrics {
  observeStep(step: StepObservation): void;
  addBadRecords(count: number): void;
  /** The sliding window of observed steps (for derived gauges such as the speedup). */
  readonly window: StepWindow;
}

/** A counter's collect() that sets it to `total()` at each scrape; undefined (fed by inc) without one. */
function readAtScrape(total: (() => number) | undefined) {
  if (!total) return undefined;
  return function (this: Counter) {
    this.reset();
    this.inc(total());
  };
}

export function createTrainingMetrics(registry: Registry, options: TrainingMetricsOptions): TrainingMetrics {
  const { clock } = options;
  let window = createStepWindow(options.windowMs ?? DEFAULT_WINDOW_MS);
  const registers = [registry];
  const seconds = Math.round(window.windowMs / 1000);
  const stepSeconds = new Histogram({
    name: 'ssd_cluster_step_seconds',
    help: 'Seconds per training step phase: data (waiting for the batch), compute (forward + backward), allreduce (ring all-reduce of the gradients), update (optimizer step); one observation per rank and step.',
    labelNames: ['phase'] as const,
    buckets: STEP_SECONDS_BUCKETS,
    registers,
  });
  const { imagesTotal, badRecordsTotal } = options;
  const images = new Counter({
    name: 'ssd_cluster_images_total',
    help: 'Training images processed (on the coordinator: summed over ranks, each committed step once).',
    registers,
    collect: readAtScrape(imagesTotal),
  });
  const allreduceBytes = new Counter({
    name: 'ssd_cluster_allreduce_bytes_total',
    help: 'Bytes of gradient buffers all-reduced: each rank adds the size S of the buffer it reduced per step.',
    registers,
  });
  const badRecords = new Counter({
    name: 'ssd_cluster_bad_records_total',
    help: 'Corrupt or undecodable records skipped (on the coordinator: those of committed steps, each step once).',
    registers,
    collect: readAtScrape(badRecordsTotal),
  });
  const loss = new Gauge({
    name: 'ssd_cluster_train_loss',
    help: 'Training loss of the last step, normalised by positive anchors (loss = cross_entropy | smooth_l1).',
    labelNames: ['loss'] as const,
    registers,
  });
  const learningRate = new Gauge({
    name: 'ssd_cluster_learning_rate',
    help: 'Learning rate of the last step.',
    registers,
  });
  new Gauge({
    name: 'ssd_cluster_images_per_second',
    help: `Training images per second over the last ${seconds} s: sum(images) / (now - start of the earliest step in the window).`,
    registers,
    collect() {
      this.set(throughput(window, clock.monotonic()));
    },
  });
  new Gauge({
    name: 'ssd_cluster_allreduce_bus_bandwidth_bytes_per_second',
    help: `All-reduce bus bandwidth over the last ${seconds} s as nccl-tests defines it: sum(S) / sum(allreduce seconds) * 2(n-1)/n for a ring of n ranks (0 for one rank).`,
    registers,
    collect() {
      this.set(busBandwidth(window, clock.monotonic(), options.ranks()));
    },
  });
  // Every phase has a series from the start, so rate() over a phase never starts from nothing.
  for (const phase of STEP_PHASES) stepSeconds.zero({ phase });
  return {
    observeStep(step) {
      window = addSample(window, {
        atMs: clock.monotonic(),
        images: step.images,
        phases: step.phases,
        allreduceBytes: step.allreduceBytes,
      });
      for (const phase of STEP_PHASES) stepSeconds.observe({ phase }, step.phases[phase]);
      if (!imagesTotal) images.inc(step.images);
      allreduceBytes.inc(step.allreduceBytes);
      if (step.badRecords && !badRecordsTotal) badRecords.inc(step.badRecords);
      loss.set({ loss: LOSS_LABELS.crossEntropy }, step.losses.crossEntropy);
      loss.set({ loss: LOSS_LABELS.smoothL1 }, step.losses.smoothL1);
      learningRate.set(step.learningRate);
    },
    addBadRecords(count) {
      if (!badRecordsTotal) badRecords.inc(count);
    },
    get window() {
      return window;
    },
  };
}
