import { createHash } from 'node:crypto';
import { raceAbort } from '../../shared/abort.js';
import {
  ClusterError,
  ConfigError,
  errorMessage,
  isAbortError,
  isClusterError,
} from '../../shared/errors.js';
import { type Logger, noopLogger } from '../../shared/logging.js';
import type { Storage } from '../../shared/storage/storage.js';
import type { TrainerState } from '../../worker/train/trainer-state.js';
import {
  type CheckpointMeta,
  decodeCheckpoint,
  type EncodedCheckpoint,
  encodeCheckpoint,
  STATE_FILE,
  TENSORS_FILE,
} from './format.js';
import {
  CHECKPOINT_FORMAT,
  CheckpointCorruptError,
  type CheckpointManifest,
  encodeManifest,
  MANIFEST_FILE,
  MANIFEST_VERSION,
  type ManifestFile,
  manifestEntry,
  parseManifest,
  verifyFile,
} from './manifest.js';
import { type CheckpointInfo, checkpointName, checkpointsToPrune, groupCheckpoints } from './retention.js';

/**
 * Checkpoints under `--checkpoint-dir` (a local path or s3:// prefix), one folder each:
 *   <dir>/ckpt-<globalStep, 12 digits>/{tensors.bin, state.json, manifest.json}
 *
 * Write protocol (Storage.write is atomic per object; a crash can stop it between any two steps):
 * 1. Delete the folder's manifest.json, if any: a checkpoint of the same step being replaced stops
 *    being valid before its files change.
 * 2. Write tensors.bin, then state.json, hashing the bytes as they stream out.
 * 3. Write manifest.json (sizes + sha256 of both) LAST: only now is the checkpoint valid.
 * 4. Prune to the newest `keep` complete checkpoints by globalStep (never the one just written) and
 *    delete incomplete folders older than it (crash leftovers). Each deletion removes manifest.json
 *    FIRST, so a half-deleted checkpoint is never taken for a valid one.
 * Writes from one store run one at a time, so a prune never races this store's own write. Only one
 * process should write to a directory (the coordinator picks one worker).
 *
 * Read: a checkpoint is used only if its manifest parses, lists exactly state.json and tensors.bin,
 * each file has the listed size and sha256, the data decodes, and the manifest agrees with the state.
 */
export interface CheckpointStoreOptions {
  storage: Storage;
  /** `--checkpoint-dir`. */
  dir: string;
  /** `--keep-checkpoints`: complete checkpoints to retain, >= 1. */
  keep: number;
  logger?: Logger;
}

export interface LoadedCheckpoint {
  url: string;
  state: TrainerState;
  meta: CheckpointMeta;
  manifest: CheckpointManifest;
}

export type { CheckpointInfo };

export interface CheckpointStore {
  readonly dir: string;
  /**
   * Writes `state` and returns the checkpoint URL. The arrays are read while the files are written
   * (after this returns a promise): pass a copy (Trainer.readStateInto(), copyTrainerState) if training goes on meanwhile.
   */
  write(state: TrainerState, meta: CheckpointMeta, signal?: AbortSignal): Promise<string>;
  /** Complete checkpoints (with a manifest), newest first. */
  list(signal?: AbortSignal): Promise<CheckpointInfo[]>;
  /** `--resume`: the newest checkpoint that verifies; others are skipped with a warning. */
  loadNewestValid(signal?: AbortSignal): Promise<LoadedCheckpoint | undefined>;
  /** `--resume-from`: the checkpoint folder (or its manifest.json) at `url`; CHECKPOINT_CORRUPT if unusable. */
  load(url: string, signal?: AbortSignal): Promise<LoadedCheckpoint>;
  /** Waits for writes in progress; later writes are refused. The storage is the caller's to close. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Slices handed to Storage.write, so hashing and abort checks interleave with the upload. */
const WRITE_SLICE_BYTES = 8 * 1024 * 1024;

export function createCheckpointStore(options: CheckpointStoreOptions): CheckpointStore {
  const { storage, dir, keep, logger = noopLogger } = options;
  if (!Number.isSafeInteger(keep) || keep < 1)
    throw new ConfigError([`--keep-checkpoints: must be an integer >= 1, got ${keep}`]);
  if (dir === '') throw new ConfigError(['--checkpoint-dir: required to write or find checkpoints']);
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  let queue: Promise<unknown> = Promise.resolve();
  let closed = false;

  async function scan(signal?: AbortSignal): Promise<CheckpointInfo[]> {
    const objects = await storage.list(prefix, { signal });
    return groupCheckpoints(
      prefix,
      objects.map((o) => o.url),
    );
  }

  async function write(state: TrainerState, meta: CheckpointMeta, signal?: AbortSignal) {
    signal?.throwIfAborted();
    const encoded = encodeCheckpoint(state, meta); // a bad state fails before anything is touched
    const { globalStep, epoch, position } = state.progress;
    const name = checkpointName(globalStep);
    const url = prefix + name;
    const { createdAt } = meta;
    const header = { format: CHECKPOINT_FORMAT, version: MANIFEST_VERSION, name, createdAt } as const;
    await writeCheckpointFiles(storage, url, encoded, { ...header, globalStep, epoch, position }, signal);
    logger.info('checkpoint written', { url, globalStep, epoch, position });
    await prune(name, signal);
    return url;
  }

  /** Housekeeping: a failure is logged, not thrown (the checkpoint itself is complete); aborts propagate. */
  async function prune(written: string, signal?: AbortSignal): Promise<void> {
    try {
      for (const old of checkpointsToPrune(await scan(signal), keep, written)) {
        const manifestUrl = `${old.url}/${MANIFEST_FILE}`;
        await storage.delete(manifestUrl, { signal }); // first: from here on it is not valid
        const rest = old.objectUrls.filter((u) => u !== manifestUrl);
        // On local disk the emptied ckpt-* folder goes too (its prefix vanishes on S3 by itself).
        await Promise.all(rest.map((u) => storage.delete(u, { signal, removeEmptyFolder: true })));
        logger.info('checkpoint deleted', {
          url: old.url,
          globalStep: old.globalStep,
          complete: old.complete,
        });
      }
    } catch (err) {
      if (isAbortError(err) || signal?.aborted) throw err;
      logger.warn('checkpoint prune failed', { dir, error: errorMessage(err) });
    }
  }

  async function loadNewestValid(signal?: AbortSignal): Promise<LoadedCheckpoint | undefined> {
    for (const candidate of await scan(signal)) {
      if (!candidate.complete) {
        logger.warn('skipping checkpoint', {
          url: candidate.url,
          reason: `no ${MANIFEST_FILE} (incomplete write)`,
        });
        continue;
      }
      try {
        return await loadCheckpoint(storage, candidate.url, signal);
      } catch (err) {
        if (!isClusterError(err, 'CHECKPOINT_CORRUPT')) throw err;
        logger.warn('skipping checkpoint', { url: candidate.url, reason: err.message });
      }
    }
    return undefined;
  }

  const store: CheckpointStore = {
    dir,
    write(state, meta, signal) {
      if (closed) return Promise.reject(new ClusterError('INTERNAL', `checkpoint store ${dir}: closed`));
      // The next write waits for this one to finish, whatever its outcome; an abort releases the
      // caller at once, and the turn (when it comes) ends at its first check.
      const turn = queue.then(() => write(state, meta, signal));
      queue = turn.catch(() => {});
      return raceAbort(turn, signal);
    },
    list: async (signal) => (await scan(signal)).filter((c) => c.complete),
    loadNewestValid,
    load: (url, signal) => loadCheckpoint(storage, url, signal),
    async close() {
      closed = true;
      await queue;
    },
    [Symbol.asyncDispose]: () => store.close(),
  };
  return store;
}

/**
 * Steps 1-3 of the write protocol into the folder `url`; the manifest is `header` plus the sizes and
 * digests of the files as written.
 */
async function writeCheckpointFiles(
  storage: Storage,
  url: string,
  encoded: EncodedCheckpoint,
  header: Omit<CheckpointManifest, 'files'>,
  signal?: AbortSignal,
): Promise<void> {
  await storage.delete(`${url}/${MANIFEST_FILE}`, { signal });
  const tensors = await writeHashed(storage, `${url}/${TENSORS_FILE}`, encoded.tensorChunks, signal);
  const state = await writeHashed(storage, `${url}/${STATE_FILE}`, [encoded.stateJson], signal);
  const manifest: CheckpointManifest = { ...header, files: [tensors, state] };
  await storage.write(`${url}/${MANIFEST_FILE}`, encodeManifest(manifest), {
    signal,
    contentType: 'application/json',
  });
}

/** Streams `chunks` to `url` in slices, hashing each slice on its way out. */
async function writeHashed(
  storage: Storage,
  url: string,
  chunks: Uint8Array[],
  signal?: AbortSignal,
): Promise<ManifestFile> {
  const hash = createHash('sha256');
  let sizeBytes = 0;
  async function* body() {
    for (const chunk of chunks) {
      for (let at = 0; at < chunk.length; at += WRITE_SLICE_BYTES) {
        const slice = chunk.subarray(at, at + WRITE_SLICE_BYTES);
        hash.update(slice);
        sizeBytes += slice.length;
        yield slice;
      }
    }
  }
  await storage.write(url, body(), { signal });
  return { path: url.slice(url.lastIndexOf('/') + 1), sizeBytes, sha256: hash.digest('hex') };
}

/**
 * Reads and verifies one checkpoint (a folder URL, with or without a trailing '/', or its
 * manifest.json), wherever it lives: `--resume-from` may name one outside `--checkpoint-dir`.
 * Anything unusable is CHECKPOINT_CORRUPT naming it; storage failures other than a missing file and
 * aborts propagate as they are.
 */
export async function loadCheckpoint(
  storage: Storage,
  input: string,
  signal?: AbortSignal,
): Promise<LoadedCheckpoint> {
  const url = checkpointUrlOf(input);
  const manifest = parseManifest(url, await readPart(storage, url, MANIFEST_FILE, signal));
  if (manifest.files.length !== 2)
    throw new CheckpointCorruptError(
      url,
      `${MANIFEST_FILE}: files: expected ${STATE_FILE} and ${TENSORS_FILE}`,
    );
  const stateEntry = manifestEntry(url, manifest, STATE_FILE);
  const tensorsEntry = manifestEntry(url, manifest, TENSORS_FILE);
  const stateBytes = await readPart(storage, url, STATE_FILE, signal);
  verifyFile(url, stateEntry, stateBytes);
  const tensorBytes = await readPart(storage, url, TENSORS_FILE, signal);
  verifyFile(url, tensorsEntry, tensorBytes);
  const { state, meta } = decodeCheckpoint(url, stateBytes, tensorBytes);
  checkAgreement(url, manifest, state, meta);
  return { url, state, meta, manifest };
}

async function readPart(storage: Storage, checkpoint: string, file: string, signal?: AbortSignal) {
  try {
    return await storage.read(`${checkpoint}/${file}`, { signal });
  } catch (err) {
    if (!isClusterError(err, 'NOT_FOUND')) throw err;
    throw new CheckpointCorruptError(checkpoint, `${file}: missing`, { cause: err });
  }
}

/** A checkpoint folder from what a user may pass: the folder, with a trailing '/', or its manifest.json. */
function checkpointUrlOf(input: string): string {
  const trimmed = input.replace(/\/+$/, '');
  const suffix = `/${MANIFEST_FILE}`;
  return trimmed.endsWith(suffix) ? trimmed.slice(0, -suffix.length) : trimmed;
}

/** The manifest's summary must describe the state it guards. */
function checkAgreement(
  url: string,
  manifest: CheckpointManifest,
  state: TrainerState,
  meta: CheckpointMeta,
) {
  const { progress } = state;
  for (const key of ['globalStep', 'epoch', 'position'] as const) {
    if (manifest[key] !== progress[key])
      throw new CheckpointCorruptError(
        url,
        `${MANIFEST_FILE}: ${key} ${manifest[key]} but ${STATE_FILE} has ${progress[key]}`,
      );
  }
  if (manifest.createdAt !== meta.createdAt)
    throw new CheckpointCorruptError(url, `${MANIFEST_FILE}: createdAt differs from ${STATE_FILE}'s meta`);
}
