/**
 * PASCAL VOC detection mAP (pure), the lineage of SSD / GluonCV / SageMaker `validation:mAP` (SPEC Part 2, section 3).
 *
 * Per class:
 *  1. Order every detection of the class by score descending. Ties: image id (numbers before strings, numbers
 *     ascending, strings by code unit), then the order the image's detections were added. The order therefore
 *     never depends on which worker reported first, so gathering from a cluster gives exactly one answer.
 *  2. Greedy matching in that order: the detection's best ground truth is the box of the same class in the same
 *     image with the highest IoU (first on ties), difficult boxes included. If that IoU >= iouThreshold
 *     (VOC devkit and GluonCV use >=; py-faster-rcnn uses >, which differs at exactly 0.5): a difficult box makes
 *     the detection IGNORED (neither TP nor FP); an unused box makes it a TP and marks the box used; a used box
 *     makes it a FP (a duplicate), even if another free box also overlaps. Below the threshold: FP.
 *  3. npos = the number of non-difficult boxes; AP from the TP/FP ranking (average-precision.ts).
 * mAP = the mean over classes with npos > 0 (GluonCV's nanmean); other classes are listed as skipped. With no
 * such class at all, mAP is NaN.
 * IoU uses pixelOffset: 1 for VOC pixel boxes (widths x2 - x1 + 1), 0 for normalised boxes.
 */
import { ClusterError } from '../errors.js';
import { type ApMetric, averagePrecision, precisionRecall } from './average-precision.js';
import { cornerIou } from './box-iou.js';

export type { ApMetric } from './average-precision.js';

export type ImageId = string | number;

export interface GroundTruthObject {
  classId: number;
  /** [xmin, ymin, xmax, ymax]. */
  box: ArrayLike<number>;
  difficult?: boolean;
}

export interface DetectedObject {
  classId: number;
  score: number;
  box: ArrayLike<number>;
}

export interface VocMapOptions {
  metric?: ApMetric;
  iouThreshold?: number;
  pixelOffset?: 0 | 1;
}

export interface ClassResult {
  classId: number;
  ap: number;
  /** Non-difficult ground-truth boxes. */
  numPositives: number;
  truePositives: number;
  falsePositives: number;
  /** Detections that hit a difficult box. */
  ignored: number;
}

export interface VocMapResult {
  /** Mean AP over `classes`; NaN when there are none. */
  map: number;
  /** Classes with non-difficult ground truth, by class id. */
  classes: ClassResult[];
  /** Classes seen only in detections or only with difficult boxes: not part of the mean. */
  skippedClasses: number[];
}

interface ImageRecord {
  truth: { classId: number; box: number[]; difficult: boolean }[];
  detections: { classId: number; score: number; box: number[] }[];
}

function compareImageIds(a: ImageId, b: ImageId): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (typeof a !== typeof b) return typeof a === 'number' ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

function checkBox(box: ArrayLike<number>, where: string): number[] {
  const values = Array.from(box);
  if (values.length !== 4 || !values.every(Number.isFinite)) {
    throw new ClusterError(
      'ANNOTATION',
      `${where}: box must be 4 finite numbers, got [${values.join(', ')}]`,
    );
  }
  return values;
}

function checkClass(classId: number, where: string): void {
  if (!Number.isInteger(classId) || classId < 0) {
    throw new ClusterError('ANNOTATION', `${where}: class must be an integer >= 0, got ${classId}`);
  }
}

function checkRows(rows: Float32Array, what: string): void {
  if (rows.length % 7 !== 0) {
    throw new ClusterError('PROTOCOL', `packed ${what} rows: ${rows.length} values is not a multiple of 7`);
  }
}

/**
 * Collects ground truth and detections per image, from any number of sources in any order, and computes the
 * mAP on demand. Adding to an image appends (ground truth and detections may arrive separately).
 */
export class VocMapAccumulator {
  readonly #images = new Map<ImageId, ImageRecord>();
  readonly #options: Required<VocMapOptions>;

  constructor(options: VocMapOptions = {}) {
    // Field by field, so an explicit `undefined` means the default too.
    this.#options = {
      metric: options.metric ?? 'voc07',
      iouThreshold: options.iouThreshold ?? 0.5,
      pixelOffset: options.pixelOffset ?? 1,
    };
  }

  #image(imageId: ImageId): ImageRecord {
    let record = this.#images.get(imageId);
    if (!record) this.#images.set(imageId, (record = { truth: [], detections: [] }));
    return record;
  }

  addGroundTruth(imageId: ImageId, objects: readonly GroundTruthObject[]): void {
    const record = this.#image(imageId);
    for (const [k, o] of objects.entries()) {
      const where = `image ${JSON.stringify(imageId)} ground truth ${k}`;
      checkClass(o.classId, where);
      record.truth.push({ classId: o.classId, box: checkBox(o.box, where), difficult: o.difficult === true });
    }
  }

  addDetections(imageId: ImageId, detections: readonly DetectedObject[]): void {
    const record = this.#image(imageId);
    for (const [k, d] of detections.entries()) {
      const where = `image ${JSON.stringify(imageId)} detection ${k}`;
      checkClass(d.classId, where);
      if (!Number.isFinite(d.score)) throw new ClusterError('ANNOTATION', `${where}: score must be finite`);
      record.detections.push({ classId: d.classId, score: d.score, box: checkBox(d.box, where) });
    }
  }

  addImage(
    imageId: ImageId,
    truth: readonly GroundTruthObject[],
    detections: readonly DetectedObject[],
  ): void {
    this.addGroundTruth(imageId, truth);
    this.addDetections(imageId, detections);
  }

  /**
   * Packed float32 rows as cluster.proto's EpochReport carries them, 7 numbers each:
   * [image, class, score, xmin, ymin, xmax, ymax].
   */
  addDetectionRows(rows: Float32Array): void {
    checkRows(rows, 'detection');
    for (let r = 0; r + 7 <= rows.length; r += 7) {
      const box = rows.subarray(r + 3, r + 7);
      this.addDetections(rows[r]!, [{ classId: rows[r + 1]!, score: rows[r + 2]!, box }]);
    }
  }

  /** Packed ground-truth rows, 7 numbers each: [image, class, xmin, ymin, xmax, ymax, difficult (0 or 1)]. */
  addGroundTruthRows(rows: Float32Array): void {
    checkRows(rows, 'ground-truth');
    for (let r = 0; r + 7 <= rows.length; r += 7) {
      const box = rows.subarray(r + 2, r + 6);
      this.addGroundTruth(rows[r]!, [{ classId: rows[r + 1]!, box, difficult: rows[r + 6]! !== 0 }]);
    }
  }

  /** Adds everything another accumulator holds (e.g. one per worker). */
  merge(other: VocMapAccumulator): void {
    for (const [imageId, record] of other.#images) {
      const mine = this.#image(imageId);
      mine.truth.push(...record.truth);
      mine.detections.push(...record.detections);
    }
  }

  get imageCount(): number {
    return this.#images.size;
  }

  compute(): VocMapResult {
    const classIds = new Set<number>();
    for (const record of this.#images.values()) {
      for (const o of record.truth) classIds.add(o.classId);
      for (const d of record.detections) classIds.add(d.classId);
    }
    const imageIds = [...this.#images.keys()].sort(compareImageIds);
    const classes: ClassResult[] = [];
    const skippedClasses: number[] = [];
    for (const classId of [...classIds].sort((a, b) => a - b)) {
      const result = this.#evaluateClass(classId, imageIds);
      if (result) classes.push(result);
      else skippedClasses.push(classId);
    }
    const map = classes.length === 0 ? Number.NaN : classes.reduce((s, c) => s + c.ap, 0) / classes.length;
    return { map, classes, skippedClasses };
  }

  /** Steps 1-3 of the header for one class; undefined when it has no non-difficult ground truth. */
  #evaluateClass(classId: number, imageIds: ImageId[]): ClassResult | undefined {
    const { iouThreshold, pixelOffset, metric } = this.#options;
    const ranked: { score: number; box: number[]; image: number }[] = [];
    const truthByImage: { box: number[]; difficult: boolean; used: boolean }[][] = [];
    let numPositives = 0;
    for (const [image, imageId] of imageIds.entries()) {
      const record = this.#images.get(imageId)!;
      const truth = record.truth.filter((o) => o.classId === classId);
      truthByImage.push(truth.map((o) => ({ box: o.box, difficult: o.difficult, used: false })));
      numPositives += truth.filter((o) => !o.difficult).length;
      for (const d of record.detections)
        if (d.classId === classId) ranked.push({ score: d.score, box: d.box, image });
    }
    if (numPositives === 0) return undefined;
    // Stable sort: equal scores keep (image order, then insertion order).
    ranked.sort((a, b) => b.score - a.score);
    const outcomes: boolean[] = [];
    let ignored = 0;
    for (const d of ranked) {
      const truth = truthByImage[d.image]!;
      let best = -1;
      let bestIou = Number.NEGATIVE_INFINITY;
      for (const [g, o] of truth.entries()) {
        const v = cornerIou(d.box, 0, o.box, 0, pixelOffset);
        if (v > bestIou) [best, bestIou] = [g, v];
      }
      const hit = best >= 0 && bestIou >= iouThreshold ? truth[best]! : undefined;
      if (hit?.difficult) {
        ignored++;
        continue;
      }
      outcomes.push(hit !== undefined && !hit.used);
      if (hit) hit.used = true;
    }
    const truePositives = outcomes.filter(Boolean).length;
    const ap = averagePrecision(metric, precisionRecall(outcomes, numPositives));
    return {
      classId,
      ap,
      numPositives,
      truePositives,
      falsePositives: outcomes.length - truePositives,
      ignored,
    };
  }
}

export interface GroundTruthEntry extends GroundTruthObject {
  imageId: ImageId;
}

export interface DetectionEntry extends DetectedObject {
  imageId: ImageId;
}

/** One-shot form of the accumulator. */
export function computeVocMap(
  truth: readonly GroundTruthEntry[],
  detections: readonly DetectionEntry[],
  options: VocMapOptions = {},
): VocMapResult {
  const acc = new VocMapAccumulator(options);
  for (const o of truth) acc.addGroundTruth(o.imageId, [o]);
  for (const d of detections) acc.addDetections(d.imageId, [d]);
  return acc.compute();
}
