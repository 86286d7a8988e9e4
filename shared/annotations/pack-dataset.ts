/**
 * `pack`: images + SageMaker annotations -> PREFIX.rec + PREFIX.idx + PREFIX.classes.json, with labels
 * `[2, 5, (class, xmin, ymin, xmax, ymax) per object]` normalised to [0, 1], as `im2rec --pack-label`
 * writes them (SPEC part 1, 3.3-3.4). Record i has key i and IRHeader id i, in sorted image-name order
 * (directories) or line order (manifest).
 *
 * Ordering, so that a bad input leaves nothing behind:
 * 1. read and validate every annotation and the class set (nothing is written yet);
 * 2. stream the images into the writer's temporaries, checking each image's real size against its
 *    annotation (and re-encoding with --resize);
 * 3. publish PREFIX.rec/.idx (writer.close), then PREFIX.classes.json. Any failure before that aborts
 *    the writer; a failure writing classes.json deletes the .rec/.idx just published.
 */
import type { Logger } from '../logging.js';
import { noopLogger } from '../logging.js';
import { encodeDetectionLabel } from '../recordio/detection-label.js';
import { encodeImageRecord } from '../recordio/image-record.js';
import { openRecordIOWriter } from '../recordio/writer.js';
import type { Storage } from '../storage/storage.js';
import { basenameUrl } from '../storage/url.js';
import { produceInOrder } from '../synth/in-order.js';
import { type AnnotatedImage, parseAnnotationFile } from './annotation.js';
import { type ClassSet, compileClassSet, toNormalizedObjects } from './convert.js';
import { AnnotationError } from './fields.js';
import { folderPrefix, pairImagesWithAnnotations } from './pair-files.js';
import { prepareImage } from './prepare-image.js';
import { readManifestItems } from './read-manifest.js';

export type PackInput =
  | { kind: 'directories'; images: string; annotations: string }
  | { kind: 'manifest'; manifest: string; labelAttribute?: string };

export interface PackContext {
  storage: Storage;
  signal?: AbortSignal;
  logger?: Logger;
}

export interface PackOptions {
  /** PREFIX: the outputs are PREFIX.rec, PREFIX.idx and PREFIX.classes.json. */
  out: string;
  /** Re-encode each image so that its shorter side is this many pixels (im2rec --resize). */
  resize?: number;
}

export interface PackResult {
  rec: string;
  idx: string;
  classes: string;
  records: number;
  classSet: ClassSet;
}

/** Images read, checked and re-encoded ahead of the writer. */
const PREPARE_WINDOW = 4;
/** Annotation files read concurrently. */
const READ_CONCURRENCY = 8;

export async function packDataset(
  input: PackInput,
  options: PackOptions,
  ctx: PackContext,
): Promise<PackResult> {
  const items =
    input.kind === 'manifest'
      ? await readManifestItems(input.manifest, { ...ctx, labelAttribute: input.labelAttribute })
      : await readDirectoryItems(input.images, input.annotations, ctx);
  const classSet = validateItems(items);
  (ctx.logger ?? noopLogger).info('pack annotations valid', {
    images: items.length,
    classes: classSet.classCount,
  });
  const rec = `${options.out}.rec`;
  const writer = await openRecordIOWriter(rec, { storage: ctx.storage, signal: ctx.signal });
  try {
    await produceInOrder(
      items.length,
      PREPARE_WINDOW,
      (i) => packRecord(items[i]!, i, options, ctx),
      (payload, i) => writer.append(i, payload),
      ctx.signal,
    );
    await writer.close();
  } catch (err) {
    await writer.abort();
    throw err;
  }
  const classes = `${options.out}.classes.json`;
  try {
    await ctx.storage.write(classes, Buffer.from(`${JSON.stringify(classSet.names)}\n`), {
      signal: ctx.signal,
    });
  } catch (err) {
    await Promise.allSettled([ctx.storage.delete(rec), ctx.storage.delete(writer.indexUrl)]);
    throw err;
  }
  return { rec, idx: writer.indexUrl, classes, records: items.length, classSet };
}

/** Every image needs at least one object (a detection label with none is useless to SSD training). */
function validateItems(items: readonly AnnotatedImage[]): ClassSet {
  if (items.length === 0)
    throw new AnnotationError('(input)', 'images', 'nothing to pack: no annotated images found');
  for (const item of items) {
    if (item.annotation.objects.length === 0)
      throw new AnnotationError(item.source, 'annotations', 'no objects: every image needs at least one box');
  }
  return compileClassSet(items);
}

async function packRecord(
  item: AnnotatedImage,
  id: number,
  options: PackOptions,
  ctx: PackContext,
): Promise<Buffer> {
  const bytes = await ctx.storage.read(item.imageUrl, { signal: ctx.signal });
  const image = await prepareImage(bytes, item, options.resize);
  const label = encodeDetectionLabel(toNormalizedObjects(item.annotation), { objectWidth: 5 });
  return encodeImageRecord({ label, id, image });
}

async function readDirectoryItems(
  imagesDir: string,
  annotationsDir: string,
  ctx: PackContext,
): Promise<AnnotatedImage[]> {
  const { storage, signal } = ctx;
  const [images, annotations] = await Promise.all([
    storage.list(folderPrefix(imagesDir), { signal }),
    storage.list(folderPrefix(annotationsDir), { signal }),
  ]);
  const pairs = pairImagesWithAnnotations(
    images.map((o) => o.url),
    annotations.map((o) => o.url),
    imagesDir,
    annotationsDir,
  );
  const items: AnnotatedImage[] = new Array(pairs.length);
  let next = 0;
  const readOne = async (): Promise<void> => {
    for (let i = next++; i < pairs.length; i = next++) {
      const { imageUrl, annotationUrl } = pairs[i]!;
      const text = (await storage.read(annotationUrl, { signal })).toString('utf8');
      const annotation = parseAnnotationFile(text, annotationUrl);
      if (basenameUrl(annotation.file) !== basenameUrl(imageUrl)) {
        const problem = `names ${JSON.stringify(annotation.file)}, but its image is ${imageUrl}`;
        throw new AnnotationError(annotationUrl, 'file', problem);
      }
      items[i] = { source: annotationUrl, annotation, imageUrl };
    }
  };
  await Promise.all(Array.from({ length: READ_CONCURRENCY }, readOne));
  return items;
}
