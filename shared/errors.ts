/**
 * One error type for the whole project: a `ClusterError` carries a `code` that says which situation
 * went wrong, a message that names the file, record, field or flag involved, and the ES2022 `cause`.
 * Only `shared/rpc/status.ts` maps codes to gRPC statuses; the CLI maps them to exit codes.
 */
export type ClusterErrorCode =
  | 'CONFIG' // bad hyperparameter, flag or option
  | 'USAGE' // bad command line
  | 'RECORDIO' // malformed RecordIO / .idx / label data
  | 'ANNOTATION' // malformed SageMaker JSON annotation or manifest
  | 'IMAGE' // undecodable or unsupported image
  | 'STORAGE' // local file system or S3 failure
  | 'NOT_FOUND' // a file, object or key that does not exist
  | 'BACKEND' // a tfjs backend that cannot load or lacks a kernel
  | 'MODEL' // a model definition or weights problem
  | 'STALE_GENERATION' // an RPC from an older membership generation
  | 'PEER_LOST' // a ring neighbour or worker went away
  | 'COORDINATOR_LOST'
  | 'TIMEOUT'
  | 'ABORTED'
  | 'CHECKPOINT_CORRUPT'
  | 'PROTOCOL' // a malformed or out-of-order RPC
  | 'INTERNAL';

export class ClusterError extends Error {
  readonly code: ClusterErrorCode;
  constructor(code: ClusterErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'ClusterError';
  }
}

export class ConfigError extends ClusterError {
  /** Every problem found, each naming the key or flag, the value and what is allowed. */
  readonly problems: readonly string[];
  constructor(problems: readonly string[], options?: { cause?: unknown }) {
    super('CONFIG', problems.join('; '), options);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

export class UsageError extends ClusterError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('USAGE', message, options);
    this.name = 'UsageError';
  }
}

export class RecordIOError extends ClusterError {
  readonly file: string;
  readonly offset: number;
  /** `message` should say what is wrong; file and offset are appended. */
  constructor(file: string, offset: number, message: string, options?: { cause?: unknown }) {
    super('RECORDIO', `${file} at byte ${offset}: ${message}`, options);
    this.name = 'RecordIOError';
    this.file = file;
    this.offset = offset;
  }
}

export class StorageError extends ClusterError {
  readonly url: string;
  constructor(url: string, message: string, options?: { cause?: unknown; code?: 'STORAGE' | 'NOT_FOUND' }) {
    super(options?.code ?? 'STORAGE', `${url}: ${message}`, options);
    this.name = 'StorageError';
    this.url = url;
  }
}

export function isClusterError(err: unknown, code?: ClusterErrorCode): err is ClusterError {
  return err instanceof ClusterError && (code === undefined || err.code === code);
}

export function isAbortError(err: unknown): boolean {
  return (
    err instanceof Error &&
    (err.name === 'AbortError' || err.name === 'TimeoutError' || isClusterError(err, 'ABORTED'))
  );
}

/** The message of anything thrown, for logs. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * `err` as the CLI reports a flag whose value failed at run time, the flag and value first:
 * `--port 7070: cannot listen on 0.0.0.0:7070: listen EADDRINUSE: ...`. Keeps the code of a ClusterError.
 */
export function flagError(flag: string, value: string | number, err: unknown): ClusterError {
  const code = err instanceof ClusterError ? err.code : 'CONFIG';
  return new ClusterError(code, `${flag} ${value}: ${errorMessage(err)}`, { cause: err });
}
