/**
 * Validation: detections on a list of samples and the VOC07 mAP over them, in PIXEL coordinates of
 * the original images (SageMaker's validation:mAP).
 *
 * Split so the cluster can shard it (coordinator/sharding validationShards):
 *  1. detectSamples (edge: data + tfjs) runs the validation transform and the network on the given
 *     sample indices and returns packed float32 rows, the layout cluster.proto's EpochReport carries:
 *       detections   [image, class, score, xmin, ymin, xmax, ymax]  (7 per row)
 *       ground truth [image, class, xmin, ymin, xmax, ymax, difficult]  (7 per row)
 *     image = the sample index; boxes = normalised corners x the original width and height.
 *  2. mapFromRows (pure) feeds any number of such row sets, from any number of workers in any order,
 *     to the VOC accumulator (difficult boxes ignored, +1 pixel convention, IoU >= overlap_threshold);
 *     validationMapOf turns its result into the reported validation:mAP.
 * A sample that fails to load as bad data (skip mode) contributes neither detections nor ground truth.
 */
import type * as tfc from '@tensorflow/tfjs-core';
import type { Hyperparameters } from '../../shared/config/hyperparameters.js';
import { type ApMetric, VocMapAccumulator, type VocMapResult } from '../../shared/eval/voc-map.js';
import type { Logger } from '../../shared/logging.js';
import type { BadRecord, LoadedBatch } from '../data/batch.js';
import type { Dataset, OnBadRecord } from '../data/dataset.js';
import type { GroundTruth } from '../data/ground-truth.js';
import { createPrefetcher } from '../data/prefetch.js';
import { type DetectionRow, type DetectOptions, detectObjects } from '../model/detect.js';
import type { SsdModel } from '../model/ssd.js';

export const ROW_WIDTH = 7;

export interface ValidationRows {
  detections: Float32Array;
  groundTruth: Float32Array;
  /** Samples evaluated (loaded without error). */
  images: number;
  skipped: BadRecord[];
}

export interface DetectSamplesOptions {
  tf: typeof tfc;
  model: SsdModel;
  dataset: Dataset;
  indices: ArrayLike<number>;
  /** Images per forward pass. */
  batchSize: number;
  detect: DetectOptions;
  signal: AbortSignal;
  /** Only the seed of the validation transform (it draws nothing; kept for the pipeline's checks). */
  seed?: number;
  onBadRecord?: OnBadRecord;
  logger?: Logger;
}

/** Detection options from the SageMaker hyperparameters. */
export function detectOptionsOf(hp: Pick<Hyperparameters, 'nms_threshold' | 'nms_topk'>): DetectOptions {
  return { nmsThreshold: hp.nms_threshold, topK: hp.nms_topk };
}

/** Detection rows of one image in pixel coordinates, 7 numbers each (see the header). */
export function detectionRowsOf(
  image: number,
  rows: readonly DetectionRow[],
  size: [number, number],
): number[] {
  const [w, h] = size;
  return rows.flatMap(([cls, score, x1, y1, x2, y2]) => [image, cls, score, x1 * w, y1 * h, x2 * w, y2 * h]);
}

/** Ground-truth rows of one image in pixel coordinates, 7 numbers each (see the header). */
export function groundTruthRowsOf(image: number, gt: GroundTruth, size: [number, number]): number[] {
  const [w, h] = size;
  const out: number[] = [];
  for (let i = 0; i < gt.classes.length; i++) {
    const b = gt.boxes.subarray(4 * i, 4 * i + 4);
    out.push(image, gt.classes[i]!, b[0]! * w, b[1]! * h, b[2]! * w, b[3]! * h, gt.difficult[i]! ? 1 : 0);
  }
  return out;
}

/** VOC mAP over row sets (step 2 of the header). */
export function mapFromRows(
  rowSets: readonly Pick<ValidationRows, 'detections' | 'groundTruth'>[],
  options: { iouThreshold: number; metric?: ApMetric },
): VocMapResult {
  const acc = new VocMapAccumulator({
    metric: options.metric ?? 'voc07',
    iouThreshold: options.iouThreshold,
    pixelOffset: 1,
  });
  for (const rows of rowSets) {
    acc.addGroundTruthRows(rows.groundTruth);
    acc.addDetectionRows(rows.detections);
  }
  return acc.compute();
}

/**
 * validation:mAP from a VOC result, the one rule `train`, the cluster and `evaluate` share (SPEC Part 2,
 * section 3): the mean AP over the classes with non-difficult ground truth (GluonCV's nanmean), so a
 * class without ground truth is left out rather than counted as 0. With no such class at all the mean
 * is undefined: null (no #quality_metric line, no early-stopping update), never 0.
 */
export function validationMapOf(result: Pick<VocMapResult, 'map'>): number | null {
  return Number.isNaN(result.map) ? null : result.map;
}

/** Class probabilities and box offsets of a batch, downloaded (all tensors disposed). */
async function predict(tf: typeof tfc, model: SsdModel, batch: LoadedBatch) {
  const side = model.config.imageShape;
  const out = tf.tidy(() => {
    const images = tf.tensor4d(batch.images, [batch.indices.length, side, side, 3]);
    const { clsLogits, locPred } = model.apply(images);
    return { prob: tf.softmax(clsLogits), loc: locPred };
  });
  try {
    return { prob: (await out.prob.data()) as Float32Array, loc: (await out.loc.data()) as Float32Array };
  } finally {
    tf.dispose([out.prob, out.loc]);
  }
}

/** Step 1 of the header for `indices`, batchSize images at a time, with the next batch decoded ahead. */
export async function detectSamples(options: DetectSamplesOptions): Promise<ValidationRows> {
  const { tf, model, dataset, signal } = options;
  const steps: number[][] = [];
  for (let i = 0; i < options.indices.length; i += options.batchSize)
    steps.push(Array.from(options.indices).slice(i, i + options.batchSize));
  const prefetcher = createPrefetcher(dataset, steps, {
    imageShape: model.config.imageShape,
    train: false,
    seed: options.seed ?? 0,
    epoch: 0,
    signal,
    onBadRecord: options.onBadRecord,
    logger: options.logger,
  });
  const detections: number[] = [];
  const groundTruth: number[] = [];
  const result: ValidationRows = {
    detections: new Float32Array(0),
    groundTruth: new Float32Array(0),
    images: 0,
    skipped: [],
  };
  const perAnchor = model.config.numClasses + 1;
  try {
    for await (const batch of prefetcher) {
      result.skipped.push(...batch.skipped);
      if (batch.indices.length === 0) continue;
      const { prob, loc } = await predict(tf, model, batch);
      const n = model.numAnchors;
      batch.indices.forEach((image, i) => {
        const probs = prob.subarray(i * n * perAnchor, (i + 1) * n * perAnchor);
        const rows = detectObjects(
          model.anchors,
          probs,
          loc.subarray(i * n * 4, (i + 1) * n * 4),
          options.detect,
        );
        detections.push(...detectionRowsOf(image, rows, batch.originalSizes[i]!));
        groundTruth.push(...groundTruthRowsOf(image, batch.gt[i]!, batch.originalSizes[i]!));
      });
      result.images += batch.indices.length;
    }
  } finally {
    await prefetcher.close();
  }
  return {
    ...result,
    detections: Float32Array.from(detections),
    groundTruth: Float32Array.from(groundTruth),
  };
}
