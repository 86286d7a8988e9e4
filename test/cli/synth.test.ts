import fs from 'node:fs/promises';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import type { Logger } from '../../shared/logging.js';
import { noopLogger } from '../../shared/logging.js';
import { parseDetectionLabel } from '../../shared/recordio/detection-label.js';
import { readImageInfo } from '../../shared/recordio/image-info.js';
import { parseImageRecord } from '../../shared/recordio/image-record.js';
import { openRecordIO } from '../../shared/recordio/reader.js';
import { createLocalStorage } from '../../shared/storage/local.js';
import { createStorage } from '../../shared/storage/open-storage.js';
import { compileSynthOptions, synthesizeImage } from '../../shared/synth/synth-image.js';
import { tempDir } from '../helpers/recordio-fixtures.js';
import { runCli } from '../helpers/run-cli.js';
import { startS3Server } from '../helpers/s3-server.js';

/** Every record of a .rec (in .idx order) as key, header id, detection label and image size. */
async function readRecords(t: ExecutionContext, url: string) {
  const storage = createLocalStorage();
  const source = await openRecordIO(url, { storage });
  t.teardown(() => source.close());
  const out = [];
  for (const entry of source.index ?? []) {
    const { payload, offset } = await source.readByKey(entry.key);
    const record = parseImageRecord(payload, { source: url, offset });
    const label = parseDetectionLabel(record.labels);
    out.push({ key: entry.key, id: record.id, label, image: readImageInfo(record.image), payload });
  }
  return out;
}

test('synth writes both splits as JPEG detection records, classes.json and a JSON summary', async (t) => {
  const dir = await tempDir(t);
  const run = await runCli([
    'synth',
    '--out',
    dir,
    '--train',
    '6',
    '--validation',
    '3',
    '--image-size',
    '64',
    '--classes',
    '3',
  ]);
  t.is(run.code, 0, run.stderr);
  const summary = JSON.parse(run.stdout);
  t.like(summary, { out: dir, train: 6, validation: 3, classes: 3, imageSize: 64, seed: 0 });
  t.true(summary.seconds > 0);
  t.deepEqual(JSON.parse(await fs.readFile(path.join(dir, 'classes.json'), 'utf8')), [
    'circle',
    'square',
    'triangle',
  ]);
  t.deepEqual((await fs.readdir(dir)).sort(), [
    'classes.json',
    'train.idx',
    'train.rec',
    'validation.idx',
    'validation.rec',
  ]);
  const options = compileSynthOptions({ imageSize: 64, classCount: 3 });
  for (const [split, count] of [
    ['train', 6],
    ['validation', 3],
  ] as const) {
    const records = await readRecords(t, path.join(dir, `${split}.rec`));
    t.deepEqual(
      records.map((r) => r.key),
      Array.from({ length: count }, (_, i) => i),
    );
    records.forEach((r, i) => {
      t.is(r.id, i);
      t.deepEqual(r.image, { format: 'jpeg', width: 64, height: 64 });
      t.like(r.label, { headerWidth: 2, objectWidth: 6 });
      // The label is what the rasteriser measured, rounded to float32.
      const drawn = synthesizeImage(options, split, i).objects;
      t.deepEqual(
        r.label!.objects.map(({ class: c, xmin, ymin, xmax, ymax, difficult }) => [
          c,
          xmin,
          ymin,
          xmax,
          ymax,
          difficult,
        ]),
        drawn.map((o) => [o.classId, ...[o.xmin, o.ymin, o.xmax, o.ymax].map(Math.fround), o.difficult]),
      );
    });
  }
});

test('synth is byte-identical for the same seed, and image i does not depend on how many are made', async (t) => {
  const [a, b, c, other] = await Promise.all([tempDir(t), tempDir(t), tempDir(t), tempDir(t)]);
  const flags = ['--validation', '0', '--image-size', '48'];
  for (const [dir, train, seed] of [
    [a, '5', '3'],
    [b, '5', '3'],
    [c, '12', '3'],
    [other, '5', '4'],
  ] as const) {
    const run = await runCli(['synth', '--out', dir, '--train', train, '--seed', seed, ...flags]);
    t.is(run.code, 0, run.stderr);
  }
  const recA = await fs.readFile(path.join(a, 'train.rec'));
  t.deepEqual(recA, await fs.readFile(path.join(b, 'train.rec')));
  t.deepEqual(await fs.readFile(path.join(a, 'train.idx')), await fs.readFile(path.join(b, 'train.idx')));
  // Five records written as part of twelve are the same bytes at the same offsets.
  t.deepEqual((await fs.readFile(path.join(c, 'train.rec'))).subarray(0, recA.length), recA);
  t.notDeepEqual(await fs.readFile(path.join(other, 'train.rec')), recA);
});

test('synth rejects a bad flag with exit code 2 naming it, and requires --out', async (t) => {
  const dir = await tempDir(t);
  const bad = await runCli(['synth', '--out', dir, '--classes', '9']);
  t.is(bad.code, 2);
  t.regex(bad.stderr, /--classes/);
  const notInt = await runCli(['synth', '--out', dir, '--train', 'many']);
  t.is(notInt.code, 2);
  t.regex(notInt.stderr, /--train/);
  const missing = await runCli(['synth']);
  t.is(missing.code, 2);
  t.regex(missing.stderr, /--out/);
  t.deepEqual(await fs.readdir(dir), []);
});

test('synth aborted while drawing leaves nothing behind in the output directory', async (t) => {
  const dir = await tempDir(t);
  const controller = new AbortController();
  // Abort as soon as the train split is drawn: train is complete but unpublished, validation half-made.
  const logger: Logger = {
    ...noopLogger,
    info: (msg, fields) => {
      if (msg === 'synth split drawn' && fields?.split === 'train') controller.abort(new Error('stop'));
    },
    child: () => logger,
  };
  const run = await runCli(
    ['synth', '--out', dir, '--train', '4', '--validation', '4', '--image-size', '32'],
    {
      signal: controller.signal,
      logger,
    },
  );
  t.is(run.code, 130); // stopped by its signal, as by SIGINT
  t.regex(run.stderr, /stop/);
  t.deepEqual(await fs.readdir(dir), []);
});

test('synth writes the data set under an s3:// prefix', async (t) => {
  const server = await startS3Server(t);
  const out = `s3://${server.bucket}/data/synth`;
  const run = await runCli(
    ['synth', '--out', out, '--train', '3', '--validation', '2', '--image-size', '32'],
    {
      env: server.env,
    },
  );
  t.is(run.code, 0, run.stderr);
  const storage = createStorage({ env: server.env });
  t.teardown(() => storage.close());
  const listed = await storage.list(`${out}/`);
  t.deepEqual(
    listed.map((o) => o.url.slice(out.length + 1)),
    ['classes.json', 'train.idx', 'train.rec', 'validation.idx', 'validation.rec'],
  );
  const source = await openRecordIO(`${out}/validation.rec`, { storage });
  t.teardown(() => source.close());
  t.deepEqual(
    source.index?.map((e) => e.key),
    [0, 1],
  );
});
