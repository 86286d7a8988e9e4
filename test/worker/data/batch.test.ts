import fs from 'node:fs/promises';
import { setImmediate } from 'node:timers/promises';
import test from 'ava';
import { isClusterError, StorageError } from '../../../shared/errors.js';
import { createMemoryLogger } from '../../../shared/logging.js';
import { encodeImageRecord } from '../../../shared/recordio/image-record.js';
import { createLocalStorage } from '../../../shared/storage/local.js';
import { type LoadBatchOptions, loadBatch } from '../../../worker/data/batch.js';
import type { Dataset } from '../../../worker/data/dataset.js';
import { openDataset } from '../../../worker/data/open-dataset.js';
import { prepareSample } from '../../../worker/data/prepare.js';
import { tempDir } from '../../helpers/recordio-fixtures.js';
import { detectionPayload, encodeRgb, gatedDataset, rectangleRgb, writeRec } from './fixtures.js';

type T = { teardown(fn: () => Promise<void>): void };
const SIZE = 32;
const options: LoadBatchOptions = { imageShape: SIZE, train: true, seed: 3, epoch: 2 };

/**
 * A .rec with .idx holding: 0 good, 1 bad magic, 2 truncated JPEG, 3 unparsable label (B = 3), 4 good.
 */
async function corruptRec(t: T): Promise<{ dataset: Dataset; url: string; offsets: number[] }> {
  const dir = await tempDir(t);
  const pixels = rectangleRgb(48, 32, [{ x: 10, y: 8, width: 20, height: 12 }], [250, 250, 250], [5, 5, 5]);
  const jpeg = await encodeRgb(pixels, 48, 32, 'jpeg');
  const object = { class: 0, xmin: 10 / 48, ymin: 8 / 32, xmax: 30 / 48, ymax: 20 / 32 };
  const { url, offsets, bytes } = await writeRec(dir, 'mixed', [
    detectionPayload(0, jpeg, [object]),
    detectionPayload(1, jpeg, [object]),
    detectionPayload(2, jpeg.subarray(0, jpeg.length >> 1), [object]),
    encodeImageRecord({ id: 3, image: jpeg, label: [2, 3, 0, 0.1, 0.2] }),
    detectionPayload(4, jpeg, [object]),
  ]);
  bytes.writeUInt32LE(0x12345678, offsets[1]!);
  await fs.writeFile(url, bytes);
  const dataset = await openDataset(url, { storage: createLocalStorage() });
  t.teardown(() => dataset.close());
  return { dataset, url, offsets };
}

test('loadBatch skips corrupt records, names file and offset, and returns the good samples in order', async (t) => {
  const { dataset, url, offsets } = await corruptRec(t);
  const logger = createMemoryLogger();
  const batch = await loadBatch(dataset, [4, 1, 2, 3, 0], { ...options, logger });
  t.deepEqual(batch.indices, [4, 0]);
  t.deepEqual(
    batch.skipped.map((s) => [s.index, s.source]),
    [1, 2, 3].map((i) => [i, `${url}@${offsets[i]}`]),
  );
  t.regex(batch.skipped[0]!.reason, /at byte \d+: .*magic/);
  t.regex(batch.skipped[1]!.reason, /cannot decode the jpeg image/);
  t.regex(batch.skipped[2]!.reason, /unparsable detection label/);
  t.deepEqual(
    logger.entries.map((e) => [e.level, e.msg, e.fields.source]),
    batch.skipped.map((s) => ['warn', 'skipped a bad record', s.source]),
  );
  t.is(batch.images.length, 2 * SIZE * SIZE * 3);
  t.is(batch.gt.length, 2);
  t.deepEqual(batch.originalSizes, [
    [48, 32],
    [48, 32],
  ]);
  const slot = SIZE * SIZE * 3;
  for (const [at, index] of batch.indices.entries()) {
    const alone = await prepareSample(await dataset.read(index), options);
    t.deepEqual(batch.images.subarray(at * slot, (at + 1) * slot), alone.pixels, `sample ${index}`);
    t.deepEqual(batch.gt[at], alone.gt);
  }
});

/** `dataset` with its reads done by `read` (a class instance's methods do not spread, so listed here). */
function withRead(dataset: Dataset, read: Dataset['read']): Dataset {
  return {
    ...dataset,
    url: dataset.url,
    size: dataset.size,
    skippedAtOpen: [],
    sourceOf: (i) => dataset.sourceOf(i),
    read,
  };
}

test("loadBatch with onBadRecord 'fail' throws the corrupt record's error", async (t) => {
  const { dataset, url } = await corruptRec(t);
  const err = await t.throwsAsync(loadBatch(dataset, [0, 2, 4], { ...options, onBadRecord: 'fail' }));
  t.true(isClusterError(err, 'IMAGE'));
  t.true(err!.message.startsWith(`${url}@`), err!.message);
});

test('loadBatch throws storage failures even when skipping bad records', async (t) => {
  const { dataset } = await corruptRec(t);
  const failing = withRead(dataset, async (i, signal) => {
    if (i === 4) throw new StorageError(dataset.url, 'connection reset');
    return dataset.read(i, signal);
  });
  const err = await t.throwsAsync(loadBatch(failing, [0, 4], options), { instanceOf: StorageError });
  t.regex(err!.message, /connection reset/);
});

test('loadBatch rejects with the abort reason when its signal aborts', async (t) => {
  const { dataset } = await corruptRec(t);
  const reason = new Error('stop');
  const err = await t.throwsAsync(
    loadBatch(dataset, [0, 4], { ...options, signal: AbortSignal.abort(reason) }),
  );
  t.is(err, reason);
});

test('loadBatch reads every sample of the batch at once, not a few at a time', async (t) => {
  const dataset = await gatedDataset(t, 8);
  const indices = [7, 6, 5, 4, 3, 2, 1, 0];
  const loading = loadBatch(dataset, indices, options);
  await setImmediate();
  t.deepEqual(dataset.readsStarted, indices);
  for (const i of indices) dataset.gate(i).resolve();
  t.deepEqual((await loading).indices, indices);
});

test('loadBatch decodes reads started elsewhere and does not read those samples again', async (t) => {
  const { dataset } = await corruptRec(t);
  const reads: number[] = [];
  const counting = withRead(dataset, (i, signal) => {
    reads.push(i);
    return dataset.read(i, signal);
  });
  const started = [4, 1, 0].map((i) => counting.read(i));
  reads.length = 0;
  const batch = await loadBatch(counting, [4, 1, 0], { ...options, reads: started });
  t.deepEqual(reads, []);
  const plain = await loadBatch(dataset, [4, 1, 0], options);
  t.deepEqual(batch.indices, plain.indices);
  t.deepEqual(batch.images, plain.images);
  t.deepEqual(
    batch.skipped.map((s) => s.source),
    plain.skipped.map((s) => s.source),
  );
});

test('loadBatch refuses started reads that do not match its samples', async (t) => {
  const { dataset } = await corruptRec(t);
  const err = await t.throwsAsync(loadBatch(dataset, [0, 4], { ...options, reads: [dataset.read(0)] }));
  t.true(isClusterError(err, 'INTERNAL'));
  t.regex(err!.message, /1 reads for 2 samples/);
});
