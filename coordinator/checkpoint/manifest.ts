import { createHash } from 'node:crypto';
import {
  AnnotationError,
  at,
  type FieldPath,
  readArray,
  readInteger,
  readObject,
  readString,
} from '../../shared/annotations/fields.js';
import { ClusterError } from '../../shared/errors.js';

/**
 * manifest.json: the last file of a checkpoint, written only after every other file is complete, so its
 * presence is what makes a checkpoint valid. It lists each file with its size and sha256; a reader
 * checks both before decoding anything. Pure: bytes in, plain data out.
 *
 *   { "format": "ssd-cluster-checkpoint", "version": 1, "name": "ckpt-000000000120",
 *     "globalStep": 120, "epoch": 1, "position": 64, "createdAt": "2025-01-01T00:00:00.000Z",
 *     "files": [{ "path": "tensors.bin", "sizeBytes": 4096, "sha256": "9f86d0…" }, …] }
 */
export const CHECKPOINT_FORMAT = 'ssd-cluster-checkpoint';
export const MANIFEST_VERSION = 1;
export const MANIFEST_FILE = 'manifest.json';

export interface ManifestFile {
  /** Relative to the checkpoint folder, e.g. 'tensors.bin'. */
  path: string;
  sizeBytes: number;
  /** Lower-case hex. */
  sha256: string;
}

export interface CheckpointManifest {
  format: typeof CHECKPOINT_FORMAT;
  version: typeof MANIFEST_VERSION;
  /** The checkpoint folder's name, `ckpt-<globalStep padded>`. */
  name: string;
  globalStep: number;
  epoch: number;
  position: number;
  /** ISO-8601, from the caller's clock (the snapshot's meta.createdAt). */
  createdAt: string;
  files: ManifestFile[];
}

/** A checkpoint that cannot be used: names the checkpoint (URL) and the file or field at fault. */
export class CheckpointCorruptError extends ClusterError {
  readonly checkpoint: string;
  constructor(checkpoint: string, problem: string, options?: { cause?: unknown }) {
    super('CHECKPOINT_CORRUPT', `checkpoint ${checkpoint}: ${problem}`, options);
    this.name = 'CheckpointCorruptError';
    this.checkpoint = checkpoint;
  }
}

/**
 * Runs a JSON field reader (shared/annotations/fields.ts) and turns its complaint into a
 * CheckpointCorruptError naming the checkpoint, the file and the field.
 */
export function readCheckpointJson<T>(checkpoint: string, read: () => T): T {
  try {
    return read();
  } catch (err) {
    if (!(err instanceof AnnotationError)) throw err;
    throw new CheckpointCorruptError(checkpoint, err.message, { cause: err }); // 'file: field: problem'
  }
}

/** Parses JSON text from a checkpoint file; invalid UTF-8 or JSON (a truncated file) is corrupt. */
export function parseCheckpointJson(checkpoint: string, file: string, bytes: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (err) {
    throw new CheckpointCorruptError(checkpoint, `${file}: not valid JSON (${(err as Error).message})`, {
      cause: err,
    });
  }
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export function encodeManifest(manifest: CheckpointManifest): Uint8Array {
  return new TextEncoder().encode(`${JSON.stringify(manifest, null, 2)}\n`);
}

/** Validates every field; anything unexpected is a CheckpointCorruptError naming `checkpoint`. */
export function parseManifest(checkpoint: string, bytes: Uint8Array): CheckpointManifest {
  const json = parseCheckpointJson(checkpoint, MANIFEST_FILE, bytes);
  return readCheckpointJson(checkpoint, () => readManifest(json, { source: MANIFEST_FILE, field: '' }));
}

function readManifest(value: unknown, path: FieldPath): CheckpointManifest {
  const o = readObject(value, path);
  if (o.format !== CHECKPOINT_FORMAT) {
    fieldProblem(at(path, 'format'), `expected '${CHECKPOINT_FORMAT}', got ${JSON.stringify(o.format)}`);
  }
  if (o.version !== MANIFEST_VERSION) {
    fieldProblem(at(path, 'version'), `unsupported version ${JSON.stringify(o.version)} (expected 1)`);
  }
  const createdAt = readIsoTime(o.createdAt, at(path, 'createdAt'));
  const files = readArray(o.files, at(path, 'files')).map((f, i) => readFile(f, at(at(path, 'files'), i)));
  const seen = new Set<string>();
  for (const [i, f] of files.entries()) {
    if (seen.has(f.path)) fieldProblem(at(at(path, 'files'), i), `duplicate path '${f.path}'`);
    seen.add(f.path);
  }
  return {
    format: CHECKPOINT_FORMAT,
    version: MANIFEST_VERSION,
    name: readString(o.name, at(path, 'name')),
    globalStep: readInteger(o.globalStep, at(path, 'globalStep'), 0),
    epoch: readInteger(o.epoch, at(path, 'epoch'), 0),
    position: readInteger(o.position, at(path, 'position'), 0),
    createdAt,
    files,
  };
}

function readFile(value: unknown, path: FieldPath): ManifestFile {
  const o = readObject(value, path);
  const file = readString(o.path, at(path, 'path'));
  if (file.includes('/') || file === '.' || file === '..') {
    fieldProblem(at(path, 'path'), `'${file}' is not a plain file name`);
  }
  const sha256 = readString(o.sha256, at(path, 'sha256'));
  if (!/^[0-9a-f]{64}$/.test(sha256)) fieldProblem(at(path, 'sha256'), 'expected 64 lower-case hex digits');
  return { path: file, sizeBytes: readInteger(o.sizeBytes, at(path, 'sizeBytes'), 0), sha256 };
}

export function readIsoTime(value: unknown, path: FieldPath): string {
  const time = readString(value, path);
  if (Number.isNaN(Date.parse(time))) fieldProblem(path, `'${time}' is not an ISO-8601 time`);
  return time;
}

/** Throws the field readers' error for `path` (turned into CHECKPOINT_CORRUPT by readCheckpointJson). */
export function fieldProblem(path: FieldPath, problem: string): never {
  throw new AnnotationError(path.source, path.field || '(root)', problem);
}

/** The manifest's entry for `file`; a manifest that does not list it is corrupt. */
export function manifestEntry(checkpoint: string, manifest: CheckpointManifest, file: string): ManifestFile {
  const entry = manifest.files.find((f) => f.path === file);
  if (!entry) throw new CheckpointCorruptError(checkpoint, `${MANIFEST_FILE}: does not list '${file}'`);
  return entry;
}

/** Checks a file's bytes against its manifest entry: size first (truncation), then sha256. */
export function verifyFile(checkpoint: string, entry: ManifestFile, bytes: Uint8Array): void {
  if (bytes.length !== entry.sizeBytes) {
    throw new CheckpointCorruptError(
      checkpoint,
      `${entry.path}: is ${bytes.length} bytes, the manifest says ${entry.sizeBytes} (truncated or partial)`,
    );
  }
  const actual = sha256Hex(bytes);
  if (actual !== entry.sha256) {
    throw new CheckpointCorruptError(
      checkpoint,
      `${entry.path}: sha256 ${actual} does not match the manifest's ${entry.sha256}`,
    );
  }
}
