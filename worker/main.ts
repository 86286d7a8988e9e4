/**
 * The worker's composition root: peer server and ring transport, join, the job's data and model,
 * the heartbeat loop, then one trainer run per membership generation until the job is finished.
 *
 * Generations: every assignment names a ring. The worker joins it (transport streams to its
 * neighbours), trains with the ring as the gradient reducer and reports each step. A generation ends
 * when the coordinator says so (a heartbeat or step ack carries a newer generation, which aborts the
 * generation's signal and so any all-reduce in flight) or when the ring fails (a peer lost). Either way
 * the worker asks for the next assignment, reporting how far it got; the coordinator starts the next
 * ring from the least advanced survivor.
 */
import { hostname } from 'node:os';
import { createCheckpointStore, loadCheckpoint } from '../coordinator/checkpoint/store.js';
import {
  type AssignmentMsg,
  type JoinResponseMsg,
  LEAVE_JOB_FINISHED,
  type ProgressMsg,
} from '../coordinator/protocol.js';
import { compileHyperparameters } from '../shared/config/compile.js';
import type { Hyperparameters } from '../shared/config/hyperparameters.js';
import {
  ClusterError,
  ConfigError,
  errorMessage,
  flagError,
  isAbortError,
  isClusterError,
} from '../shared/errors.js';
import type { Logger } from '../shared/logging.js';
import { createRpcClient } from '../shared/rpc/client.js';
import { createStorage } from '../shared/storage/open-storage.js';
import type { Storage } from '../shared/storage/storage.js';
import { createTimeline, recordStepPhases, type Timeline, timelineNowMs } from '../shared/timeline.js';
import { SSD_CLUSTER_VERSION, versionMismatch } from '../shared/version.js';
import { GrpcRingTransport } from './allreduce/grpc-transport.js';
import { type BackendName, initBackend } from './backend/backend.js';
import { CoordinatorClient } from './coordinator-client.js';
import { registerDecodeCacheMetrics } from './data/decode-cache-metrics.js';
import { configurePrepareThread, decodeCacheStats } from './data/prepare-thread.js';
import { serveWorkerMetrics, type WorkerMetrics } from './metrics.js';
import { startPeerServer } from './peer-service.js';
import { RingReducer } from './ring-reducer.js';
import { RollbackSnapshots } from './rollback.js';
import { fetchState, STATE_SERVICE_NAME, StateProvider, stateProto } from './state-transfer.js';
import {
  type Checkpointer,
  checkpointMeta,
  createCheckpointer,
  resumeTrainer,
} from './train/checkpointing.js';
import { LaggingAcks } from './train/collective.js';
import { readDatasetClasses, writeModelArtifact } from './train/model-artifact.js';
import { createModel, openChannel } from './train/run-training.js';
import { trainingHost } from './train/sagemaker-log.js';
import { type Collective, createTrainer, type Trainer } from './train/trainer.js';
import { createWorkerSession, type WorkerSession } from './worker-session.js';

export interface RunWorkerOptions {
  coordinator: string;
  backend: BackendName;
  threads?: number;
  /** Host peers (and Prometheus) use to reach this worker; default: what the coordinator sees. */
  advertise?: string;
  /** Pin to one GPU (CUDA_VISIBLE_DEVICES) before the backend loads. */
  gpu?: number;
  clusterToken: string;
  coordinatorTimeoutMs: number;
  workerId?: string;
  /** Prometheus /metrics port (0 or undefined: an ephemeral one, announced to the coordinator). */
  metricsPort?: number;
  /** Chrome trace of this worker's step phases and all-reduce calls, written at exit. */
  timeline?: string;
  /** Budget of the prepare thread's decoded-image cache (default DEFAULT_DECODE_CACHE_MB; 0: off). */
  decodeCacheBytes?: number;
  logger: Logger;
  env: NodeJS.ProcessEnv;
  /** SageMaker metric lines. */
  metrics: (line: string) => void;
  signal: AbortSignal;
}

export interface WorkerResult {
  workerId: string;
  generations: number;
  wroteModel: boolean;
}

export async function runWorker(o: RunWorkerOptions): Promise<WorkerResult> {
  if (o.gpu !== undefined) process.env.CUDA_VISIBLE_DEVICES = String(o.gpu);
  if (o.decodeCacheBytes !== undefined) configurePrepareThread({ decodeCacheBytes: o.decodeCacheBytes });
  const closers: (() => unknown)[] = [];
  const client = new CoordinatorClient({
    address: o.coordinator,
    logger: o.logger,
    coordinatorTimeoutMs: o.coordinatorTimeoutMs,
  });
  closers.push(() => client.close());
  const transport = new GrpcRingTransport({ logger: o.logger });
  closers.push(() => transport.close());
  try {
    const stateProvider = new StateProvider(o.logger);
    const peer = await startPeerServer({
      handler: transport,
      address: '0.0.0.0:0',
      logger: o.logger,
      extraServices: [
        { name: STATE_SERVICE_NAME, ...stateProto(), implementation: stateProvider.implementation() },
      ],
    });
    closers.push(() => peer.close());
    const timeline = o.timeline ? createTimeline({ rank: 0, path: o.timeline }) : undefined;
    if (timeline) closers.push(() => timeline.close());
    const metricsEndpoint = await serveWorkerMetrics({
      host: '0.0.0.0',
      port: o.metricsPort ?? 0,
      logger: o.logger,
    }).catch((err) => {
      throw flagError('--metrics-port', o.metricsPort ?? 0, err);
    });
    closers.push(() => metricsEndpoint.close());
    registerDecodeCacheMetrics(metricsEndpoint.registry, decodeCacheStats);
    const request = {
      clusterToken: o.clusterToken,
      workerId: o.workerId ?? '',
      peerAddress: `${o.advertise ?? ''}:${peer.port}`,
      metricsAddress: `${o.advertise ?? ''}:${metricsEndpoint.port}`,
      layoutHash: '',
      backend: o.backend,
      hostname: hostname(),
      version: SSD_CLUSTER_VERSION,
    };
    /** Join, refusing a coordinator of another version (one that does not check versions itself). */
    const joinChecked = async (req: typeof request) => {
      const answer = await client.join(req, o.signal);
      const mismatch = versionMismatch({
        worker: `on ${request.hostname}`,
        workerVersion: SSD_CLUSTER_VERSION,
        coordinatorVersion: answer.coordinatorVersion,
      });
      if (mismatch !== null) {
        // Gone at once rather than by a heartbeat timeout.
        await client.leave(answer.workerId, 'version mismatch').catch(() => {});
        throw new ConfigError([`--coordinator ${o.coordinator}: ${mismatch}`]);
      }
      return answer;
    };
    const joined = await joinChecked(request);
    // A restarted coordinator (maybe of another version) does not know this worker: join it again under the same id.
    const rejoin = async () => {
      await joinChecked({ ...request, workerId: joined.workerId });
    };
    const log = o.logger.child({ workerId: joined.workerId });
    log.info('joined', { coordinator: o.coordinator, peerPort: peer.port });
    // Heartbeats start at once: preparing the job (backend, data, model) takes seconds.
    const session = createWorkerSession({
      client,
      address: o.coordinator,
      workerId: joined.workerId,
      intervalMs: joined.heartbeatIntervalMs,
      coordinatorTimeoutMs: o.coordinatorTimeoutMs,
      logger: log,
    });
    closers.push(() => session.close());
    const storage = createStorage({ s3Endpoint: joined.job.s3Endpoint || undefined, env: o.env });
    closers.push(() => storage.close());
    try {
      const job = await prepareJob(o, joined, {
        storage,
        log,
        closers,
        transport,
        session,
        metrics: metricsEndpoint.metrics,
        timeline,
      });
      return await trainGenerations(o, joined, job, {
        session,
        transport,
        storage,
        log,
        rejoin,
        stateProvider,
      });
    } catch (err) {
      // Gone at once, with the cause for the coordinator's log, rather than at a heartbeat timeout.
      if (!isClusterError(err, 'COORDINATOR_LOST'))
        await client.leave(joined.workerId, o.signal.aborted ? 'stopped' : `failed: ${errorMessage(err)}`);
      throw err;
    }
  } finally {
    for (const close of closers.reverse()) await close();
  }
}

interface PreparedJob {
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

async function prepareJob(
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

async function trainGenerations(
  o: RunWorkerOptions,
  joined: JoinResponseMsg,
  job: PreparedJob,
  ctx: {
    session: WorkerSession;
    transport: GrpcRingTransport;
    storage: Storage;
    log: Logger;
    rejoin: () => Promise<void>;
    stateProvider: StateProvider;
  },
): Promise<WorkerResult> {
  const { session, transport, storage, log } = ctx;
  const workerId = joined.workerId;
  let known = 0;
  let generations = 0;
  let hasState = false;
  let wroteModel = false;
  const snapshots = new RollbackSnapshots();
  /** Why the ring of generation `known` broke here, for the coordinator (coordinator/ring-failure.ts). */
  let ringFailure = '';
  for (;;) {
    const completed: ProgressMsg | null = hasState ? progressOf(job.trainer) : null;
    let a: AssignmentMsg;
    try {
      a = await session.client.getAssignment(workerId, known, completed, o.signal, ringFailure);
      ringFailure = '';
    } catch (err) {
      if (!isClusterError(err, 'NOT_FOUND')) throw err;
      log.warn('the coordinator does not know this worker; joining again', { error: errorMessage(err) });
      await ctx.rejoin();
      known = 0;
      continue;
    }
    if (a.finished && a.jobFailure) throw new ClusterError('ABORTED', `the job failed: ${a.jobFailure}`);
    if (a.finished) break;
    known = a.generation;
    generations++;
    const gen = session.enterGeneration(a.generation, o.signal);
    try {
      if (!hasState && a.stateSourceRank < 0 && a.start!.globalStep > 0 && joined.job.resumeFrom) {
        // The job resumes from a checkpoint and this worker has no state of its own yet.
        resumeTrainer(job.trainer, await loadCheckpoint(storage, joined.job.resumeFrom, o.signal), {
          hp: job.hp,
          seed: joined.job.seed,
          logger: log,
          meta: { train: joined.job.trainUrl },
        });
        hasState = true;
      }
      if (!hasState && a.stateSourceRank >= 0 && a.start!.globalStep > 0) {
        await copyStateFrom(a, job.trainer, gen.signal, log);
        hasState = true;
      }
      checkStart(a, job.trainer, snapshots);
      // A newly admitted member copies its state from a member that has one (state-transfer.ts).
      if (hasState && a.stateSourceRank >= 0) {
        ctx.stateProvider.offerState(a.generation, a.start!.globalStep, job.trainer);
      }
      job.ring.rank = a.rank;
      if (a.worldSize > 1) snapshots.record(job.trainer);
      await transport.join(
        {
          generation: a.generation,
          rank: a.rank,
          size: a.worldSize,
          leftAddress: a.ring[(a.rank - 1 + a.worldSize) % a.worldSize]!,
          layoutHash: job.layoutHash,
        },
        gen.signal,
      );
      job.reducer.setRing({ generation: a.generation, rank: a.rank, size: a.worldSize });
      job.metrics.onAssignment({ generation: a.generation, rank: a.rank, worldSize: a.worldSize });
      if (job.timeline) job.timeline.rank = a.rank;
      log.info('generation started', {
        generation: a.generation,
        rank: a.rank,
        worldSize: a.worldSize,
        start: a.start,
      });
      let writer = false;
      const collective = clusterCollective(a, workerId, session, snapshots, job, (w) => {
        writer = w;
      });
      const summary = await job.trainer.run(gen.signal, collective);
      hasState = true;
      if (!summary.interrupted && (writer || a.writeModel)) {
        await job.checkpointer?.flush(o.signal);
        const done = { workerId, generation: a.generation, modelDir: joined.job.modelDir };
        try {
          await job.writeModel(o.signal);
        } catch (err) {
          // Tell the coordinator, which ends the job with it, then fail this worker as before.
          await session.client.reportDone({ ...done, error: errorMessage(err) }, o.signal).catch(() => {});
          throw err;
        }
        await session.client.reportDone(done, o.signal);
        wroteModel = true;
        log.info('model written', { modelDir: joined.job.modelDir });
      }
    } catch (err) {
      if (o.signal.aborted || !isGenerationEnd(err, gen.signal)) throw err;
      // A stream to a neighbour broke while the generation was still on: a peer may have died.
      if (isClusterError(err, 'PEER_LOST') && !gen.signal.aborted) ringFailure = errorMessage(err);
      hasState = hasState || job.trainer.progress.globalStep > 0;
      log.warn('generation ended', { generation: a.generation, reason: errorMessage(err) });
    } finally {
      gen.end();
    }
  }
  log.debug('decode cache', { ...decodeCacheStats() });
  await session.client.leave(workerId, LEAVE_JOB_FINISHED);
  return { workerId, generations, wroteModel };
}

function clusterCollective(
  a: AssignmentMsg,
  workerId: string,
  session: WorkerSession,
  snapshots: RollbackSnapshots,
  job: PreparedJob,
  setWriter: (writer: boolean) => void,
): Collective {
  const generation = a.generation;
  const acks = new LaggingAcks();
  return {
    rank: a.rank,
    worldSize: a.worldSize,
    async afterStep(info) {
      const phases = { ...info.result.phases, data: info.dataSeconds };
      const allreduceBytes = job.reducer.last.bufferBytes;
      if (job.timeline) {
        recordStepPhases(job.timeline, {
          globalStep: info.progress.globalStep,
          endMs: timelineNowMs(),
          phases,
          args: { generation, allreduceBytes, bytesSent: job.reducer.last.bytesSent },
        });
      }
      // Before the next step changes anything: a synchronous copy into reused arrays.
      if (a.worldSize > 1) snapshots.record(job.trainer);
      job.metrics.onStep({
        images: info.images,
        phases,
        allreduceBytes,
        losses: { crossEntropy: info.result.clsLoss, smoothL1: info.result.locLoss },
        lr: info.lr,
        epoch: info.progress.epoch,
        globalStep: info.progress.globalStep,
      });
      if (info.skipped > 0) job.metrics.onBadRecord(info.skipped);
      session.position = {
        epoch: info.progress.epoch,
        step: info.progress.globalStep,
        phase: 'compute',
        bucket: 0,
      };
      const ack = session.client.reportStep(
        {
          workerId,
          generation,
          progress: progressOf({ progress: info.progress }),
          images: info.images,
          crossEntropy: info.result.clsLoss,
          smoothL1: info.result.locLoss,
          dataSeconds: info.dataSeconds,
          computeSeconds: info.result.phases.compute,
          allreduceSeconds: info.result.phases.allreduce,
          updateSeconds: info.result.phases.update,
          allreduceBytes,
          badRecords: info.skipped,
          learningRate: info.lr,
          checkpointWrittenMs: job.checkpointer?.lastSuccessMs ?? 0,
        },
        session.generationSignal,
      );
      // Read one step late (collective.ts): the round trip overlaps the next step.
      return acks.settle(
        ack.then((m) => !m.stop && m.generation === generation),
        info.lastInEpoch,
      );
    },
    async decideEpoch(epoch, rows, progress) {
      session.position = { epoch, step: progress.globalStep, phase: 'validation', bucket: 0 };
      const empty = Buffer.alloc(0);
      const d = await session.client.reportEpoch(
        {
          workerId,
          generation,
          epoch,
          detections: rows
            ? Buffer.from(rows.detections.buffer, rows.detections.byteOffset, rows.detections.byteLength)
            : empty,
          groundTruth: rows
            ? Buffer.from(rows.groundTruth.buffer, rows.groundTruth.byteOffset, rows.groundTruth.byteLength)
            : empty,
          validationImages: rows?.images ?? 0,
          progress: progressOf({ progress }),
        },
        session.generationSignal,
      );
      if (d.stop) setWriter(d.writerRank === a.rank);
      const validationMap = rows && !Number.isNaN(d.validationMap) ? d.validationMap : null;
      job.metrics.onEpoch({ epoch, validationMap });
      return { validationMap, stop: d.stop };
    },
  };
}

function progressOf(t: Pick<Trainer, 'progress'>): ProgressMsg {
  return { epoch: t.progress.epoch, position: t.progress.position, globalStep: t.progress.globalStep };
}

/** Fetches the state of the generation's start from the member the coordinator names. */
async function copyStateFrom(
  a: AssignmentMsg,
  trainer: Trainer,
  signal: AbortSignal,
  log: Logger,
): Promise<void> {
  const source = a.ring[a.stateSourceRank]!;
  const client = createRpcClient(source);
  try {
    const request = { generation: a.generation, globalStep: a.start!.globalStep };
    trainer.setState(await fetchState(client, request, source, signal));
    log.info('state copied', { from: source, ...request });
  } finally {
    client.close();
  }
}

/** Puts the trainer where the assignment starts: as it is, or one snapshot back. */
function checkStart(a: AssignmentMsg, trainer: Trainer, snapshots: RollbackSnapshots): void {
  const start = a.start!;
  if (!snapshots.restore(trainer, start)) {
    const at = trainer.progress;
    throw new ClusterError(
      'INTERNAL',
      `assignment starts at epoch ${start.epoch} position ${start.position} step ${start.globalStep}, ` +
        `but this worker is at epoch ${at.epoch} position ${at.position} step ${at.globalStep} with no snapshot there`,
    );
  }
}

/** Errors that end a generation but not the worker: the ring changed or a peer went away. */
function isGenerationEnd(err: unknown, generationSignal: AbortSignal): boolean {
  if (generationSignal.aborted && isAbortError(err)) return true;
  return (
    isClusterError(err, 'STALE_GENERATION') ||
    isClusterError(err, 'PEER_LOST') ||
    isClusterError(err, 'TIMEOUT') ||
    generationSignal.aborted
  );
}
