/**
 * A trained model from its artifact directory (model-source.ts resolves --model to one):
 *   hyperparams.json  SageMaker string values, compiled back with compileHyperparameters; they give
 *                     the network (base_network, image_shape, num_classes) and NMS (nms_threshold, nms_topk)
 *   model.json        its modelTopology.ssd must agree with hyperparams.json; weights via loadWeights
 *   classes.json      optional: one name per class
 * Every problem is a MODEL error naming the file and the field.
 */
import { compileHyperparameters } from '../../shared/config/compile.js';
import type { Hyperparameters } from '../../shared/config/hyperparameters.js';
import { ClusterError, ConfigError, errorMessage } from '../../shared/errors.js';
import type { Storage } from '../../shared/storage/storage.js';
import { joinUrl } from '../../shared/storage/url.js';
import { createSsdModel, type SsdModel } from '../model/ssd.js';
import { loadWeights, parseWeightsFile } from '../model/weights.js';
import { MANIFEST_NAME } from './model-source.js';

export const HYPERPARAMS_NAME = 'hyperparams.json';
export const CLASSES_NAME = 'classes.json';

export interface LoadedModel {
  model: SsdModel;
  hp: Readonly<Hyperparameters>;
  /** Class names by id, or undefined when the artifact has no classes.json. */
  classes: readonly string[] | undefined;
}

async function readJson(storage: Storage, url: string, signal?: AbortSignal): Promise<unknown> {
  const text = (await storage.read(url, { signal })).toString('utf8');
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ClusterError('MODEL', `${url}: not valid JSON (${errorMessage(err)})`, { cause: err });
  }
}

/** hyperparams.json compiled; a bad or missing key is a MODEL error naming the file. */
export async function readHyperparams(
  storage: Storage,
  dir: string,
  signal?: AbortSignal,
): Promise<Readonly<Hyperparameters>> {
  const url = joinUrl(dir, HYPERPARAMS_NAME);
  const raw = await readJson(storage, url, signal);
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ClusterError('MODEL', `${url}: must be a JSON object of hyperparameters`);
  }
  try {
    return compileHyperparameters(raw as Record<string, unknown>);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    throw new ClusterError('MODEL', `${url}: ${err.problems.join('; ')}`, { cause: err });
  }
}

/** classes.json when present: an array of num_classes strings. */
export async function readClasses(
  storage: Storage,
  dir: string,
  numClasses: number,
  signal?: AbortSignal,
): Promise<string[] | undefined> {
  const url = joinUrl(dir, CLASSES_NAME);
  if ((await storage.stat(url, { signal })) === undefined) return undefined;
  const names = await readJson(storage, url, signal);
  if (!Array.isArray(names) || !names.every((n) => typeof n === 'string')) {
    throw new ClusterError('MODEL', `${url}: must be a JSON array of class names (strings)`);
  }
  if (names.length !== numClasses) {
    throw new ClusterError(
      'MODEL',
      `${url}: names ${names.length} classes but hyperparams.json has num_classes ${numClasses}`,
    );
  }
  return names;
}

/** model.json's modelTopology.ssd, when it has one, must describe the network hyperparams.json does. */
async function checkTopology(
  storage: Storage,
  dir: string,
  hp: Readonly<Hyperparameters>,
  signal?: AbortSignal,
): Promise<void> {
  const url = joinUrl(dir, MANIFEST_NAME);
  const file = parseWeightsFile(url, (await storage.read(url, { signal })).toString('utf8'));
  const ssd = file.modelTopology?.ssd;
  if (!ssd) return;
  const wanted = { baseNetwork: hp.base_network, imageShape: hp.image_shape, numClasses: hp.num_classes };
  const differ = (Object.keys(wanted) as (keyof typeof wanted)[]).filter((k) => ssd[k] !== wanted[k]);
  if (differ.length > 0) {
    const what = differ.map((k) => `modelTopology.ssd.${k} is ${ssd[k]}, hyperparams.json says ${wanted[k]}`);
    throw new ClusterError('MODEL', `${url}: ${what.join('; ')}`);
  }
}

/**
 * Builds the network hyperparams.json describes and loads its weights. Needs an active tfjs backend
 * (worker/backend initBackend). The caller disposes `model`.
 */
export async function loadInferenceModel(
  storage: Storage,
  dir: string,
  signal?: AbortSignal,
): Promise<LoadedModel> {
  const hp = await readHyperparams(storage, dir, signal);
  const classes = await readClasses(storage, dir, hp.num_classes, signal);
  await checkTopology(storage, dir, hp, signal);
  const model = createSsdModel({
    baseNetwork: hp.base_network,
    imageShape: hp.image_shape,
    numClasses: hp.num_classes,
    seed: 0, // every variable is then overwritten by loadWeights
  });
  try {
    await loadWeights(model, dir, storage, { signal });
  } catch (err) {
    model.dispose();
    throw err;
  }
  return { model, hp, classes };
}
