/**
 * The trained model in --model-dir (a path or s3://), SageMaker-style:
 *   model.json + group1-shard*of*.bin   tfjs weights manifest (worker/model/weights.ts), loadable with tf.io
 *   hyperparams.json                    flat object, every value a string (toSageMakerHyperparams)
 *   classes.json                        class names, copied from the data set when it has one
 *   model.tar.gz                        with --model-archive: the files above in one gzipped ustar
 * Written in that order, the archive last, so a reader that finds model.tar.gz finds everything.
 */
import { gzipSync } from 'node:zlib';
import { toSageMakerHyperparams } from '../../shared/config/compile.js';
import type { Hyperparameters } from '../../shared/config/hyperparameters.js';
import { ClusterError, ConfigError } from '../../shared/errors.js';
import type { Storage } from '../../shared/storage/storage.js';
import { basenameUrl, dirnameUrl, joinUrl } from '../../shared/storage/url.js';
import type { SsdModel } from '../model/ssd.js';
import { saveWeights } from '../model/weights.js';
import { createTar } from './tar.js';

export const ARCHIVE_NAME = 'model.tar.gz';

export interface ModelArtifactOptions {
  model: SsdModel;
  hp: Readonly<Hyperparameters>;
  modelDir: string;
  storage: Storage;
  /** Class names for classes.json; none written when undefined. */
  classes?: readonly string[];
  archive?: boolean;
  /** mtime of the archive's entries, seconds since the epoch (default 0). */
  mtime?: number;
  signal?: AbortSignal;
}

export interface ModelArtifact {
  /** URLs of the files written, archive excluded, in writing order. */
  files: string[];
  archive?: string;
}

const json = (value: unknown) => Buffer.from(`${JSON.stringify(value, null, 2)}\n`);

export async function writeModelArtifact(options: ModelArtifactOptions): Promise<ModelArtifact> {
  const { storage, modelDir, signal } = options;
  const saved = await saveWeights(options.model, modelDir, storage, { signal });
  const files = [...saved.shardUrls, saved.manifestUrl];
  const extra: [string, Buffer][] = [['hyperparams.json', json(toSageMakerHyperparams(options.hp))]];
  if (options.classes) extra.push(['classes.json', json(options.classes)]);
  for (const [name, body] of extra) {
    const url = joinUrl(modelDir, name);
    await storage.write(url, body, { signal, contentType: 'application/json' });
    files.push(url);
  }
  if (!options.archive) return { files };
  const entries = [];
  for (const url of files) {
    entries.push({ name: basenameUrl(url), data: await storage.read(url, { signal }), mtime: options.mtime });
  }
  const archive = joinUrl(modelDir, ARCHIVE_NAME);
  await storage.write(archive, gzipSync(createTar(entries)), { signal, contentType: 'application/gzip' });
  return { files, archive };
}

/** Where a data set's classes.json may live: beside a .rec, or in or beside an image folder. */
export function classesCandidates(trainUrl: string): string[] {
  if (trainUrl.endsWith('.rec')) return [joinUrl(dirnameUrl(trainUrl), 'classes.json')];
  return [joinUrl(trainUrl, 'classes.json'), joinUrl(dirnameUrl(trainUrl), 'classes.json')];
}

/**
 * The class names of the train data set, from the first classes.json found (a JSON array of
 * strings, one per class), or undefined when there is none. Its length must be num_classes.
 */
export async function readDatasetClasses(
  trainUrl: string,
  numClasses: number,
  storage: Storage,
  signal?: AbortSignal,
): Promise<string[] | undefined> {
  for (const url of classesCandidates(trainUrl)) {
    if ((await storage.stat(url, { signal })) === undefined) continue;
    let names: unknown;
    try {
      names = JSON.parse((await storage.read(url, { signal })).toString('utf8'));
    } catch (err) {
      throw new ClusterError('ANNOTATION', `${url}: not valid JSON`, { cause: err });
    }
    if (!Array.isArray(names) || !names.every((n) => typeof n === 'string')) {
      throw new ClusterError('ANNOTATION', `${url}: must be a JSON array of class names (strings)`);
    }
    if (names.length !== numClasses) {
      throw new ConfigError([
        `num_classes: is ${numClasses} but ${url} names ${names.length} classes; set num_classes to ${names.length}`,
      ]);
    }
    return names;
  }
  return undefined;
}
