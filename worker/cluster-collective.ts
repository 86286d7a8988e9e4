/**
 * The trainer's view of the cluster for one generation: each step is reported to the coordinator
 * (the ack is read one step late), recorded in the metrics, the timeline and the rollback snapshots,
 * and each epoch's validation rows go to the coordinator, which decides whether training stops.
 */
import type { AssignmentMsg, ProgressMsg } from '../coordinator/protocol.js';
import { recordStepPhases, timelineNowMs } from '../shared/timeline.js';
import type { PreparedJob } from './prepare-job.js';
import type { RollbackSnapshots } from './rollback.js';
import { LaggingAcks } from './train/collective.js';
import type { Collective, Trainer } from './train/trainer.js';
import type { WorkerSession } from './worker-session.js';

export function clusterCollective(
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

export function progressOf(t: Pick<Trainer, 'progress'>): ProgressMsg {
  return { epoch: t.progress.epoch, position: t.progress.position, globalStep: t.progress.globalStep };
}
