/**
 * The worker's generations: one trainer run per assignment until the job is finished (worker/main.ts
 * describes the protocol). A generation that ends by a ring change or a lost peer is not an error:
 * the worker asks for its next assignment, reporting how far it got.
 */
import { loadCheckpoint } from '../coordinator/checkpoint/store.js';
import {
  type AssignmentMsg,
  type JoinResponseMsg,
  LEAVE_JOB_FINISHED,
  type ProgressMsg,
} from '../coordinator/protocol.js';
import { ClusterError, errorMessage, isAbortError, isClusterError } from '../shared/errors.js';
import type { Logger } from '../shared/logging.js';
import { createRpcClient } from '../shared/rpc/client.js';
import type { Storage } from '../shared/storage/storage.js';
import type { GrpcRingTransport } from './allreduce/grpc-transport.js';
import { clusterCollective, progressOf } from './cluster-collective.js';
import { decodeCacheStats } from './data/prepare-thread.js';
import type { RunWorkerOptions, WorkerResult } from './main.js';
import type { PreparedJob } from './prepare-job.js';
import { RollbackSnapshots } from './rollback.js';
import { fetchState, type StateProvider } from './state-transfer.js';
import { resumeTrainer } from './train/resume.js';
import type { Trainer } from './train/trainer.js';
import type { WorkerSession } from './worker-session.js';

export async function trainGenerations(
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
