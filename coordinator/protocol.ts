/**
 * TypeScript shapes of proto/cluster.proto's messages as proto-loader delivers them (camelCase,
 * 64-bit integers as numbers, defaults filled in). The coordinator service and the worker's client
 * both use these; only they and shared/rpc touch grpc-js.
 */
import { loadProto } from '../shared/rpc/proto.js';

export const COORDINATOR_SERVICE = 'ssdcluster.v1.Coordinator';

export function coordinatorProto() {
  const proto = loadProto('cluster.proto');
  return { proto, service: proto.service(COORDINATOR_SERVICE) };
}

export interface ProgressMsg {
  epoch: number;
  position: number;
  globalStep: number;
}

export interface JobSpecMsg {
  hyperparameters: Record<string, string>;
  trainUrl: string;
  validationUrl: string;
  trainAnnotationUrl: string;
  validationAnnotationUrl: string;
  modelDir: string;
  seed: number;
  pretrainedBase: string;
  s3Endpoint: string;
  onBadRecord: string;
  gradientCompression: string;
  modelArchive: boolean;
  checkpointDir: string;
  checkpointFrequency: number;
  keepCheckpoints: number;
  resumeFrom: string;
  /** XNNPACK threads per worker on wasm; 0 or absent: the worker's own --threads, else 1. */
  threads?: number;
}

export interface JoinRequestMsg {
  clusterToken: string;
  workerId: string;
  peerAddress: string;
  metricsAddress: string;
  layoutHash: string;
  backend: string;
  hostname: string;
  /** The worker's SSD_CLUSTER_VERSION (shared/version.ts); '' from a build that does not send it. */
  version: string;
}

export interface JoinResponseMsg {
  workerId: string;
  job: JobSpecMsg;
  heartbeatIntervalMs: number;
  generation: number;
  /** The coordinator's SSD_CLUSTER_VERSION; '' from a build that does not send it. */
  coordinatorVersion: string;
}

export interface PositionMsg {
  epoch: number;
  step: number;
  phase: string;
  bucket: number;
}

export interface HeartbeatRequestMsg {
  workerId: string;
  generation: number;
  position: PositionMsg | null;
}

export interface HeartbeatResponseMsg {
  generation: number;
  jobPhase: string;
}

export interface AssignmentRequestMsg {
  workerId: string;
  knownGeneration: number;
  completed: ProgressMsg | null;
  /** Why the ring of knownGeneration failed at this worker (PEER_LOST); '' or absent when it did not. */
  ringFailure?: string;
}

export interface AssignmentMsg {
  generation: number;
  rank: number;
  worldSize: number;
  ring: string[];
  start: ProgressMsg | null;
  finished: boolean;
  stateSourceRank: number;
  /** Training is over and this worker inherits the model write (its writer was lost); absent: false. */
  writeModel?: boolean;
  /** With `finished`: why the job failed; '' or absent when it ended well. */
  jobFailure?: string;
}

export interface StepReportMsg {
  workerId: string;
  generation: number;
  progress: ProgressMsg | null;
  images: number;
  crossEntropy: number;
  smoothL1: number;
  dataSeconds: number;
  computeSeconds: number;
  allreduceSeconds: number;
  updateSeconds: number;
  allreduceBytes: number;
  badRecords: number;
  learningRate: number;
  /** 0 or absent: none written yet (proto-loader fills 0 on the receiving side). */
  checkpointWrittenMs?: number;
}

export interface StepAckMsg {
  generation: number;
  stop: boolean;
}

export interface EpochReportMsg {
  workerId: string;
  generation: number;
  epoch: number;
  detections: Buffer;
  groundTruth: Buffer;
  validationImages: number;
  progress: ProgressMsg | null;
}

export interface EpochDecisionMsg {
  generation: number;
  epoch: number;
  validationMap: number;
  stop: boolean;
  writerRank: number;
}

export interface DoneReportMsg {
  workerId: string;
  generation: number;
  modelDir: string;
  /** Why writing the model failed; '' or absent when it was written. */
  error?: string;
}

export interface LeaveRequestMsg {
  workerId: string;
  /** LEAVE_JOB_FINISHED after a finished job; anything else is logged as a warning (e.g. 'failed: ...'). */
  reason: string;
}

/** The reason a worker leaves with once the job has finished. */
export const LEAVE_JOB_FINISHED = 'job finished';

/** Float32 rows packed little-endian into bytes, as EpochReport carries them. */
export function packRows(rows: Float32Array): Buffer {
  return Buffer.from(rows.buffer, rows.byteOffset, rows.byteLength);
}

/** The inverse of packRows; copies when the bytes are not 4-byte aligned. */
export function unpackRows(bytes: Buffer): Float32Array {
  if (bytes.byteLength % 4 !== 0)
    throw new RangeError(`packed rows: ${bytes.byteLength} bytes is not a multiple of 4`);
  if (bytes.byteOffset % 4 === 0)
    return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  return new Float32Array(new Uint8Array(bytes).buffer);
}
