/**
 * A worker's Prometheus metrics on an injected Registry; the worker loop calls the `on*` methods.
 * The step metrics are the same definitions the coordinator exports (shared/metrics/training-metrics.ts),
 * for this rank alone. Once the worker has a rank, every series (process metrics included) carries a
 * `rank` label (a Registry default label); it changes when a new generation re-ranks the ring.
 */
import { Gauge, Registry } from 'prom-client';
import { type Clock, systemClock } from '../shared/clock.js';
import type { Logger } from '../shared/logging.js';
import { registerProcessMetrics } from '../shared/metrics/process-metrics.js';
import { type MetricsServer, startMetricsServer } from '../shared/metrics/server.js';
import type { PhaseSeconds } from '../shared/metrics/step-window.js';
import { createTrainingMetrics } from '../shared/metrics/training-metrics.js';

export interface WorkerStep {
  /** Images of this rank's share of the batch. */
  images: number;
  /** Seconds per phase. */
  phases: PhaseSeconds;
  /** Size of the buffer all-reduced in this step (after compression), in bytes. */
  allreduceBytes: number;
  losses: { crossEntropy: number; smoothL1: number };
  lr: number;
  /** Where the job is after this step. */
  epoch?: number;
  globalStep?: number;
}

export interface WorkerMetrics {
  /** A new ring: this worker's rank and the ring size (sets the `rank` label). */
  onAssignment(assignment: { generation: number; rank: number; worldSize: number }): void;
  onGeneration(generation: number): void;
  onStep(step: WorkerStep): void;
  onBadRecord(count?: number): void;
  onEpoch(epoch: { epoch: number; validationMap: number | null }): void;
  onCheckpoint(timestampMs: number): void;
}

export interface WorkerMetricsOptions {
  /** Known rank, if any (otherwise onAssignment sets it). */
  rank?: number;
  clock?: Clock;
  windowMs?: number;
  /** Also register the default process metrics (default true). */
  defaultMetrics?: boolean;
}

function settable(registry: Registry, name: string, help: string, initial = 0): Gauge {
  const g = new Gauge({ name, help, registers: [registry] });
  g.set(initial);
  return g;
}

export function createWorkerMetrics(registry: Registry, options: WorkerMetricsOptions = {}): WorkerMetrics {
  const clock = options.clock ?? systemClock;
  let worldSize = 0;
  if (options.defaultMetrics !== false) registerProcessMetrics(registry);
  const training = createTrainingMetrics(registry, {
    clock,
    ranks: () => worldSize,
    windowMs: options.windowMs,
  });
  const rank = settable(
    registry,
    'ssd_cluster_rank',
    'Rank of this worker in its ring (-1 before its first).',
    -1,
  );
  const world = settable(registry, 'ssd_cluster_world_size', 'Ranks in the ring this worker belongs to.');
  const generation = settable(
    registry,
    'ssd_cluster_generation',
    'Membership generation this worker works in.',
  );
  const epoch = settable(registry, 'ssd_cluster_epoch', 'Epoch (0-based) of the last step.');
  const step = settable(
    registry,
    'ssd_cluster_step',
    'Optimizer steps since the job began, after the last step.',
  );
  const map = settable(
    registry,
    'ssd_cluster_validation_map',
    'VOC07 mAP of the last validation (NaN before it).',
    Number.NaN,
  );
  const checkpoint = settable(
    registry,
    'ssd_cluster_checkpoint_last_success_timestamp_seconds',
    'Unix time of the last checkpoint this worker wrote in full (0 before the first).',
  );
  const setRank = (r: number) => {
    rank.set(r);
    registry.setDefaultLabels({ rank: String(r) });
  };
  if (options.rank !== undefined) setRank(options.rank);
  return {
    onAssignment(a) {
      setRank(a.rank);
      worldSize = a.worldSize;
      world.set(a.worldSize);
      generation.set(a.generation);
    },
    onGeneration: (g) => generation.set(g),
    onStep(s) {
      training.observeStep({ ...s, learningRate: s.lr });
      if (s.epoch !== undefined) epoch.set(s.epoch);
      if (s.globalStep !== undefined) step.set(s.globalStep);
    },
    onBadRecord: (count = 1) => training.addBadRecords(count),
    onEpoch(e) {
      epoch.set(e.epoch);
      map.set(e.validationMap ?? Number.NaN);
    },
    onCheckpoint: (timestampMs) => checkpoint.set(timestampMs / 1000),
  };
}

export interface WorkerMetricsEndpoint extends MetricsServer {
  readonly registry: Registry;
  readonly metrics: WorkerMetrics;
}

/**
 * A worker's metrics on a fresh Registry, served on GET /metrics. Start it before joining: the
 * JoinRequest carries `metrics_address` (`:PORT` lets the coordinator fill in the host it sees).
 */
export async function serveWorkerMetrics(
  o: WorkerMetricsOptions & { host?: string; port: number; logger?: Logger },
): Promise<WorkerMetricsEndpoint> {
  const registry = new Registry();
  const metrics = createWorkerMetrics(registry, o);
  const server = await startMetricsServer({ registry, host: o.host, port: o.port, logger: o.logger });
  return { ...server, registry, metrics };
}
