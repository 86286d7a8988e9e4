import { constants } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { errorMessage, isAbortError, UsageError } from '../errors.js';
import { isS3Url, type Storage } from './storage.js';
import { joinUrl } from './url.js';

/**
 * Before a long run: checks that an output folder (`--model-dir`, `--checkpoint-dir`) can be written,
 * so a path through a file, a read-only folder, a missing bucket or refused credentials fail in
 * seconds, naming the flag, instead of after the training they were meant to keep.
 *
 * - Local: nothing is created. The folder, if it exists, must be a directory we may write into;
 *   otherwise its nearest existing ancestor must be one (the writer creates the rest).
 * - s3://: one empty probe object is written under the prefix and deleted again (a bucket listing
 *   permission is not needed, and the only proof of write access on S3 is a write).
 */
export async function checkWritableDir(
  storage: Storage,
  dir: string,
  flag: string,
  signal?: AbortSignal,
): Promise<void> {
  const problem = isS3Url(dir) ? await s3Problem(storage, dir, signal) : await localProblem(dir);
  if (problem !== null) throw new UsageError(`${flag} ${dir}: ${problem.reason}`, { cause: problem.cause });
}

/** A run's outputs, `--model-dir` and (when given) `--checkpoint-dir`, checked before it starts. */
export async function checkOutputDirs(
  storage: Storage,
  dirs: { modelDir: string; checkpointDir?: string },
  signal?: AbortSignal,
): Promise<void> {
  await checkWritableDir(storage, dirs.modelDir, '--model-dir', signal);
  if (dirs.checkpointDir) await checkWritableDir(storage, dirs.checkpointDir, '--checkpoint-dir', signal);
}

interface Problem {
  reason: string;
  cause?: unknown;
}

const PROBE_NAME = '.ssd-cluster-write-check';

async function s3Problem(storage: Storage, dir: string, signal?: AbortSignal): Promise<Problem | null> {
  const probe = joinUrl(dir, `${PROBE_NAME}-${process.pid}`);
  try {
    await storage.write(probe, new Uint8Array(0), { signal });
    await storage.delete(probe, { signal });
    return null;
  } catch (err) {
    if (isAbortError(err) || signal?.aborted) throw err;
    return { reason: `cannot write there (${errorMessage(err)})`, cause: err };
  }
}

async function localProblem(dir: string): Promise<Problem | null> {
  let at = path.resolve(dir);
  for (;;) {
    const st = await fs.stat(at).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return undefined; // ENOTDIR: a file above
      throw err;
    });
    if (st !== undefined) return directoryProblem(dir, at, st.isDirectory());
    const parent = path.dirname(at);
    if (parent === at) return { reason: 'no existing folder on its path' };
    at = parent;
  }
}

async function directoryProblem(dir: string, at: string, isDirectory: boolean): Promise<Problem | null> {
  const where = at === path.resolve(dir) ? '' : ` (${at})`;
  if (!isDirectory) return { reason: `a file is in the way${where}; pass a folder` };
  try {
    await fs.access(at, constants.W_OK | constants.X_OK);
    return null;
  } catch (err) {
    return { reason: `the folder${where} is not writable (${errorMessage(err)})`, cause: err };
  }
}
