import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { isClusterError, RecordIOError } from '../../../shared/errors.js';
import { createMemoryLogger } from '../../../shared/logging.js';
import { encodeDetectionLabel } from '../../../shared/recordio/detection-label.js';
import { encodeImageRecord } from '../../../shared/recordio/image-record.js';
import { openRecordIOWriter } from '../../../shared/recordio/writer.js';
import { createLocalStorage } from '../../../shared/storage/local.js';
import { createStorage } from '../../../shared/storage/open-storage.js';
import type { Storage } from '../../../shared/storage/storage.js';
import type { Dataset, OpenDatasetOptions } from '../../../worker/data/dataset.js';
import { openDataset } from '../../../worker/data/open-dataset.js';
import { DOG, DOG_IDX, DOG_REC, dogListLabels, tempDir } from '../../helpers/recordio-fixtures.js';
import { startS3Server } from '../../helpers/s3-server.js';
import { detectionPayload, encodeRgb, rectangleRgb, writeRec } from './fixtures.js';

type T = { teardown(fn: () => Promise<void>): void };

async function open(
  t: T,
  url: string,
  options: Partial<OpenDatasetOptions> & { storage?: Storage } = {},
): Promise<Dataset> {
  const storage = options.storage ?? createLocalStorage();
  const dataset = await openDataset(url, { ...options, storage });
  t.teardown(() => dataset.close());
  return dataset;
}

/** The three dog objects from the .lst (an independent copy of the label values). */
async function dogObjects(): Promise<number[][]> {
  const labels = (await dogListLabels())[0]!;
  const objects: number[][] = [];
  for (let at = 4; at < labels.length; at += 5) objects.push(labels.slice(at, at + 5));
  return objects;
}

test('a .rec dataset reads the im2rec dog file through its .idx, one record per sample', async (t) => {
  const dataset = await open(t, DOG_REC);
  t.is(dataset.size, 4);
  const sample = await dataset.read(1);
  t.is(sample.index, 1);
  t.is(sample.source, `${DOG_REC}@${DOG.offsets[1]}`);
  t.is(dataset.sourceOf(1), sample.source);
  t.is(sample.image.length, DOG.imageBytes);
  t.deepEqual([sample.image[0], sample.image[1]], [0xff, 0xd8]);
  const objects = await dogObjects();
  t.deepEqual(
    Array.from(sample.gt.classes),
    objects.map((o) => o[0]),
  );
  t.deepEqual(
    Array.from(sample.gt.boxes),
    objects.flatMap((o) => o.slice(1)),
  );
  t.deepEqual(Array.from(sample.gt.difficult), [0, 0, 0]);
});

test('a .rec dataset without an .idx scans once and finds the same samples', async (t) => {
  const dir = await tempDir(t);
  const url = path.join(dir, 'dog.rec');
  await fs.copyFile(DOG_REC, url);
  const [scanned, indexed] = [await open(t, url), await open(t, DOG_REC)];
  t.is(scanned.size, 4);
  for (let i = 0; i < 4; i++) {
    const [a, b] = [await scanned.read(i), await indexed.read(i)];
    t.is(a.source, `${url}@${DOG.offsets[i]}`);
    t.deepEqual(a.gt, b.gt);
    t.true(a.image.equals(b.image));
  }
});

test('sample i is the record on line i of the .idx, whatever the file order', async (t) => {
  const dir = await tempDir(t);
  const url = path.join(dir, 'dog.rec');
  await fs.copyFile(DOG_REC, url);
  const lines = (await fs.readFile(DOG_IDX, 'utf8')).trim().split('\n').reverse();
  await fs.writeFile(path.join(dir, 'dog.idx'), `${lines.join('\n')}\n`);
  const dataset = await open(t, url);
  t.deepEqual(
    [0, 1, 2, 3].map((i) => dataset.sourceOf(i)),
    [...DOG.offsets].reverse().map((o) => `${url}@${o}`),
  );
});

test('an invalid detection label is a RecordIOError naming the file and offset', async (t) => {
  const dir = await tempDir(t);
  const image = await encodeRgb(rectangleRgb(8, 8, [], [0, 0, 0], [9, 9, 9]), 8, 8);
  const inverted = { class: 0, xmin: 0.6, ymin: 0.1, xmax: 0.2, ymax: 0.5 };
  const { url, offsets } = await writeRec(dir, 'bad', [
    detectionPayload(0, image, [{ class: 0, xmin: 0.1, ymin: 0.1, xmax: 0.5, ymax: 0.5 }]),
    detectionPayload(1, image, [inverted]),
    detectionPayload(2, image, [{ class: 7, xmin: 0.1, ymin: 0.1, xmax: 0.5, ymax: 0.5 }]),
  ]);
  const dataset = await open(t, url, { numClasses: 5 });
  t.is((await dataset.read(0)).gt.classes.length, 1);
  const err = await t.throwsAsync(dataset.read(1), { instanceOf: RecordIOError });
  const where = `${url} at byte ${offsets[1]}: invalid detection label`;
  t.true(err!.message.startsWith(`${where}: object 0 is inverted: xmin 0.6`), err!.message);
  const classErr = await t.throwsAsync(dataset.read(2), { instanceOf: RecordIOError });
  t.regex(classErr!.message, /object 0 has class 7, but num_classes is 5/);
});

test('difficult flags of six-wide RecordIO objects reach the ground truth', async (t) => {
  const dir = await tempDir(t);
  const image = await encodeRgb(rectangleRgb(8, 8, [], [0, 0, 0], [9, 9, 9]), 8, 8);
  const objects = [
    { class: 1, xmin: 0.1, ymin: 0.1, xmax: 0.5, ymax: 0.5, difficult: true },
    { class: 0, xmin: 0.2, ymin: 0.3, xmax: 0.9, ymax: 0.8, difficult: false },
  ];
  const payload = encodeImageRecord({
    id: 0,
    image,
    label: encodeDetectionLabel(objects, { objectWidth: 6 }),
  });
  const { url } = await writeRec(dir, 'difficult', [payload]);
  const sample = await (await open(t, url)).read(0);
  t.deepEqual(Array.from(sample.gt.classes), [1, 0]);
  t.deepEqual(Array.from(sample.gt.difficult), [1, 0]);
});

test('a .rec with a damaged magic has the same size without its .idx: the damaged sample fails to read', async (t) => {
  const dir = await tempDir(t);
  const image = await encodeRgb(rectangleRgb(8, 8, [], [0, 0, 0], [9, 9, 9]), 8, 8);
  const payloads = [0, 1, 2, 3].map((id) => detectionPayload(id, image, []));
  const { url, offsets, bytes } = await writeRec(dir, 'corrupt', payloads, { index: false });
  bytes.writeUInt32LE(0xdeadbeef, offsets[1]!);
  await fs.writeFile(url, bytes);
  const logger = createMemoryLogger();
  const dataset = await open(t, url, { logger });
  t.is(dataset.size, 4, 'as many samples as an .idx would list');
  t.deepEqual(
    [0, 1, 2, 3].map((i) => dataset.sourceOf(i)),
    offsets.map((o) => `${url}@${o}`),
  );
  t.deepEqual(dataset.skippedAtOpen, [], 'a corrupt record is a sample, skipped when training reads it');
  t.like(logger.entries[0], { level: 'warn', fields: { source: `${url}@${offsets[1]}` } });
  const err = await t.throwsAsync(dataset.read(1), { instanceOf: RecordIOError });
  t.regex(err!.message, /magic/);
  t.is((await dataset.read(2)).index, 2);
  const strict = openDataset(url, { storage: createLocalStorage(), onBadRecord: 'fail' });
  const strictErr = await t.throwsAsync(strict, { instanceOf: RecordIOError });
  t.is(strictErr!.offset, offsets[1]!);
});

test('a .rec with a damaged length has the same samples with and without its .idx; only that one fails', async (t) => {
  const dir = await tempDir(t);
  const url = path.join(dir, 'damaged.rec');
  const writer = await openRecordIOWriter(url, { storage: createLocalStorage() });
  const offsets: number[] = [];
  for (let id = 0; id < 6; id++) {
    const image = await encodeRgb(rectangleRgb(8, 8, [], [id, 0, 0], [9, 9, 9]), 8, 8);
    offsets.push(writer.sizeBytes);
    await writer.append(id, detectionPayload(id, image, []));
  }
  await writer.close();
  const bytes = await fs.readFile(url);
  const victim = 2;
  const lrecAt = offsets[victim]! + 4;
  // One byte of the length bits flipped: the length now runs past the record, still inside the file.
  bytes[lrecAt + 1] = bytes[lrecAt + 1]! ^ 0x01;
  const claimedEnd = offsets[victim]! + 8 + (bytes.readUInt32LE(lrecAt) & (2 ** 29 - 1));
  t.true(claimedEnd > offsets[victim + 1]! && claimedEnd < bytes.length, `claimed end ${claimedEnd}`);
  await fs.writeFile(url, bytes);
  const indexed = await open(t, url);
  await fs.rm(path.join(dir, 'damaged.idx'));
  const scanned = await open(t, url);
  t.is(scanned.size, indexed.size);
  t.is(scanned.size, 6);
  for (let i = 0; i < 6; i++) {
    t.is(scanned.sourceOf(i), indexed.sourceOf(i));
    for (const dataset of [indexed, scanned]) {
      if (i === victim) await t.throwsAsync(dataset.read(i), { instanceOf: RecordIOError });
      else t.is((await dataset.read(i)).source, `${url}@${offsets[i]}`);
    }
  }
});

test('a .rec dataset on S3 reads each sample with a ranged GET', async (t) => {
  const server = await startS3Server(t);
  const storage = createStorage({ s3Endpoint: server.endpoint, s3Credentials: server.credentials });
  t.teardown(() => storage.close());
  const url = `s3://${server.bucket}/train/dog.rec`;
  await storage.write(url, await fs.readFile(DOG_REC));
  await storage.write(`s3://${server.bucket}/train/dog.idx`, await fs.readFile(DOG_IDX));
  const dataset = await open(t, url, { storage });
  t.is(dataset.size, 4);
  const before = server.requests.length;
  const sample = await dataset.read(2);
  t.is(sample.source, `${url}@${DOG.offsets[2]}`);
  const gets = server.requests.slice(before).filter((r) => r.method === 'GET');
  t.true(gets.length >= 1);
  t.true(
    gets.every(
      (r) => typeof r.headers.range === 'string' && r.headers.range.startsWith(`bytes=${DOG.offsets[2]}-`),
    ),
    JSON.stringify(gets.map((r) => r.headers.range)),
  );
  const local = await open(t, DOG_REC);
  t.deepEqual(sample.gt, (await local.read(2)).gt);
});

test('reading outside the data set is an INTERNAL error naming the range', async (t) => {
  const dataset = await open(t, DOG_REC);
  const err = await t.throwsAsync(dataset.read(4));
  t.true(isClusterError(err, 'INTERNAL'));
  t.regex(err!.message, /sample 4 is outside 0\.\.3/);
});
