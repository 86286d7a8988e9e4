import { status as GrpcStatus, Metadata, type ServiceError, type StatusObject } from '@grpc/grpc-js';
import { ClusterError, type ClusterErrorCode, isAbortError } from '../errors.js';
import type { Logger } from '../logging.js';

/**
 * The only place that knows gRPC status codes. Servers turn thrown errors into a status with
 * `toStatus`; clients turn a failed call back into a `ClusterError` with `fromServiceError`.
 * The exact `ClusterErrorCode` travels in the trailing metadata key `ssd-cluster-code`, so a
 * round trip keeps it; a status without that key (another implementation, a transport failure)
 * is mapped from its gRPC code.
 */
export const CODE_METADATA_KEY = 'ssd-cluster-code';

const TO_GRPC: Record<ClusterErrorCode, GrpcStatus> = {
  CONFIG: GrpcStatus.INVALID_ARGUMENT,
  USAGE: GrpcStatus.INVALID_ARGUMENT,
  RECORDIO: GrpcStatus.INVALID_ARGUMENT,
  ANNOTATION: GrpcStatus.INVALID_ARGUMENT,
  IMAGE: GrpcStatus.INVALID_ARGUMENT,
  PROTOCOL: GrpcStatus.INVALID_ARGUMENT,
  STORAGE: GrpcStatus.UNAVAILABLE,
  NOT_FOUND: GrpcStatus.NOT_FOUND,
  BACKEND: GrpcStatus.INTERNAL,
  MODEL: GrpcStatus.INTERNAL,
  INTERNAL: GrpcStatus.INTERNAL,
  STALE_GENERATION: GrpcStatus.FAILED_PRECONDITION,
  PEER_LOST: GrpcStatus.UNAVAILABLE,
  COORDINATOR_LOST: GrpcStatus.UNAVAILABLE,
  TIMEOUT: GrpcStatus.DEADLINE_EXCEEDED,
  ABORTED: GrpcStatus.CANCELLED,
  CHECKPOINT_CORRUPT: GrpcStatus.DATA_LOSS,
};

/** For statuses that arrive without our metadata key. */
const FROM_GRPC: Partial<Record<GrpcStatus, ClusterErrorCode>> = {
  [GrpcStatus.INVALID_ARGUMENT]: 'PROTOCOL',
  [GrpcStatus.FAILED_PRECONDITION]: 'STALE_GENERATION',
  [GrpcStatus.UNAVAILABLE]: 'PEER_LOST',
  [GrpcStatus.DEADLINE_EXCEEDED]: 'TIMEOUT',
  [GrpcStatus.CANCELLED]: 'ABORTED',
  [GrpcStatus.NOT_FOUND]: 'NOT_FOUND',
  [GrpcStatus.DATA_LOSS]: 'CHECKPOINT_CORRUPT',
};

const CODE_NAMES = new Set<string>(Object.keys(TO_GRPC));

/** A failed RPC seen by a client: the code of the situation, the method path and the gRPC status name. */
export class RpcError extends ClusterError {
  readonly path: string;
  readonly status: string;
  constructor(
    code: ClusterErrorCode,
    path: string,
    status: string,
    details: string,
    options?: { cause?: unknown },
  ) {
    super(code, `${path} failed with ${status}: ${details}`, options);
    this.name = 'RpcError';
    this.path = path;
    this.status = status;
  }
}

export function grpcStatusName(code: number): string {
  return GrpcStatus[code] ?? `STATUS_${code}`;
}

/**
 * Maps an error thrown by a handler to the status sent to the client: a ClusterError to its code
 * (plus `ssd-cluster-code` metadata), an abort to CANCELLED, anything else to UNKNOWN with the
 * stack logged (the client only sees the message).
 */
export function toStatus(err: unknown, logger?: Logger): StatusObject {
  const metadata = new Metadata();
  if (err instanceof ClusterError) {
    metadata.set(CODE_METADATA_KEY, err.code);
    return { code: TO_GRPC[err.code], details: err.message, metadata };
  }
  if (isAbortError(err)) {
    metadata.set(CODE_METADATA_KEY, 'ABORTED');
    return { code: GrpcStatus.CANCELLED, details: (err as Error).message, metadata };
  }
  const message = err instanceof Error ? err.message : String(err);
  logger?.error('unexpected error in an RPC handler', {
    error: message,
    stack: err instanceof Error ? err.stack : undefined,
  });
  return { code: GrpcStatus.UNKNOWN, details: message, metadata };
}

export function isServiceError(err: unknown): err is ServiceError {
  return (
    err instanceof Error &&
    typeof (err as Partial<ServiceError>).code === 'number' &&
    typeof (err as Partial<ServiceError>).details === 'string'
  );
}

/** Turns what a failed call reported into an RpcError that names the method path. */
export function fromServiceError(path: string, err: unknown): ClusterError {
  if (err instanceof ClusterError) return err;
  if (!isServiceError(err)) {
    return new RpcError('INTERNAL', path, 'UNKNOWN', err instanceof Error ? err.message : String(err), {
      cause: err,
    });
  }
  const sent = err.metadata?.get(CODE_METADATA_KEY)[0];
  const code =
    typeof sent === 'string' && CODE_NAMES.has(sent)
      ? (sent as ClusterErrorCode)
      : (FROM_GRPC[err.code as GrpcStatus] ?? 'INTERNAL');
  return new RpcError(code, path, grpcStatusName(err.code), err.details, { cause: err });
}
