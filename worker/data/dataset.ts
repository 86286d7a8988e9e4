/**
 * Random access to a detection data set by sample index: sample i is always the same image and
 * ground truth, so the sample order (coordinator/sharding/plan.ts) and the augmentation draws
 * (prepare.ts) can be pure functions of (seed, epoch, index).
 *
 * Two layouts (SageMaker's input channels, SPEC part 1, 1.2):
 * - a `.rec` file: sample i is the record at the i-th line of the `.idx` beside it (one ranged read per
 *   sample, local or S3); without an `.idx`, the file is scanned once at open to find the record
 *   offsets (sample i = the i-th record in file order);
 * - a folder of JPEG/PNG images with one SageMaker JSON annotation per image, in a separate
 *   `annotations` folder (the train_annotation channel) or beside the images; sample i is the i-th
 *   image in URL order.
 */
import { ClusterError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logging.js';
import type { Storage } from '../../shared/storage/storage.js';
import type { GroundTruth } from './ground-truth.js';

export interface DatasetSample {
  index: number;
  /** The encoded JPEG or PNG. */
  image: Buffer;
  gt: GroundTruth;
  /** Where the sample lives, for messages: `file.rec@offset` or the image's path/URL. */
  source: string;
}

/** A record or file that was skipped, and why. */
export interface SkippedInput {
  source: string;
  reason: string;
}

export interface Dataset {
  readonly url: string;
  readonly size: number;
  /** Parts of the input skipped while opening (corrupt framing found by the scan of a .rec without .idx). */
  readonly skippedAtOpen: readonly SkippedInput[];
  /**
   * Sample `index` (0 <= index < size). Corrupt data (framing, label, annotation) is a ClusterError with
   * code RECORDIO or ANNOTATION naming the file and offset or path; storage failures are StorageErrors.
   */
  read(index: number, signal?: AbortSignal): Promise<DatasetSample>;
  /** The source string of sample `index` without reading it (for messages about a failed read). */
  sourceOf(index: number): string;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export type OnBadRecord = 'skip' | 'fail';

export interface OpenDatasetOptions {
  storage: Storage;
  /** Folder of SageMaker .json annotations for an image folder; default: the .json beside each image. */
  annotations?: string;
  /** When given, a class id >= numClasses is a label error. */
  numClasses?: number;
  /** What to do with corrupt framing found while scanning a .rec without .idx (default skip). */
  onBadRecord?: OnBadRecord;
  logger?: Logger;
  signal?: AbortSignal;
}

/** `items[index]`, or an INTERNAL error naming the data set when index is not a sample of it. */
export function sampleAt<T>(url: string, items: readonly T[], index: number): T {
  if (!Number.isSafeInteger(index) || index < 0 || index >= items.length) {
    throw new ClusterError('INTERNAL', `${url}: sample ${index} is outside 0..${items.length - 1}`);
  }
  return items[index]!;
}
