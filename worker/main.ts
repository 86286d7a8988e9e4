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
import { ConfigError, errorMessage, flagError, isClusterError } from '../shared/errors.js';
import type { Logger } from '../shared/logging.js';
import { createStorage } from '../shared/storage/open-storage.js';
import { createTimeline } from '../shared/timeline.js';
import { SSD_CLUSTER_VERSION, versionMismatch } from '../shared/version.js';
import { GrpcRingTransport } from './allreduce/grpc-transport.js';
import type { BackendName } from './backend/backend.js';
import { CoordinatorClient } from './coordinator-client.js';
import { registerDecodeCacheMetrics } from './data/decode-cache-metrics.js';
import { configurePrepareThread, decodeCacheStats } from './data/prepare-thread.js';
import { trainGenerations } from './generations.js';
import { serveWorkerMetrics } from './metrics.js';
import { startPeerServer } from './peer-service.js';
import { prepareJob } from './prepare-job.js';
import { STATE_SERVICE_NAME, StateProvider, stateProto } from './state-transfer.js';
import { createWorkerSession } from './worker-session.js';

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
    let left = false;
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
        left = true;
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
      if (!left && !isClusterError(err, 'COORDINATOR_LOST'))
        await client.leave(joined.workerId, o.signal.aborted ? 'stopped' : `failed: ${errorMessage(err)}`);
      throw err;
    }
  } finally {
    for (const close of closers.reverse()) await close();
  }
}
