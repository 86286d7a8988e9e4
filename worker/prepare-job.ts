/**
 * What a worker prepares once it has joined: the backend, the job's data channels, the model, the
 * ring reducer with its agreed gradient layout, the trainer and the checkpointer. Every resource it
 * opens goes on the caller's closers.
 */
import { hostname } from 'node:os';
import { createCheckpointStore } from '../coordinator/checkpoint/store.js';
import type { JoinResponseMsg } from '../coordinator/protocol.js';
import { compileHyperparameters } from '../shared/config/compile.js';
import type { Hyperparameters } from '../shared/config/hyperparameters.js';
import type { Logger } from '../shared/logging.js';
import type { Storage } from '../shared/storage/storage.js';
import type { Timeline } from '../shared/timeline.js';
import type { GrpcRingTransport } from './allreduce/grpc-transport.js';
import { initBackend } from './backend/backend.js';
import type { RunWorkerOptions } from './main.js';
import type { WorkerMetrics } from './metrics.js';
import { RingReducer } from './ring-reducer.js';
import { type Checkpointer, createCheckpointer } from './train/checkpointing.js';
import { readDatasetClasses, writeModelArtifact } from './train/model-artifact.js';
import { checkpointMeta } from './train/resume.js';
import { createModel, openChannel } from './train/run-training.js';
import { trainingHost } from './train/sagemaker-log.js';
import { createTrainer, type Trainer } from './train/trainer.js';
import type { WorkerSession } from './worker-session.js';

export interface PreparedJob {
  hp: Readonly<Hyperparameters>;
  trainer: Trainer;
  /** This worker's rank in the current ring (rank 0 writes the checkpoints). */
  ring: { rank: number };
  /** Undefined without a checkpoint dir; flushed before the worker leaves. */
  checkpointer: Checkpointer | undefined;
  metrics: WorkerMetrics;
  timeline: Timeline | undefined;
  reducer: RingReducer;
  layoutHash: string;
  classes: string[] | undefined;
  writeModel(signal: AbortSignal): Promise<void>;
}

export async function prepareJob(
  o: RunWorkerOptions,
  joined: JoinResponseMsg,
  ctx: {
    storage: Storage;
    log: Logger;
    closers: (() => unknown)[];
    transport: GrpcRingTransport;
    session: WorkerSession;
    metrics: WorkerMetrics;
    timeline: Timeline | undefined;
  },
): Promise<PreparedJob> {
  const { storage, log, closers, transport, session, metrics, timeline } = ctx;
  const { job } = joined;
  const hp = compileHyperparameters(job.hyperparameters);
  // The worker's own --threads wins over the job's (coordinator --threads); 0 in the job: not set.
  const threads = o.threads ?? (job.threads || undefined);
  const backend = await initBackend(o.backend, { logger: log, threads });
  const channel = {
    hp,
    storage,
    logger: log,
    signal: o.signal,
    onBadRecord: job.onBadRecord === 'fail' ? ('fail' as const) : ('skip' as const),
  };
  const train = await openChannel(channel, job.trainUrl, job.trainAnnotationUrl || undefined);
  closers.push(() => train.close());
  const validation = job.validationUrl
    ? await openChannel(channel, job.validationUrl, job.validationAnnotationUrl || undefined)
    : undefined;
  if (validation) closers.push(() => validation.close());
  const model = await createModel({
    ...channel,
    seed: job.seed,
    pretrainedBase: job.pretrainedBase || undefined,
  });
  closers.push(() => model.dispose());
  const compression = job.gradientCompression === 'fp16' ? 'fp16' : 'none';
  const reducer = new RingReducer(transport, {
    compression,
    onPhase: (phase) => {
      session.position = { ...session.position, phase };
    },
  });
  const trainer = createTrainer({
    tf: backend.tf,
    model,
    hp,
    seed: job.seed,
    train,
    validation,
    logger: log,
    metrics: o.metrics,
    host: trainingHost(o.env, hostname()),
    reducer,
    onBadRecord: channel.onBadRecord,
    onCheckpointPoint: async (point, signal) => {
      if (ring.rank === 0) await checkpointer?.maybeCheckpoint(point.progress, point, signal);
    },
  });
  closers.push(() => trainer.close());
  const ring = { rank: -1 };
  const checkpointer = job.checkpointDir
    ? createCheckpointer({
        store: createCheckpointStore({
          storage,
          dir: job.checkpointDir,
          keep: job.keepCheckpoints || 3,
          logger: log,
        }),
        trainer,
        frequency: job.checkpointFrequency,
        meta: checkpointMeta(hp, job.seed, { workerId: joined.workerId, train: job.trainUrl }),
        logger: log,
        onWritten: (w) => metrics.onCheckpoint(w.timestampMs),
      })
    : undefined;
  if (checkpointer) closers.push(() => checkpointer.close());
  // Neighbours compare this when their ring streams open: the packed gradient buffers and the bucket
  // cuts over them must line up (the plan's hash covers names, shapes, dtype, extras and bucket size).
  const layoutHash = reducer.agreeLayout(trainer.step.layout);
  const classes = await readDatasetClasses(job.trainUrl, hp.num_classes, storage, o.signal);
  return {
    hp,
    trainer,
    ring,
    checkpointer,
    metrics,
    timeline,
    reducer,
    layoutHash,
    classes,
    writeModel: async (signal) => {
      await writeModelArtifact({
        model,
        hp,
        modelDir: job.modelDir,
        storage,
        classes,
        archive: job.modelArchive,
        mtime: Math.floor(Date.now() / 1000),
        signal,
      });
    },
  };
}
