/**
 * The edge of the synthetic data set: draws images (pure, synth-image.ts), encodes them as JPEG with
 * sharp and streams them into RecordIO files:
 *
 *   OUT/train.rec + .idx, OUT/validation.rec + .idx, OUT/classes.json (["circle", ...])
 *
 * Record i of a split has key i, IRHeader id i, and the label [2, 6, (class, xmin, ymin, xmax, ymax,
 * difficult) per object]: B = 6 so that heavily occluded objects can be flagged difficult (the reader
 * and VOC07 mAP handle it; SPEC part 1, 3.4).
 *
 * Ordering: drawing runs on this thread while up to ENCODE_WINDOW JPEG encodes run on libuv threads;
 * records are appended in index order. Both splits are written under temporary names and published
 * together at the end (train, validation, then classes.json), so a failure or an abort while drawing
 * publishes nothing; only a failure during those last steps can leave some of the files (never a
 * half-written one).
 */
import sharp from 'sharp';
import type { Logger } from '../logging.js';
import { noopLogger } from '../logging.js';
import { encodeDetectionLabel } from '../recordio/detection-label.js';
import { encodeImageRecord } from '../recordio/image-record.js';
import { openRecordIOWriter, type RecordIOWriter } from '../recordio/writer.js';
import type { Storage } from '../storage/storage.js';
import { joinUrl } from '../storage/url.js';
import { produceInOrder } from './in-order.js';
import {
  SYNTH_SPLITS,
  type SynthOptions,
  type SynthSplit,
  synthClassNames,
  synthesizeImage,
  toLabelObjects,
} from './synth-image.js';

/** JPEG quality of synthetic images (libjpeg scale; sharp's default is 80). */
export const SYNTH_JPEG_QUALITY = 90;
/** JPEG encodes in flight while the next images are drawn. */
const ENCODE_WINDOW = 4;

export interface WriteSynthContext {
  storage: Storage;
  signal?: AbortSignal;
  logger?: Logger;
}

export interface SynthDatasetUrls {
  train: string;
  validation: string;
  classes: string;
}

export function synthDatasetUrls(out: string): SynthDatasetUrls {
  return {
    train: joinUrl(out, 'train.rec'),
    validation: joinUrl(out, 'validation.rec'),
    classes: joinUrl(out, 'classes.json'),
  };
}

/** One RecordIO payload (IRHeader + label + JPEG) for image `index` of `split`. */
export async function encodeSynthRecord(
  options: Readonly<SynthOptions>,
  split: SynthSplit,
  index: number,
): Promise<Buffer> {
  const image = synthesizeImage(options, split, index);
  const jpeg = await sharp(image.pixels, { raw: { width: image.width, height: image.height, channels: 3 } })
    .jpeg({ quality: SYNTH_JPEG_QUALITY })
    .toBuffer();
  const label = encodeDetectionLabel(toLabelObjects(image.objects), { objectWidth: 6 });
  return encodeImageRecord({ label, id: index, image: jpeg });
}

/** Writes the whole data set under `out` (a directory path or s3:// prefix). */
export async function writeSynthDataset(
  out: string,
  options: Readonly<SynthOptions>,
  ctx: WriteSynthContext,
): Promise<SynthDatasetUrls> {
  const urls = synthDatasetUrls(out);
  const logger = ctx.logger ?? noopLogger;
  const writers: RecordIOWriter[] = [];
  try {
    for (const split of SYNTH_SPLITS) {
      const writer = await openRecordIOWriter(urls[split], { storage: ctx.storage, signal: ctx.signal });
      writers.push(writer);
      await appendSplit(writer, options, split, ctx.signal);
      logger.info('synth split drawn', { split, images: options[split], bytes: writer.sizeBytes });
    }
    for (const writer of writers) await writer.close();
    const classes = JSON.stringify(synthClassNames(options.classCount));
    await ctx.storage.write(urls.classes, Buffer.from(`${classes}\n`), {
      signal: ctx.signal,
      contentType: 'application/json',
    });
    return urls;
  } catch (err) {
    await Promise.allSettled(writers.map((w) => w.abort()));
    throw err;
  }
}

/** Appends images 0..n-1 in order, drawing the next ones while earlier ones are JPEG-encoded. */
function appendSplit(
  writer: RecordIOWriter,
  options: Readonly<SynthOptions>,
  split: SynthSplit,
  signal: AbortSignal | undefined,
): Promise<void> {
  return produceInOrder(
    options[split],
    ENCODE_WINDOW,
    (index) => encodeSynthRecord(options, split, index),
    (payload, index) => writer.append(index, payload),
    signal,
  );
}
