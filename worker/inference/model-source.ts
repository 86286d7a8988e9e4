/**
 * Where `--model` points, made into one directory to load from. Accepted (a path or s3:// each):
 *  - a model directory, as `train --model-dir` writes it (model.json + shards, hyperparams.json,
 *    classes.json), or the model.json in it;
 *  - a model.tar.gz (or .tgz) of those files, as `--model-archive` or SageMaker's output path holds it;
 *  - a directory that holds only model.tar.gz.
 * An archive is gunzipped and unpacked into memory, never onto disk; its files then read as
 * `<archive url>/<name>`, so messages name the archive. The directory is the one holding model.json
 * (the archive's root, or the shallowest folder with one).
 */
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import { ClusterError, errorMessage } from '../../shared/errors.js';
import { createMemoryStorage } from '../../shared/storage/memory.js';
import type { Storage } from '../../shared/storage/storage.js';
import { basenameUrl, dirnameUrl, joinUrl } from '../../shared/storage/url.js';
import { ARCHIVE_NAME } from '../train/model-artifact.js';
import { readTar } from './tar-reader.js';

export const MANIFEST_NAME = 'model.json';

export interface ModelSource {
  /** What --model said. */
  url: string;
  /** The folder with model.json, hyperparams.json and classes.json, read through `storage`. */
  dir: string;
  storage: Storage;
  /** 'directory' or 'archive' (unpacked in memory). */
  kind: 'directory' | 'archive';
  /** Frees an unpacked archive; idempotent. The caller's storage is left open. */
  close(): Promise<void>;
}

const gunzipAsync = promisify(gunzip);

export const isArchiveUrl = (url: string) => /\.(tar\.gz|tgz)$/i.test(url);

async function exists(storage: Storage, url: string, signal?: AbortSignal): Promise<boolean> {
  return (await storage.stat(url, { signal })) !== undefined;
}

/** Resolves --model to a directory (see the header); NOT_FOUND naming what was looked for. */
export async function openModelSource(
  url: string,
  options: { storage: Storage; signal?: AbortSignal },
): Promise<ModelSource> {
  const { storage, signal } = options;
  if (isArchiveUrl(url)) return unpackArchive(url, storage, signal);
  const dir = basenameUrl(url) === MANIFEST_NAME ? dirnameUrl(url) : url;
  if (await exists(storage, joinUrl(dir, MANIFEST_NAME), signal)) {
    return { url, dir, storage, kind: 'directory', close: async () => {} };
  }
  const archive = joinUrl(dir, ARCHIVE_NAME);
  if (await exists(storage, archive, signal)) return unpackArchive(archive, storage, signal);
  throw new ClusterError(
    'NOT_FOUND',
    `--model ${url}: no ${MANIFEST_NAME} or ${ARCHIVE_NAME} there (expected a directory written by ` +
      `'ssd-cluster train --model-dir', or a model.tar.gz)`,
  );
}

async function unpackArchive(url: string, storage: Storage, signal?: AbortSignal): Promise<ModelSource> {
  const compressed = await storage.read(url, { signal });
  let tar: Buffer;
  try {
    tar = await gunzipAsync(compressed);
  } catch (err) {
    throw new ClusterError('MODEL', `${url}: not a gzip file (${errorMessage(err)})`, { cause: err });
  }
  signal?.throwIfAborted();
  const files = readTar(tar, url);
  const manifests = files
    .filter((f) => f.name === MANIFEST_NAME || f.name.endsWith(`/${MANIFEST_NAME}`))
    .sort((a, b) => a.name.split('/').length - b.name.split('/').length);
  if (manifests.length === 0) {
    const names = files.map((f) => f.name).slice(0, 8);
    throw new ClusterError(
      'MODEL',
      `${url}: the archive has no ${MANIFEST_NAME} (it holds ${names.length ? names.join(', ') : 'no files'})`,
    );
  }
  const root = manifests[0]!.name.slice(0, -MANIFEST_NAME.length);
  const memory = createMemoryStorage();
  for (const file of files) {
    if (file.name.startsWith(root)) await memory.write(joinUrl(url, file.name.slice(root.length)), file.data);
  }
  return { url, dir: url, storage: memory, kind: 'archive', close: () => memory.close() };
}
