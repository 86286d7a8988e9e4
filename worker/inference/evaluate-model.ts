/**
 * The VOC mAP of a trained model on a data set, the body of `ssd-cluster evaluate`. It is training's
 * validation (worker/train/validation.ts) run on a saved model, so the numbers are the same:
 *  1. the model from --model as `predict` loads it (model-source.ts, load-model.ts), its hyperparams.json
 *     giving the network, nms_threshold, nms_topk, overlap_threshold and mini_batch_size;
 *  2. the data set as `train --validation` opens it (openChannel: a .rec or an image folder, class ids
 *     checked against the model's num_classes); a classes.json beside the data must name as many classes;
 *  3. detectSamples over every sample with the validation transform, mini_batch_size images per pass
 *     (as the trainer's validation; each image's rows depend on it alone), bad records skipped or fatal;
 *  4. mapFromRows: VOC in pixel coordinates, IoU >= overlap_threshold unless told otherwise.
 * The model is disposed and the data set closed before it returns; the tfjs backend stays.
 */
import { performance } from 'node:perf_hooks';
import type { Hyperparameters } from '../../shared/config/hyperparameters.js';
import { ClusterError, ConfigError, errorMessage, isClusterError } from '../../shared/errors.js';
import type { ApMetric, VocMapResult } from '../../shared/eval/voc-map.js';
import type { Logger } from '../../shared/logging.js';
import type { Storage } from '../../shared/storage/storage.js';
import { dirnameUrl } from '../../shared/storage/url.js';
import { type BackendName, initBackend } from '../backend/backend.js';
import type { Dataset, OnBadRecord, SkippedInput } from '../data/dataset.js';
import { classesCandidates } from '../train/model-artifact.js';
import { openChannel } from '../train/run-training.js';
import { detectOptionsOf, detectSamples, mapFromRows, type ValidationRows } from '../train/validation.js';
import { type LoadedModel, loadInferenceModel, readClasses } from './load-model.js';
import { folderImageName, recordImageNames } from './map-files.js';
import { openModelSource } from './model-source.js';

export interface EvaluateOptions {
  /** --model: a model directory, its model.json or a model.tar.gz (path or s3://). */
  model: string;
  /** --data: a .rec (its .idx beside it) or a folder of images with SageMaker JSON annotations. */
  data: string;
  /** Folder of the .json annotations of an image folder (default: beside the images). */
  annotation?: string;
  /** Default voc07 (training's). */
  metric?: ApMetric;
  /** A detection matches at IoU >= this; default the model's overlap_threshold. */
  iouThreshold?: number;
  /** Images per forward pass; default the model's mini_batch_size. */
  batchSize?: number;
  backend: BackendName;
  /** XNNPACK threads on wasm (default 1). */
  threads?: number;
  onBadRecord?: OnBadRecord;
  storage: Storage;
  logger: Logger;
  signal: AbortSignal;
}

export interface Evaluation {
  result: VocMapResult;
  rows: ValidationRows;
  /** Inputs left out: corrupt framing found while opening a .rec without .idx, then bad records. */
  skipped: SkippedInput[];
  hp: Readonly<Hyperparameters>;
  /** The model's class names (its classes.json), or undefined. */
  classes: readonly string[] | undefined;
  metric: ApMetric;
  iouThreshold: number;
  /** The detection pass (reading, decoding, network, NMS), without loading the model. */
  seconds: number;
  /** The name of sample `index` in map's files (map-files.ts). */
  imageName: (index: number) => string;
}

/** Steps 1-4 of the header. */
export async function evaluateModel(o: EvaluateOptions): Promise<Evaluation> {
  const backend = await initBackend(o.backend, { logger: o.logger, threads: o.threads });
  const loaded = await loadModel(o);
  try {
    const { hp } = loaded;
    const dataset = await openChannel({ ...o, hp }, o.data, o.annotation);
    try {
      await checkDataClasses(o, loaded);
      const imageName = imageNamesOf(o.data, dataset);
      const started = performance.now();
      const rows = await detectSamples({
        tf: backend.tf,
        model: loaded.model,
        dataset,
        indices: Array.from({ length: dataset.size }, (_, i) => i),
        batchSize: o.batchSize ?? hp.mini_batch_size,
        detect: detectOptionsOf(hp),
        signal: o.signal,
        onBadRecord: o.onBadRecord,
        logger: o.logger,
      });
      const seconds = (performance.now() - started) / 1000;
      const skipped = [...dataset.skippedAtOpen, ...rows.skipped];
      if (rows.images === 0 && skipped.length > 0) throw nothingEvaluated(o.data, skipped);
      const metric = o.metric ?? 'voc07';
      const iouThreshold = o.iouThreshold ?? hp.overlap_threshold;
      const result = mapFromRows([rows], { iouThreshold, metric });
      return { result, rows, skipped, hp, classes: loaded.classes, metric, iouThreshold, seconds, imageName };
    } finally {
      await dataset.close();
    }
  } finally {
    loaded.model.dispose();
  }
}

async function loadModel(o: EvaluateOptions): Promise<LoadedModel> {
  const source = await openModelSource(o.model, { storage: o.storage, signal: o.signal });
  try {
    return await loadInferenceModel(source.storage, source.dir, o.signal);
  } finally {
    await source.close();
  }
}

/**
 * A classes.json beside the data (where train looks for one) must name num_classes classes; names that
 * differ from the model's are only a warning (the ids are what is compared).
 */
async function checkDataClasses(o: EvaluateOptions, loaded: LoadedModel): Promise<void> {
  const numClasses = loaded.hp.num_classes;
  for (const url of classesCandidates(o.data)) {
    let names: string[] | undefined;
    try {
      names = await readClasses(o.storage, dirnameUrl(url), numClasses, o.signal);
    } catch (err) {
      if (!isClusterError(err, 'MODEL')) throw err;
      throw new ConfigError(
        [
          `--data ${o.data} does not fit --model ${o.model} (num_classes ${numClasses}): ${errorMessage(err)}`,
        ],
        { cause: err },
      );
    }
    if (names === undefined) continue;
    if (loaded.classes && names.some((n, i) => n !== loaded.classes![i]))
      o.logger.warn('the data set names its classes differently from the model', {
        data: names,
        model: loaded.classes,
      });
    return;
  }
}

function imageNamesOf(data: string, dataset: Dataset): (index: number) => string {
  if (data.endsWith('.rec')) return recordImageNames(data, dataset.size);
  const names = Array.from({ length: dataset.size }, (_, i) => folderImageName(data, dataset.sourceOf(i)));
  return (index) => names[index]!;
}

function nothingEvaluated(data: string, skipped: readonly SkippedInput[]): ClusterError {
  const first = skipped[0]!;
  return new ClusterError(
    'RECORDIO',
    `--data ${data}: no sample could be evaluated, all ${skipped.length} were skipped ` +
      `(the first: ${first.source}: ${first.reason})`,
  );
}
