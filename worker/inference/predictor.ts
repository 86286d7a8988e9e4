/**
 * A loaded model that turns encoded images into SageMaker prediction rows (SPEC part 1, 1.4).
 *
 * Per image: decode + the validation transform (worker/data/prepare.ts with train=false: a plain
 * resize of the whole image to image_shape, ImageNet normalisation; grey and alpha images become RGB),
 * so inference sees exactly what validation saw. Then, in batches (batcher.ts: one forward pass at a
 * time, concurrent callers share it): model.apply inside tf.tidy, softmax, download, and per image
 * detectObjects with the model's nms_threshold and nms_topk. The rows are [class, score, xmin, ymin,
 * xmax, ymax] with boxes normalised to the ORIGINAL image: the resize is a plain warp, so normalised
 * coordinates of the input are those of the original.
 */
import { performance } from 'node:perf_hooks';
import type * as tfc from '@tensorflow/tfjs-core';
import type { Hyperparameters } from '../../shared/config/hyperparameters.js';
import { ClusterError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logging.js';
import type { Storage } from '../../shared/storage/storage.js';
import { type Backend, type BackendName, initBackend, type ResolvedBackendName } from '../backend/backend.js';
import { emptyGroundTruth } from '../data/ground-truth.js';
import { prepareSample } from '../data/prepare.js';
import { type DetectionRow, type DetectOptions, detectObjects } from '../model/detect.js';
import type { SsdModel } from '../model/ssd.js';
import { detectOptionsOf } from '../train/validation.js';
import { type Batcher, createBatcher } from './batcher.js';
import { type LoadedModel, loadInferenceModel } from './load-model.js';
import { openModelSource } from './model-source.js';

export const DEFAULT_MAX_BATCH = 4;

export interface PredictorOptions {
  storage: Storage;
  backend: BackendName;
  logger: Logger;
  signal?: AbortSignal;
  /** XNNPACK threads on wasm (default 1). */
  threads?: number;
  /** Images per forward pass at most (default 4). */
  maxBatch?: number;
  /** Rows scoring below this are dropped (default 0: every row detectObjects returns). */
  scoreThreshold?: number;
}

export interface PredictOptions {
  signal?: AbortSignal;
  /** Names the image in errors (a file, or "request body"). */
  source?: string;
}

export interface Predictor {
  readonly hp: Readonly<Hyperparameters>;
  readonly classes: readonly string[] | undefined;
  readonly backend: ResolvedBackendName;
  /** Rows for one JPEG or PNG; an IMAGE error naming `source` when it is not one or cannot be decoded. */
  predict(image: Uint8Array, options?: PredictOptions): Promise<number[][]>;
  /** Disposes the model (the backend stays: tfjs cannot re-create one); idempotent. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * One forward pass over prepared S*S*3 inputs, and the rows of each; every tensor is disposed before
 * it returns. Image i's rows depend only on input i (the network has no batch statistics).
 */
export async function detectBatch(
  tf: typeof tfc,
  model: SsdModel,
  inputs: readonly Float32Array[],
  detect: DetectOptions,
): Promise<DetectionRow[][]> {
  const side = model.config.imageShape;
  const size = side * side * 3;
  const batch = new Float32Array(inputs.length * size);
  for (const [i, pixels] of inputs.entries()) batch.set(pixels, i * size);
  const out = tf.tidy(() => {
    const { clsLogits, locPred } = model.apply(tf.tensor4d(batch, [inputs.length, side, side, 3]));
    return { prob: tf.softmax(clsLogits), loc: locPred };
  });
  let prob: Float32Array;
  let loc: Float32Array;
  try {
    [prob, loc] = (await Promise.all([out.prob.data(), out.loc.data()])) as [Float32Array, Float32Array];
  } finally {
    tf.dispose([out.prob, out.loc]);
  }
  const n = model.numAnchors;
  const width = model.config.numClasses + 1;
  return inputs.map((_, i) =>
    detectObjects(
      model.anchors,
      prob.subarray(i * n * width, (i + 1) * n * width),
      loc.subarray(i * n * 4, (i + 1) * n * 4),
      detect,
    ),
  );
}

async function prepare(image: Uint8Array, imageShape: number, source: string): Promise<Float32Array> {
  const sample = {
    index: 0,
    image: Buffer.from(image.buffer, image.byteOffset, image.byteLength),
    gt: emptyGroundTruth(),
    source,
  };
  return (await prepareSample(sample, { imageShape, train: false, seed: 0, epoch: 0 })).pixels;
}

function checkOptions(o: PredictorOptions): { maxBatch: number; threshold: number } {
  const maxBatch = o.maxBatch ?? DEFAULT_MAX_BATCH;
  const threshold = o.scoreThreshold ?? 0;
  if (!Number.isInteger(maxBatch) || maxBatch < 1) {
    throw new ClusterError('CONFIG', `maxBatch: must be an integer >= 1, got ${maxBatch}`);
  }
  if (!(threshold >= 0 && threshold <= 1)) {
    throw new ClusterError('CONFIG', `scoreThreshold: must be in [0, 1], got ${threshold}`);
  }
  return { maxBatch, threshold };
}

/** A loaded model behind the batcher; made by loadPredictor. */
class ModelPredictor implements Predictor {
  readonly hp: Readonly<Hyperparameters>;
  readonly classes: readonly string[] | undefined;
  readonly backend: ResolvedBackendName;
  readonly #model: SsdModel;
  readonly #batcher: Batcher<Float32Array, DetectionRow[]>;
  readonly #threshold: number;
  #closing: Promise<void> | undefined;

  constructor(
    loaded: LoadedModel,
    backend: Backend,
    o: { maxBatch: number; threshold: number; logger: Logger },
  ) {
    ({ hp: this.hp, classes: this.classes, model: this.#model } = loaded);
    this.backend = backend.name;
    this.#threshold = o.threshold;
    const detect = detectOptionsOf(this.hp);
    const pass = async (inputs: readonly Float32Array[]) => {
      const started = performance.now();
      const rows = await detectBatch(backend.tf, this.#model, inputs, detect);
      o.logger.debug('forward pass', { images: inputs.length, ms: Math.round(performance.now() - started) });
      return rows;
    };
    this.#batcher = createBatcher(pass, { maxBatch: o.maxBatch, name: 'predictor' });
  }

  /** One pass on a blank image, so the first request does not pay for kernel set-up. */
  async warmUp(signal?: AbortSignal): Promise<void> {
    const side = this.hp.image_shape;
    await this.#batcher.submit(new Float32Array(side * side * 3), signal);
  }

  async predict(image: Uint8Array, { signal, source = 'image' }: PredictOptions = {}): Promise<number[][]> {
    if (this.#closing) throw new ClusterError('ABORTED', 'predictor: closed');
    // Reserved before decoding, so a pass that ends meanwhile waits for this image (batcher.ts).
    const place = this.#batcher.reserve();
    let pixels: Float32Array;
    try {
      pixels = await prepare(image, this.hp.image_shape, source);
    } catch (err) {
      place.cancel();
      throw err;
    }
    const rows = await place.submit(pixels, signal);
    return rows.filter((row) => row[1] >= this.#threshold).map((row) => [...row]);
  }

  close(): Promise<void> {
    this.#closing ??= this.#batcher.close().then(() => this.#model.dispose());
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Loads --model (a directory, model.json, or model.tar.gz; a path or s3://) on the named backend, warmed up. */
export async function loadPredictor(modelUrl: string, options: PredictorOptions): Promise<Predictor> {
  const { maxBatch, threshold } = checkOptions(options);
  const { logger, signal } = options;
  const started = performance.now();
  const backend = await initBackend(options.backend, { logger, threads: options.threads });
  const source = await openModelSource(modelUrl, { storage: options.storage, signal });
  const loaded = await loadInferenceModel(source.storage, source.dir, signal).finally(() => source.close());
  const predictor = new ModelPredictor(loaded, backend, { maxBatch, threshold, logger });
  try {
    await predictor.warmUp(signal);
  } catch (err) {
    await predictor.close();
    throw err;
  }
  const { hp } = loaded;
  logger.info('model loaded', {
    model: modelUrl,
    kind: source.kind,
    baseNetwork: hp.base_network,
    imageShape: hp.image_shape,
    numClasses: hp.num_classes,
    backend: backend.name,
    ms: Math.round(performance.now() - started),
  });
  return predictor;
}
