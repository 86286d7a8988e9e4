import * as tf from '@tensorflow/tfjs-core';
import { ClusterError, ConfigError } from '../../shared/errors.js';
import type { Storage } from '../../shared/storage/storage.js';
import { dirnameUrl, joinUrl } from '../../shared/storage/url.js';
import type { BaseNetwork } from './anchors.js';
import type { SsdModel } from './ssd.js';

/**
 * Model weights as a TensorFlow.js weights manifest, through the Storage interface (paths or s3://):
 *   <dir>/model.json  {format, generatedBy, convertedBy, modelTopology: {ssd: {...}}, weightsManifest: [{paths, weights}]}
 *   <dir>/group1-shard1ofN.bin ...  the float32 values of every variable, in the model's order,
 *                                   concatenated and cut into shards of `shardSizeBytes` (tfjs default 4 MiB)
 * so tf.io.decodeWeights (and tfjs-converter tooling) reads it. Writing order: shards first, model.json
 * last, so a reader that finds a manifest finds its shards.
 *
 * `--pretrained-base` takes the same format: any manifest whose names are ours (`conv1_1/kernel` as HWIO
 * [kh, kw, in, out], `conv1_1/bias`, `bn0/moving_mean`, ...), e.g. converted from MXNet/Gluon ImageNet
 * weights offline. Nothing is ever downloaded at run time.
 */
export const WEIGHTS_FORMAT = 'ssd-cluster-weights';
export const DEFAULT_SHARD_BYTES = 4 * 1024 * 1024;

export interface WeightsFile {
  format: string;
  generatedBy: string;
  convertedBy: string | null;
  modelTopology: { ssd?: { baseNetwork: BaseNetwork; imageShape: number; numClasses: number } } | null;
  weightsManifest: tf.io.WeightsManifestConfig;
}

/** `dir` or `dir/model.json` (any URL ending in .json names the manifest itself). */
export function manifestUrlOf(url: string): string {
  return url.endsWith('.json') ? url : joinUrl(url, 'model.json');
}

export async function saveWeights(
  model: SsdModel,
  url: string,
  storage: Storage,
  options: { signal?: AbortSignal; shardSizeBytes?: number } = {},
): Promise<{ manifestUrl: string; shardUrls: string[]; sizeBytes: number }> {
  const { signal, shardSizeBytes = DEFAULT_SHARD_BYTES } = options;
  const manifestUrl = manifestUrlOf(url);
  const weights: tf.io.WeightsManifestEntry[] = [];
  const chunks: Uint8Array[] = [];
  for (const [name, variable] of model.variables) {
    const values = (await variable.data()) as Float32Array;
    chunks.push(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
    weights.push({ name, shape: [...variable.shape], dtype: 'float32' });
  }
  const whole = Buffer.concat(chunks);
  const count = Math.max(1, Math.ceil(whole.length / shardSizeBytes));
  const paths = Array.from({ length: count }, (_, i) => `group1-shard${i + 1}of${count}.bin`);
  const shardUrls = paths.map((p) => joinUrl(dirnameUrl(manifestUrl), p));
  for (const [i, shardUrl] of shardUrls.entries()) {
    const shard = whole.subarray(i * shardSizeBytes, (i + 1) * shardSizeBytes);
    await storage.write(shardUrl, shard, { signal, contentType: 'application/octet-stream' });
  }
  const { baseNetwork, imageShape, numClasses } = model.config;
  const file: WeightsFile = {
    format: WEIGHTS_FORMAT,
    generatedBy: `ssd-cluster (tfjs-core ${tf.version_core})`,
    convertedBy: null,
    modelTopology: { ssd: { baseNetwork, imageShape, numClasses } },
    weightsManifest: [{ paths, weights }],
  };
  const json = Buffer.from(`${JSON.stringify(file)}\n`);
  await storage.write(manifestUrl, json, { signal, contentType: 'application/json' });
  return { manifestUrl, shardUrls, sizeBytes: whole.length };
}

const BYTES_PER_ELEMENT: Record<string, number> = {
  float32: 4,
  int32: 4,
  bool: 1,
  uint8: 1,
  uint16: 2,
  float16: 2,
};

function entryBytes(manifestUrl: string, where: string, entry: tf.io.WeightsManifestEntry): number {
  const dtype = entry.quantization?.dtype ?? entry.dtype;
  const perElement = BYTES_PER_ELEMENT[dtype];
  if (perElement === undefined)
    throw new ClusterError('MODEL', `${manifestUrl}: ${where}.dtype '${dtype}' is not supported`);
  return perElement * entry.shape.reduce((n, d) => n * d, 1);
}

const isStringArray = (v: unknown): v is string[] =>
  Array.isArray(v) && v.every((s) => typeof s === 'string');
const isShape = (v: unknown): v is number[] =>
  Array.isArray(v) && v.every((d) => Number.isInteger(d) && (d as number) >= 0);

/** Parses and checks model.json; errors name the URL and the field (`weightsManifest[0].weights[3].shape`). */
export function parseWeightsFile(manifestUrl: string, text: string): WeightsFile {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ClusterError('MODEL', `${manifestUrl}: not a JSON weights manifest`, { cause: err });
  }
  const groups = (raw as { weightsManifest?: unknown } | null)?.weightsManifest;
  if (!Array.isArray(groups))
    throw new ClusterError('MODEL', `${manifestUrl}: weightsManifest must be an array`);
  groups.forEach((group: { paths?: unknown; weights?: unknown }, g) => {
    const where = `weightsManifest[${g}]`;
    if (!isStringArray(group?.paths))
      throw new ClusterError('MODEL', `${manifestUrl}: ${where}.paths must be strings`);
    if (!Array.isArray(group.weights))
      throw new ClusterError('MODEL', `${manifestUrl}: ${where}.weights must be an array`);
    group.weights.forEach((w: { name?: unknown; shape?: unknown }, i) => {
      if (typeof w?.name !== 'string' || !isShape(w.shape)) {
        throw new ClusterError(
          'MODEL',
          `${manifestUrl}: ${where}.weights[${i}] needs a string name and an integer shape`,
        );
      }
    });
  });
  return raw as WeightsFile;
}

function toArrayBuffer(buf: Buffer): ArrayBuffer {
  return buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
}

/** Reads a manifest and its shards into tensors (the caller disposes them). */
export async function readWeights(
  url: string,
  storage: Storage,
  options: { signal?: AbortSignal } = {},
): Promise<{ manifestUrl: string; file: WeightsFile; tensors: tf.NamedTensorMap }> {
  const manifestUrl = manifestUrlOf(url);
  const file = parseWeightsFile(manifestUrl, (await storage.read(manifestUrl, options)).toString('utf8'));
  const tensors: tf.NamedTensorMap = {};
  try {
    for (const [g, group] of file.weightsManifest.entries()) {
      const shardUrls = group.paths.map((p) => joinUrl(dirnameUrl(manifestUrl), p));
      const shards: Buffer[] = [];
      for (const shardUrl of shardUrls) shards.push(await storage.read(shardUrl, options));
      const expected = group.weights.reduce(
        (n, w, i) => n + entryBytes(manifestUrl, `weightsManifest[${g}].weights[${i}]`, w),
        0,
      );
      const actual = shards.reduce((n, s) => n + s.length, 0);
      if (actual !== expected) {
        throw new ClusterError(
          'MODEL',
          `${manifestUrl}: weightsManifest[${g}] lists ${expected} bytes of weights but its shards (${shardUrls.join(', ')}) hold ${actual}`,
        );
      }
      const decoded = tf.io.decodeWeights(shards.map(toArrayBuffer), group.weights);
      for (const [name, tensor] of Object.entries(decoded)) {
        if (name in tensors)
          throw new ClusterError('MODEL', `${manifestUrl}: weight '${name}' appears twice`);
        tensors[name] = tensor;
      }
    }
  } catch (err) {
    tf.dispose(tensors);
    throw err;
  }
  return { manifestUrl, file, tensors };
}

/** "a, b, c and 4 more" */
function listNames(names: readonly string[], max = 6): string {
  const shown = names.slice(0, max).join(', ');
  return names.length > max ? `${shown} and ${names.length - max} more` : shown;
}

interface Mismatch {
  name: string;
  file: number[];
  model: number[];
}

function compareNames(model: SsdModel, tensors: tf.NamedTensorMap) {
  const matched: string[] = [];
  const mismatched: Mismatch[] = [];
  for (const [name, v] of model.variables) {
    const t = tensors[name];
    if (!t) continue;
    if (t.shape.length === v.shape.length && t.shape.every((d, i) => d === v.shape[i])) matched.push(name);
    else mismatched.push({ name, file: [...t.shape], model: [...v.shape] });
  }
  const unexpected = Object.keys(tensors).filter((n) => !model.variables.has(n));
  return { matched, mismatched, unexpected };
}

function describeMismatches(list: readonly Mismatch[]): string {
  return listNames(
    list.map((m) => `${m.name} [${m.file}] in the file, [${m.model}] in the model`),
    3,
  );
}

function assign(model: SsdModel, tensors: tf.NamedTensorMap, names: readonly string[]): void {
  tf.tidy(() => {
    for (const name of names) {
      const t = tensors[name]!;
      model.variables.get(name)!.assign(t.dtype === 'float32' ? t : tf.cast(t, 'float32'));
    }
  });
}

/** Loads every variable of the model (a checkpoint or a trained model); the names and shapes must match exactly. */
export async function loadWeights(
  model: SsdModel,
  url: string,
  storage: Storage,
  options: { signal?: AbortSignal } = {},
): Promise<void> {
  const { manifestUrl, file, tensors } = await readWeights(url, storage, options);
  try {
    const { matched, mismatched, unexpected } = compareNames(model, tensors);
    const missing = [...model.variables.keys()].filter((n) => !(n in tensors));
    if (missing.length + mismatched.length + unexpected.length > 0) {
      const problems = [
        missing.length ? `missing ${missing.length}: ${listNames(missing)}` : '',
        unexpected.length ? `unexpected ${unexpected.length}: ${listNames(unexpected)}` : '',
        mismatched.length ? `shape mismatches: ${describeMismatches(mismatched)}` : '',
      ].filter(Boolean);
      const { baseNetwork, imageShape, numClasses } = model.config;
      const holds = file.modelTopology?.ssd
        ? ` (the file says ${JSON.stringify(file.modelTopology.ssd)})`
        : '';
      throw new ClusterError(
        'MODEL',
        `${manifestUrl} does not fit a ${baseNetwork} SSD at ${imageShape} with ${numClasses} classes${holds}: ${problems.join('; ')}`,
      );
    }
    assign(model, tensors, matched);
  } finally {
    tf.dispose(tensors);
  }
}

export interface BaseWeightsReport {
  manifestUrl: string;
  /** Variables set from the file (the whole base, plus any extra/head layer of the same name and shape). */
  loaded: string[];
  /** Non-base variables present in the file with another shape (e.g. heads for another class count): left as initialised. */
  skipped: Mismatch[];
  /** Names in the file the model does not have (e.g. an ImageNet classifier): ignored. */
  unexpected: string[];
}

/**
 * `--pretrained-base`: sets the base network from a manifest. Every base variable must be there with
 * its shape (else a MODEL error listing what is missing or mismatched, and nothing is changed); names
 * the model lacks are ignored and reported.
 */
export async function loadBaseWeights(
  model: SsdModel,
  url: string,
  storage: Storage,
  options: { signal?: AbortSignal } = {},
): Promise<BaseWeightsReport> {
  const { manifestUrl, tensors } = await readWeights(url, storage, options);
  try {
    const { matched, mismatched, unexpected } = compareNames(model, tensors);
    const baseParams = model.params.filter((p) => p.part === 'base').map((p) => p.name);
    const isBase = new Set(baseParams);
    const missing = baseParams.filter((n) => !(n in tensors));
    const baseMismatches = mismatched.filter((m) => isBase.has(m.name));
    if (missing.length > 0 || baseMismatches.length > 0) {
      const problems = [
        missing.length
          ? `missing ${missing.length} of ${baseParams.length} base weights: ${listNames(missing)}`
          : '',
        baseMismatches.length ? `shape mismatches: ${describeMismatches(baseMismatches)}` : '',
      ].filter(Boolean);
      throw new ClusterError(
        'MODEL',
        `${manifestUrl} is not a ${model.config.baseNetwork} base for this model: ${problems.join('; ')} (names look like ${baseParams[0]}, kernels HWIO)`,
      );
    }
    assign(model, tensors, matched);
    return { manifestUrl, loaded: matched, skipped: mismatched, unexpected };
  } finally {
    tf.dispose(tensors);
  }
}

/**
 * Where the pretrained base comes from, decided from the SageMaker hyperparameters and --pretrained-base:
 * the URL to load, or undefined to start from the seeded initialisation. `tiny` has no ImageNet weights,
 * so use_pretrained_model=1 without a URL trains it from scratch.
 */
export function requirePretrainedBase(
  hp: { use_pretrained_model: number | boolean | string; base_network: BaseNetwork },
  url: string | undefined,
): string | undefined {
  const wanted =
    hp.use_pretrained_model === 1 || hp.use_pretrained_model === true || hp.use_pretrained_model === '1';
  if (!wanted) {
    // compileHyperparameters reads use_pretrained_model as 0 for tiny whatever the user set: say so.
    if (url !== undefined && hp.base_network === 'tiny') {
      throw new ConfigError([
        `--pretrained-base ${url}: base_network 'tiny' has no pretrained base (use_pretrained_model does not apply to it); drop --pretrained-base`,
      ]);
    }
    if (url !== undefined) {
      throw new ConfigError([
        `--pretrained-base ${url} was given but use_pretrained_model=0; drop one of them (use_pretrained_model=1 loads it)`,
      ]);
    }
    return undefined;
  }
  if (url === undefined && hp.base_network !== 'tiny') {
    throw new ConfigError([
      `use_pretrained_model=1 needs --pretrained-base URL (a tfjs weights manifest of the ${hp.base_network} base); ` +
        'no --pretrained-base was given and nothing is downloaded at run time; pass --use-pretrained-model 0 to train from scratch',
    ]);
  }
  return url;
}
