/**
 * A folder of JPEG/PNG images plus SageMaker JSON annotations as a Dataset (dataset.ts), local or S3.
 *
 * Sample i is the i-th image (.jpg, .jpeg, .png, any case) under the folder in URL order. Its annotation
 * is the .json with the same relative path and stem in the annotation folder (the train_annotation
 * channel; default: the image folder itself), else the one .json with the same stem anywhere in that
 * folder (SageMaker channels are often flat on one side only). Every image must have one: open() fails
 * otherwise, naming the first images without one.
 *
 * read() fetches image and .json in parallel; the annotation's `file` must name the same image file
 * (same base name), boxes are normalised by the annotation's width and height (SageMaker's conversion,
 * shared/annotations/convert.ts) and checked like RecordIO labels (ground-truth.ts).
 */

import { parseAnnotationFile } from '../../shared/annotations/annotation.js';
import { toNormalizedObjects } from '../../shared/annotations/convert.js';
import { AnnotationError } from '../../shared/annotations/fields.js';
import { ClusterError } from '../../shared/errors.js';
import type { ObjectInfo } from '../../shared/storage/storage.js';
import { basenameUrl } from '../../shared/storage/url.js';
import { type Dataset, type DatasetSample, type OpenDatasetOptions, sampleAt } from './dataset.js';
import { labelProblem, packGroundTruth } from './ground-truth.js';

const IMAGE_EXTENSION = /\.(jpe?g|png)$/i;
const MAX_NAMED_MISSING = 3;

interface Entry {
  image: string;
  annotation: string;
}

const asFolder = (url: string) => (url.endsWith('/') ? url : `${url}/`);
/** `a/b.jpg` -> `a/b`. */
const stemOf = (path: string) => path.replace(/\.[^./]*$/, '');

export async function openFolderDataset(url: string, options: OpenDatasetOptions): Promise<Dataset> {
  const { storage, signal } = options;
  const imageFolder = asFolder(url);
  const annotationFolder = asFolder(options.annotations ?? url);
  const listed = await storage.list(imageFolder, { signal });
  const images = listed.filter((o) => IMAGE_EXTENSION.test(o.url)).map((o) => o.url);
  if (images.length === 0) {
    throw new ClusterError('NOT_FOUND', `${url}: no .rec file and no JPEG/PNG images under this folder`);
  }
  const jsons = annotationFolder === imageFolder ? listed : await storage.list(annotationFolder, { signal });
  const entries = pairAnnotations(images, imageFolder, jsons, annotationFolder);
  return new FolderDataset(url, entries, options);
}

/** Each image with its annotation .json (see the file comment); throws naming unpaired images. */
function pairAnnotations(
  images: readonly string[],
  imageFolder: string,
  listed: readonly ObjectInfo[],
  annotationFolder: string,
): Entry[] {
  const byPath = new Map<string, string>();
  const byStem = new Map<string, string | null>(); // null: the stem occurs more than once
  for (const { url } of listed) {
    if (!url.toLowerCase().endsWith('.json')) continue;
    const relative = stemOf(url.slice(annotationFolder.length));
    byPath.set(relative, url);
    const stem = basenameUrl(relative);
    byStem.set(stem, byStem.has(stem) ? null : url);
  }
  const missing: string[] = [];
  const entries = images.map((image) => {
    const relative = stemOf(image.slice(imageFolder.length));
    const annotation = byPath.get(relative) ?? byStem.get(basenameUrl(relative));
    if (annotation == null) missing.push(image);
    return { image, annotation: annotation ?? '' };
  });
  if (missing.length > 0) {
    const named = missing.slice(0, MAX_NAMED_MISSING).join(', ');
    const more = missing.length > MAX_NAMED_MISSING ? ` and ${missing.length - MAX_NAMED_MISSING} more` : '';
    throw new ClusterError(
      'ANNOTATION',
      `${annotationFolder}: no annotation .json for ${missing.length} of ${images.length} images (${named}${more})`,
    );
  }
  return entries;
}

class FolderDataset implements Dataset {
  readonly size: number;
  readonly skippedAtOpen = [];
  private closed = false;

  constructor(
    readonly url: string,
    private readonly entries: readonly Entry[],
    private readonly options: OpenDatasetOptions,
  ) {
    this.size = entries.length;
  }

  sourceOf(index: number): string {
    return this.entryOf(index).image;
  }

  async read(index: number, signal?: AbortSignal): Promise<DatasetSample> {
    const entry = this.entryOf(index);
    if (this.closed) throw new ClusterError('INTERNAL', `${this.url}: the data set is closed`);
    const { storage } = this.options;
    const [image, json] = await Promise.all([
      storage.read(entry.image, { signal }),
      storage.read(entry.annotation, { signal }),
    ]);
    const annotation = parseAnnotationFile(json.toString('utf8'), entry.annotation);
    if (basenameUrl(annotation.file) !== basenameUrl(entry.image)) {
      const problem = `names ${JSON.stringify(annotation.file)}, but it was paired with ${entry.image}`;
      throw new AnnotationError(entry.annotation, 'file', problem);
    }
    const objects = toNormalizedObjects(annotation);
    const problem = labelProblem(objects, this.options.numClasses);
    if (problem !== null) throw new AnnotationError(entry.annotation, 'annotations', problem);
    return { index, image, gt: packGroundTruth(objects), source: entry.image };
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  private entryOf(index: number): Entry {
    return sampleAt(this.url, this.entries, index);
  }
}
