import { withDeadline } from '../shared/abort.js';
import { checkNumTrainingSamples } from '../shared/config/compile.js';
import type { Hyperparameters } from '../shared/config/hyperparameters.js';
import { ConfigError, flagError } from '../shared/errors.js';
import type { Logger } from '../shared/logging.js';
import { createProgress, type Progress, type ProgressOptions } from '../shared/progress.js';
import type { Storage } from '../shared/storage/storage.js';
import { openDataset } from '../worker/data/open-dataset.js';
import { readDatasetClasses } from '../worker/train/model-artifact.js';
import { findResumeCheckpoint, resumeProblems } from '../worker/train/resume.js';
import { createCheckpointStore, type LoadedCheckpoint } from './checkpoint/store.js';
import { Coordinator, type TrainingSummary } from './coordinator.js';
import { serveCoordinatorMetrics } from './metrics.js';
import type { JobSpecMsg } from './protocol.js';
import { startCoordinatorServer } from './service.js';
import type { CoordinatorStats } from './stats.js';

export interface RunCoordinatorOptions {
  hp: Readonly<Hyperparameters>;
  spec: JobSpecMsg;
  workers: number;
  minWorkers: number;
  maxWorkers: number;
  /** host:port to serve on, e.g. 0.0.0.0:7070 or 127.0.0.1:0. */
  address: string;
  /** Prometheus /metrics and /sd on the same host (0: an ephemeral port; undefined: none). */
  metricsPort?: number;
  /** When metricsPort is taken, serve on an ephemeral port instead of failing (local's default port). */
  metricsPortFallback?: boolean;
  clusterToken: string;
  heartbeatTimeoutMs: number;
  stallTimeoutMs?: number;
  /** --resume (newest valid checkpoint in spec.checkpointDir) or --resume-from URL. */
  resume?: { newest: boolean; from: string | undefined };
  storage: Storage;
  logger: Logger;
  signal: AbortSignal;
  /** Where the progress bar (TTY) or periodic progress lines go; none when undefined. */
  progressStream?: NodeJS.WritableStream & { isTTY?: boolean };
  /** Called once the server listens (the launcher starts workers then). */
  onListening?: (port: number, metricsPort: number | undefined) => void;
}

/**
 * The line `coordinator` and `local` print at the end: the job's summary plus the scaling estimate
 * the coordinator exported as ssd_cluster_speedup / ssd_cluster_scaling_efficiency after the last
 * step (null when no step was seen).
 */
export interface CoordinatorSummary extends TrainingSummary {
  speedup: number | null;
  scalingEfficiency: number | null;
}

export function withScaling(summary: TrainingSummary, stats: CoordinatorStats): CoordinatorSummary {
  const { speedup, efficiency } = stats.scalingAtLastStep();
  const finite = (x: number) => (Number.isFinite(x) ? x : null);
  return { ...summary, speedup: finite(speedup), scalingEfficiency: finite(efficiency) };
}

/**
 * Counts the train records and checks num_training_samples against them (SageMaker requires equality),
 * and num_classes against the train set's classes.json when it has one.
 * The count is every record the file holds, corrupt ones included: it is the .idx's line count, and a
 * .rec without .idx counts each damaged record the scan finds too (worker/data/recordio-dataset.ts),
 * so one file gives one count. A corrupt record stays a sample: the sharding plan and the learning-rate
 * schedule's steps per epoch count it, and training skips it when it reads it and logs it in the epoch's
 * bad-record summary. Counting only the good ones would need a read of every record before training
 * (with an .idx nothing else reads them all), and would change the setting whenever a record is damaged.
 */
export async function checkTrainData(
  spec: JobSpecMsg,
  hp: Readonly<Hyperparameters>,
  storage: Storage,
): Promise<number> {
  const dataset = await openDataset(spec.trainUrl, {
    storage,
    annotations: spec.trainAnnotationUrl || undefined,
  });
  try {
    const problem = checkNumTrainingSamples(hp, dataset.size);
    if (problem) throw new ConfigError([`${problem} (${spec.trainUrl})`]);
    // Every worker would fail on a classes.json that disagrees with num_classes: say so before they join.
    await readDatasetClasses(spec.trainUrl, hp.num_classes, storage);
    return dataset.size;
  } finally {
    await dataset.close();
  }
}

/**
 * The checkpoint the job resumes from (checked against the hyperparameters and seed), recorded in the
 * spec so that workers load it; undefined for a fresh start.
 */
async function resolveResume(o: RunCoordinatorOptions): Promise<LoadedCheckpoint | undefined> {
  if (!o.resume?.newest && !o.resume?.from) return undefined;
  const store = o.spec.checkpointDir
    ? createCheckpointStore({
        storage: o.storage,
        dir: o.spec.checkpointDir,
        keep: o.spec.keepCheckpoints || 3,
        logger: o.logger,
      })
    : undefined;
  try {
    const found = await findResumeCheckpoint({
      storage: o.storage,
      store,
      resume: o.resume.newest,
      resumeFrom: o.resume.from,
      logger: o.logger,
      signal: o.signal,
    });
    if (!found) return undefined;
    const problems = resumeProblems(found.url, found.meta, o.hp, o.spec.seed);
    if (problems.length > 0) throw new ConfigError(problems);
    o.spec.resumeFrom = found.url;
    o.logger.info('resuming from checkpoint', { url: found.url, ...found.state.progress });
    return found;
  } finally {
    await store?.close();
  }
}

/**
 * Progress over the committed steps, updated as each one commits (so the last line shows the last
 * step); the total assumes the ring keeps its initial size.
 */
export function clusterProgress(stats: CoordinatorStats, options: ProgressOptions): Progress {
  const bar = createProgress(options);
  stats.commitListeners.push((at) => {
    const loss = stats.lastLoss;
    bar.update({
      epoch: at.epoch + 1,
      step: at.globalStep,
      imagesPerSecond: stats.imagesPerSecond(),
      loss: loss ? loss.crossEntropy + loss.smoothL1 : Number.NaN,
    });
  });
  return bar;
}

function jobProgress(
  o: RunCoordinatorOptions,
  stream: ProgressOptions['stream'],
  stats: CoordinatorStats,
  samples: number,
): Progress {
  const perEpoch = Math.floor(samples / (o.hp.mini_batch_size * o.workers));
  return clusterProgress(stats, { stream, total: perEpoch * o.hp.epochs, epochs: o.hp.epochs });
}

/**
 * The coordinator's composition root: checks the data, serves cluster.proto until the job finishes
 * (or the signal aborts), then shuts down in reverse order and returns the summary.
 */
export async function runCoordinator(o: RunCoordinatorOptions): Promise<CoordinatorSummary> {
  const samples = await checkTrainData(o.spec, o.hp, o.storage);
  const resumed = await resolveResume(o);
  const at = resumed?.state.progress;
  const heartbeatIntervalMs = Math.max(100, Math.min(2000, Math.floor(o.heartbeatTimeoutMs / 5)));
  const coordinator = new Coordinator({
    spec: o.spec,
    hp: o.hp,
    membership: {
      minWorkers: o.minWorkers,
      maxWorkers: o.maxWorkers,
      targetWorkers: o.workers,
      heartbeatTimeoutMs: o.heartbeatTimeoutMs,
      formGraceMs: 2 * o.heartbeatTimeoutMs,
    },
    clusterToken: o.clusterToken,
    heartbeatIntervalMs,
    stallTimeoutMs: o.stallTimeoutMs,
    resumeFrom: at && { epoch: at.epoch, position: at.position, globalStep: at.globalStep },
    earlyStopping: at?.earlyStopping,
    validationMaps: at?.validationMaps,
    logger: o.logger,
  });
  // The CLI's only output on a port in use is this error, naming the flag (shared/rpc/server.ts).
  const server = await startCoordinatorServer(coordinator, o.address, o.logger).catch((err) => {
    throw flagError('--port', o.address.slice(o.address.lastIndexOf(':') + 1), err);
  });
  const host = o.address.slice(0, o.address.lastIndexOf(':')).replace(/^\[|\]$/g, '');
  const serveMetrics = (port: number) =>
    serveCoordinatorMetrics(
      { stats: coordinator.stats, membership: () => coordinator.membership },
      { host, port, logger: o.logger },
    );
  const metrics =
    o.metricsPort === undefined
      ? undefined
      : await serveMetrics(o.metricsPort)
          .catch((err) => {
            if (!o.metricsPortFallback) throw err;
            o.logger.warn('metrics port taken; serving metrics on an ephemeral port', {
              port: o.metricsPort,
            });
            return serveMetrics(0);
          })
          .catch(async (err) => {
            await server.close();
            throw flagError('--metrics-port', o.metricsPort!, err);
          });
  const progress = o.progressStream && jobProgress(o, o.progressStream, coordinator.stats, samples);
  try {
    coordinator.start();
    o.logger.info('coordinator listening', {
      port: server.port,
      metricsPort: metrics?.port,
      workers: o.workers,
      trainSamples: samples,
    });
    o.onListening?.(server.port, metrics?.port);
    const aborted = new Promise<never>((_, reject) => {
      if (o.signal.aborted) reject(o.signal.reason);
      o.signal.addEventListener('abort', () => reject(o.signal.reason), { once: true });
    });
    const summary = withScaling(await Promise.race([coordinator.finished, aborted]), coordinator.stats);
    o.logger.info('training finished', { ...summary, badRecords: coordinator.stats.badRecords });
    // Keep answering until the workers have seen the end and left (bounded: a dead one never leaves).
    await withDeadline(o.signal, 2 * o.heartbeatTimeoutMs, (s) => coordinator.whenAllLeft(s)).catch(() => {});
    return summary;
  } finally {
    progress?.stop();
    await coordinator.close();
    await metrics?.close();
    await server.close();
  }
}
