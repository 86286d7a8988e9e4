import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import sharp from 'sharp';
import { shortestFloat32 } from '../../cli/commands/inspect.js';
import { encodeDetectionLabel } from '../../shared/recordio/detection-label.js';
import { encodeImageRecord } from '../../shared/recordio/image-record.js';
import { encodeRecord } from '../../shared/recordio/record.js';
import { openRecordIOWriter } from '../../shared/recordio/writer.js';
import { createStorage } from '../../shared/storage/open-storage.js';
import { DOG, DOG_REC, dogListLabels, dogOnS3, tempDir } from '../helpers/recordio-fixtures.js';
import { runCli } from '../helpers/run-cli.js';

async function inspect(args: string[], env: NodeJS.ProcessEnv = {}) {
  const { code, stdout, stderr } = await runCli(['inspect', ...args], { env });
  const lines = stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l));
  return { code, lines, stderr };
}

async function expectedDogLines(keys: boolean) {
  const labels = await dogListLabels();
  return DOG.offsets.map((offset, i) => {
    const l = labels[i]!.map(shortestFloat32);
    const object = (k: number) => ({
      class: l[k],
      xmin: l[k + 1],
      ymin: l[k + 2],
      xmax: l[k + 3],
      ymax: l[k + 4],
    });
    return {
      index: i,
      key: keys ? i : null,
      offset,
      id: i,
      id2: 0,
      flag: 19,
      label: l,
      headerWidth: 4,
      objectWidth: 5,
      objects: [object(4), object(9), object(14)],
      image: { format: 'jpeg', width: DOG.width, height: DOG.height, bytes: DOG.imageBytes },
    };
  });
}

test('inspect prints the dog file as ORIGIN.md describes, in .idx order', async (t) => {
  const { code, lines, stderr } = await inspect([DOG_REC]);
  t.is(stderr, '');
  t.is(code, 0);
  t.deepEqual(lines, await expectedDogLines(true));
  t.deepEqual(lines[0].label.slice(0, 6), [4, 5, 768, 576, 0, 0.16927083]);
});

test('inspect scans sequentially when there is no .idx, and stops at --limit', async (t) => {
  const dir = await tempDir(t);
  const rec = path.join(dir, 'copy.rec');
  await fs.copyFile(DOG_REC, rec);
  const all = await inspect([rec]);
  t.is(all.code, 0);
  t.deepEqual(all.lines, await expectedDogLines(false));
  const two = await inspect([DOG_REC, '--limit', '2']);
  t.deepEqual(
    two.lines.map((l) => l.offset),
    DOG.offsets.slice(0, 2),
  );
  t.is((await inspect([DOG_REC, '--limit=0'])).lines.length, 0);
});

test('inspect shows scalar labels, difficult flags, non-detection labels and PNG sizes', async (t) => {
  const dir = await tempDir(t);
  const rec = path.join(dir, 'mixed.rec');
  const png = await sharp({ create: { width: 33, height: 21, channels: 3, background: '#808080' } })
    .png()
    .toBuffer();
  const writer = await openRecordIOWriter(rec, { storage: createStorage() });
  t.teardown(() => writer.abort());
  const objects = [{ class: 1, xmin: 0.1, ymin: 0.2, xmax: 0.3, ymax: 0.4, difficult: true }];
  await writer.append(
    0,
    encodeImageRecord({ label: encodeDetectionLabel(objects, { objectWidth: 6 }), id: 0, image: png }),
  );
  await writer.append(1, encodeImageRecord({ label: 3, id: 1, image: png }));
  await writer.append(2, encodeImageRecord({ label: [1, 2, 3], id: 2, image: Buffer.from('not an image') }));
  await writer.close();
  const { code, lines } = await inspect([rec]);
  t.is(code, 0);
  t.like(lines[0], {
    flag: 8,
    headerWidth: 2,
    objectWidth: 6,
    objects: [{ class: 1, xmin: 0.1, ymin: 0.2, xmax: 0.3, ymax: 0.4, difficult: true }],
    image: { format: 'png', width: 33, height: 21, bytes: png.length },
  });
  t.like(lines[1], { flag: 0, label: [3], headerWidth: null, objects: null });
  t.false('labelProblem' in lines[1]);
  t.like(lines[2], {
    label: [1, 2, 3],
    objects: null,
    labelProblem: 'header width A = 1 must be an integer >= 2',
    image: { format: null, width: null, bytes: 12 },
  });
  t.regex(lines[2].image.problem, /mixed\.rec record at byte \d+: not a JPEG or PNG image/);
});

test('inspect fails with the file and byte offset of a corrupt record, after printing the good ones', async (t) => {
  const dir = await tempDir(t);
  const rec = path.join(dir, 'corrupt.rec');
  const good = encodeRecord(encodeImageRecord({ label: 1, id: 0, image: Buffer.from('x') }));
  await fs.writeFile(rec, Buffer.concat([good, Buffer.from('BAD!BAD!')]));
  const { code, lines, stderr } = await inspect([rec]);
  t.is(code, 1);
  t.is(lines.length, 1);
  t.is(
    stderr,
    `ssd-cluster inspect: ${rec} at byte ${good.length}: bad magic 0x21444142, expected 0xced7230a\n`,
  );
});

test('inspect reports usage errors with exit code 2 and a missing file with exit code 1', async (t) => {
  const none = await inspect([]);
  t.is(none.code, 2);
  t.regex(none.stderr, /inspect: expected one SOURCE, got 0/);
  const badLimit = await inspect([DOG_REC, '--limit=-1']);
  t.is(badLimit.code, 2);
  t.regex(badLimit.stderr, /--limit: expected an integer >= 0, got '-1'/);
  const missing = await inspect(['/nonexistent/none.rec']);
  t.is(missing.code, 1);
  t.regex(missing.stderr, /\/nonexistent\/none\.rec: no such RecordIO file/);
});

test('inspect reads an s3:// source through --s3-endpoint', async (t) => {
  const { endpoint, url, env } = await dogOnS3(t);
  const { code, lines, stderr } = await inspect([url, '--s3-endpoint', endpoint], env);
  t.is(stderr, '');
  t.is(code, 0);
  t.deepEqual(lines, await expectedDogLines(true));
});
