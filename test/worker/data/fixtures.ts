import fs from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { type Deferred, deferred, raceAbort } from '../../../shared/abort.js';
import { type DetectionObjectInput, encodeDetectionLabel } from '../../../shared/recordio/detection-label.js';
import { encodeImageRecord } from '../../../shared/recordio/image-record.js';
import { formatIndexFile } from '../../../shared/recordio/index-file.js';
import { encodeRecord } from '../../../shared/recordio/record.js';
import type { Dataset, DatasetSample } from '../../../worker/data/dataset.js';
import { type GroundTruth, packGroundTruth } from '../../../worker/data/ground-truth.js';

/** Fixtures for the data pipeline tests, built in code: images by sharp, RecordIO by the shared encoders. */
export type Rgb = [number, number, number];

export interface Rect {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** Raw RGB of a width x height image of colour `bg` with solid rectangles. */
export function rectangleRgb(
  width: number,
  height: number,
  rects: readonly Rect[],
  fg: Rgb,
  bg: Rgb,
): Buffer {
  const pixels = Buffer.alloc(width * height * 3);
  for (let i = 0; i < width * height; i++) pixels.set(bg, 3 * i);
  for (const r of rects) {
    for (let y = r.y; y < r.y + r.height; y++) {
      for (let x = r.x; x < r.x + r.width; x++) pixels.set(fg, 3 * (y * width + x));
    }
  }
  return pixels;
}

export async function encodeRgb(
  pixels: Buffer,
  width: number,
  height: number,
  format: 'png' | 'jpeg' = 'png',
): Promise<Buffer> {
  const image = sharp(pixels, { raw: { width, height, channels: 3 } });
  return format === 'png' ? image.png().toBuffer() : image.jpeg({ quality: 90 }).toBuffer();
}

/** A PNG with one solid rectangle and the matching (normalised) ground truth. */
export async function rectangleSample(
  width: number,
  height: number,
  rect: Rect,
  index = 0,
  colours: { fg: Rgb; bg: Rgb } = { fg: [255, 255, 255], bg: [0, 0, 0] },
): Promise<DatasetSample> {
  const image = await encodeRgb(rectangleRgb(width, height, [rect], colours.fg, colours.bg), width, height);
  return { index, image, gt: rectGroundTruth(width, height, [rect]), source: `rect-${index}.png` };
}

export function rectGroundTruth(width: number, height: number, rects: readonly Rect[]): GroundTruth {
  return packGroundTruth(
    rects.map((r, i) => ({
      class: i,
      xmin: r.x / width,
      ymin: r.y / height,
      xmax: (r.x + r.width) / width,
      ymax: (r.y + r.height) / height,
    })),
  );
}

/** An image record payload as im2rec --pack-label writes it (header [A=4, B=5, width, height]). */
export function detectionPayload(
  id: number,
  image: Uint8Array,
  objects: readonly DetectionObjectInput[],
  size: [number, number] = [0, 0],
): Buffer {
  return encodeImageRecord({ id, image, label: encodeDetectionLabel(objects, { header: size }) });
}

/** Writes `name.rec` (and `name.idx` unless index is false) into `dir`; returns the URL and offsets. */
export async function writeRec(
  dir: string,
  name: string,
  payloads: readonly Uint8Array[],
  options: { index?: boolean } = {},
): Promise<{ url: string; offsets: number[]; bytes: Buffer }> {
  const records = payloads.map((p) => encodeRecord(p));
  const offsets: number[] = [];
  let at = 0;
  for (const r of records) {
    offsets.push(at);
    at += r.length;
  }
  const bytes = Buffer.concat(records);
  const url = path.join(dir, `${name}.rec`);
  await fs.writeFile(url, bytes);
  if (options.index !== false) {
    const idx = formatIndexFile(offsets.map((offset, key) => ({ key, offset })));
    await fs.writeFile(path.join(dir, `${name}.idx`), idx);
  }
  return { url, offsets, bytes };
}

/**
 * A Dataset whose read(i) waits until the test opens gate i (or the read's signal aborts), recording
 * the order of reads and which reads saw an abort.
 */
export interface GatedDataset extends Dataset {
  gate(index: number): Deferred<void>;
  readsStarted: number[];
  readsAborted: number[];
  /** Called at the start of every read, for invariants. */
  onRead?: (index: number) => void;
}

export async function gatedDataset(
  t: { teardown(fn: () => Promise<void>): void },
  size: number,
): Promise<GatedDataset> {
  const template = await rectangleSample(24, 24, { x: 4, y: 4, width: 10, height: 12 });
  const gates = new Map<number, Deferred<void>>();
  const gate = (i: number) => {
    if (!gates.has(i)) gates.set(i, deferred<void>());
    return gates.get(i)!;
  };
  const dataset: GatedDataset = {
    url: 'gated://test',
    size,
    skippedAtOpen: [],
    readsStarted: [],
    readsAborted: [],
    gate,
    sourceOf: (i) => `gated-${i}.png`,
    async read(index, signal): Promise<DatasetSample> {
      dataset.readsStarted.push(index);
      dataset.onRead?.(index);
      try {
        await raceAbort(gate(index).promise, signal);
      } catch (err) {
        dataset.readsAborted.push(index);
        throw err;
      }
      return { ...template, index, source: `gated-${index}.png` };
    },
    close: async () => {},
    [Symbol.asyncDispose]: async () => {},
  };
  t.teardown(async () => {
    for (const g of gates.values()) g.resolve();
  });
  return dataset;
}
