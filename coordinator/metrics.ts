/**
 * The coordinator's Prometheus metrics on an injected Registry. Counters and the step histogram are
 * fed by every StepReport (CoordinatorStats.stepListeners), except ssd_cluster_images_total and
 * ssd_cluster_bad_records_total: those of committed steps, counted once (CoordinatorStats.imagesTotal,
 * CoordinatorStats.badRecords); state gauges are computed in collect()
 * from what the coordinator has seen, so a scrape always reads the current state.
 *
 *   speedup    = cluster images/s / single-worker images/s
 *   efficiency = speedup / workers
 *   single-worker images/s = median over the window of images / (data + compute + update) seconds
 *
 * (shared/metrics/scaling.ts and docs/metrics.md explain the estimate.)
 */
import { Counter, Gauge, Registry } from 'prom-client';
import { type Clock, systemClock } from '../shared/clock.js';
import type { Logger } from '../shared/logging.js';
import { type DiscoverableMembership, workerTargetGroups } from '../shared/metrics/http-sd.js';
import { registerProcessMetrics } from '../shared/metrics/process-metrics.js';
import { estimateScaling } from '../shared/metrics/scaling.js';
import { type MetricsServer, startMetricsServer } from '../shared/metrics/server.js';
import { DEFAULT_WINDOW_MS } from '../shared/metrics/step-window.js';
import { createTrainingMetrics, type TrainingMetrics } from '../shared/metrics/training-metrics.js';
import type { JobPhase } from './membership/membership.js';
import type { StepReportMsg } from './protocol.js';
import type { CoordinatorStats } from './stats.js';

export interface CoordinatorMetricsSource {
  stats: CoordinatorStats;
  /** Membership as the coordinator holds it (its `membership` getter fits). */
  membership(): DiscoverableMembership & { phase: JobPhase };
}

export interface CoordinatorMetricsOptions {
  clock?: Clock;
  /** Sliding window of the rates (images/s, speedup, bus bandwidth). */
  windowMs?: number;
  /** Also register the default process metrics (default true). */
  defaultMetrics?: boolean;
}

export interface CoordinatorMetrics {
  readonly training: TrainingMetrics;
  /** Stops listening to step reports. Idempotent. */
  close(): void;
}

export const JOB_PHASES: readonly JobPhase[] = ['forming', 'running', 'stalled', 'finished'];
/** Worker positions as heartbeats carry them; anything else is counted as `other`. */
export const WORKER_PHASES = [
  'data',
  'compute',
  'allreduce',
  'update',
  'validation',
  'idle',
  'other',
] as const;

export function stepObservation(report: StepReportMsg) {
  return {
    images: report.images,
    phases: {
      data: report.dataSeconds,
      compute: report.computeSeconds,
      allreduce: report.allreduceSeconds,
      update: report.updateSeconds,
    },
    allreduceBytes: report.allreduceBytes,
    losses: { crossEntropy: report.crossEntropy, smoothL1: report.smoothL1 },
    learningRate: report.learningRate,
    badRecords: report.badRecords,
  };
}

export function createCoordinatorMetrics(
  registry: Registry,
  source: CoordinatorMetricsSource,
  options: CoordinatorMetricsOptions = {},
): CoordinatorMetrics {
  const clock = options.clock ?? systemClock;
  const workers = () => source.membership().members.length;
  if (options.defaultMetrics !== false) registerProcessMetrics(registry);
  // Like the counters fed by step reports, the counts of committed steps stop moving at close().
  let atClose: { images: number; badRecords: number } | undefined;
  const training = createTrainingMetrics(registry, {
    clock,
    ranks: workers,
    windowMs: options.windowMs,
    imagesTotal: () => atClose?.images ?? source.stats.imagesTotal,
    badRecordsTotal: () => atClose?.badRecords ?? source.stats.badRecords,
  });
  registerStateGauges(registry, source);
  registerScalingGauges(registry, training, clock, workers, options.windowMs ?? DEFAULT_WINDOW_MS);
  const listener = (report: StepReportMsg) => training.observeStep(stepObservation(report));
  source.stats.stepListeners.push(listener);
  return {
    training,
    close() {
      atClose ??= { images: source.stats.imagesTotal, badRecords: source.stats.badRecords };
      const i = source.stats.stepListeners.indexOf(listener);
      if (i >= 0) source.stats.stepListeners.splice(i, 1);
    },
  };
}

function gauge(registry: Registry, name: string, help: string, value: () => number): void {
  new Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      this.set(value());
    },
  });
}

/** A counter that mirrors a monotonic count kept elsewhere. */
function mirroredCounter(registry: Registry, name: string, help: string, value: () => number): void {
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset();
      this.inc(value());
    },
  });
}

function registerStateGauges(registry: Registry, source: CoordinatorMetricsSource): void {
  const { stats } = source;
  gauge(registry, 'ssd_cluster_workers', 'Workers alive in the current ring.', () => {
    return source.membership().members.length;
  });
  gauge(registry, 'ssd_cluster_generation', 'Membership generation (bumps on every ring change).', () => {
    return source.membership().generation;
  });
  gauge(registry, 'ssd_cluster_epoch', 'Epoch (0-based) of the last committed step.', () => {
    return stats.committed?.epoch ?? 0;
  });
  gauge(registry, 'ssd_cluster_step', 'Optimizer steps committed since the job began.', () => {
    return stats.committed?.globalStep ?? 0;
  });
  gauge(registry, 'ssd_cluster_validation_map', 'VOC07 mAP of the last validation (NaN before it).', () => {
    return stats.validationMap ?? Number.NaN;
  });
  gauge(
    registry,
    'ssd_cluster_checkpoint_last_success_timestamp_seconds',
    'Unix time of the last checkpoint written in full (0 before the first).',
    () => (stats.lastCheckpointMs ?? 0) / 1000,
  );
  mirroredCounter(
    registry,
    'ssd_cluster_restarts_total',
    'Workers lost from the ring.',
    () => stats.restarts,
  );
  mirroredCounter(
    registry,
    'ssd_cluster_stalls_total',
    'Stall episodes: no step committed for the stall timeout while the job was running.',
    () => stats.stalls,
  );
  registerPhaseGauges(registry, source);
}

function registerPhaseGauges(registry: Registry, source: CoordinatorMetricsSource): void {
  new Gauge({
    name: 'ssd_cluster_job_phase',
    help: 'Job phase: 1 for the current one of forming | running | stalled | finished, else 0.',
    labelNames: ['phase'] as const,
    registers: [registry],
    collect() {
      const current = source.membership().phase;
      for (const phase of JOB_PHASES) this.set({ phase }, phase === current ? 1 : 0);
    },
  });
  new Gauge({
    name: 'ssd_cluster_workers_in_phase',
    help: 'Ring members by the step phase their last heartbeat reported (data | compute | allreduce | update | validation | idle | other).',
    labelNames: ['phase'] as const,
    registers: [registry],
    collect() {
      const counts = countWorkerPhases(source);
      for (const phase of WORKER_PHASES) this.set({ phase }, counts.get(phase) ?? 0);
    },
  });
}

export function countWorkerPhases(source: CoordinatorMetricsSource): Map<string, number> {
  const counts = new Map<string, number>();
  const known = new Set<string>(WORKER_PHASES);
  for (const { workerId } of source.membership().members) {
    const seen = source.stats.positions.get(workerId)?.position.phase ?? 'idle';
    const phase = known.has(seen) ? seen : 'other';
    counts.set(phase, (counts.get(phase) ?? 0) + 1);
  }
  return counts;
}

function registerScalingGauges(
  registry: Registry,
  training: TrainingMetrics,
  clock: Clock,
  workers: () => number,
  windowMs: number,
): void {
  const estimate = () => estimateScaling(training.window, clock.monotonic(), workers());
  const seconds = Math.round(windowMs / 1000);
  gauge(
    registry,
    'ssd_cluster_single_worker_images_per_second',
    `Estimated throughput of one worker: median over the last ${seconds} s of images / (data + compute + update seconds) of each step report.`,
    () => estimate().singleWorkerImagesPerSecond,
  );
  gauge(
    registry,
    'ssd_cluster_speedup',
    'Speedup over one worker: ssd_cluster_images_per_second / ssd_cluster_single_worker_images_per_second (NaN before the first step).',
    () => estimate().speedup,
  );
  gauge(
    registry,
    'ssd_cluster_scaling_efficiency',
    'Scaling efficiency: ssd_cluster_speedup / ssd_cluster_workers (1 = linear scaling).',
    () => estimate().efficiency,
  );
}

export interface CoordinatorMetricsEndpoint extends MetricsServer {
  readonly registry: Registry;
  readonly metrics: CoordinatorMetrics;
}

/**
 * The coordinator's metrics on a fresh Registry, served with HTTP service discovery of the workers'
 * endpoints on GET /sd. close() stops the server, then the step listener.
 */
export async function serveCoordinatorMetrics(
  source: CoordinatorMetricsSource,
  o: CoordinatorMetricsOptions & { host?: string; port: number; logger?: Logger },
): Promise<CoordinatorMetricsEndpoint> {
  const registry = new Registry();
  const metrics = createCoordinatorMetrics(registry, source, o);
  try {
    const server = await startMetricsServer({
      registry,
      host: o.host,
      port: o.port,
      logger: o.logger,
      sd: () => workerTargetGroups(source.membership()),
    });
    const close = async () => {
      await server.close();
      metrics.close();
    };
    return {
      port: server.port,
      address: server.address,
      registry,
      metrics,
      close,
      [Symbol.asyncDispose]: close,
    };
  } catch (err) {
    metrics.close();
    throw err;
  }
}
