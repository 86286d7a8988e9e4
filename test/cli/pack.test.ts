import fs from 'node:fs/promises';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import sharp from 'sharp';
import { parseDetectionLabel } from '../../shared/recordio/detection-label.js';
import { readImageInfo } from '../../shared/recordio/image-info.js';
import { parseImageRecord } from '../../shared/recordio/image-record.js';
import { openRecordIO } from '../../shared/recordio/reader.js';
import { createLocalStorage } from '../../shared/storage/local.js';
import { tempDir } from '../helpers/recordio-fixtures.js';
import { runCli } from '../helpers/run-cli.js';

const runPack = (argv: string[]) => runCli(['pack', ...argv]);

interface Fixture {
  name: string;
  format: 'jpeg' | 'png';
  width: number;
  height: number;
  /** [class_id, left, top, width, height] in pixels. */
  boxes: [number, number, number, number, number][];
}

/** Deliberately not in name order, and with a PNG among JPEGs. */
const FIXTURES: Fixture[] = [
  { name: 'b-street', format: 'png', width: 50, height: 70, boxes: [[1, 5, 10, 20, 30]] },
  {
    name: 'a-park',
    format: 'jpeg',
    width: 80,
    height: 60,
    boxes: [
      [0, 8, 6, 40, 30],
      [2, 60, 30, 20, 30],
    ],
  },
  { name: 'c-field', format: 'jpeg', width: 64, height: 64, boxes: [[0, 0, 0, 64, 64]] },
];

function annotationJson(f: Fixture, file = `${f.name}.${f.format === 'png' ? 'png' : 'jpg'}`) {
  return {
    file,
    image_size: [{ width: f.width, height: f.height, depth: 3 }],
    annotations: f.boxes.map(([class_id, left, top, width, height]) => ({
      class_id,
      left,
      top,
      width,
      height,
    })),
    categories: [{ class_id: 1, name: 'car' }],
  };
}

async function imageBytes(f: Fixture): Promise<Buffer> {
  const img = sharp({
    create: { width: f.width, height: f.height, channels: 3, background: { r: 200, g: 90, b: 30 } },
  });
  return f.format === 'png' ? img.png().toBuffer() : img.jpeg().toBuffer();
}

/** images/ and annotations/ folders for the fixtures; returns the folder paths. */
async function writeFixtures(t: ExecutionContext, fixtures = FIXTURES) {
  const root = await tempDir(t);
  const images = path.join(root, 'images');
  const annotations = path.join(root, 'annotations');
  await fs.mkdir(images);
  await fs.mkdir(annotations);
  for (const f of fixtures) {
    const json = annotationJson(f);
    await fs.writeFile(path.join(images, json.file), await imageBytes(f));
    await fs.writeFile(path.join(annotations, `${f.name}.json`), JSON.stringify(json));
  }
  return { root, images, annotations };
}

async function readRecords(t: ExecutionContext, url: string) {
  const source = await openRecordIO(url, { storage: createLocalStorage() });
  t.teardown(() => source.close());
  const out = [];
  for (const entry of source.index ?? []) {
    const { payload, offset } = await source.readByKey(entry.key);
    const record = parseImageRecord(payload, { source: url, offset });
    out.push({
      key: entry.key,
      id: record.id,
      labels: Array.from(record.labels!),
      image: Buffer.from(record.image),
    });
  }
  return out;
}

/** The label SPEC part 1 section 2 prescribes: [2, 5] then (class, left/W, top/H, right/W, bottom/H), as float32. */
function expectedLabel(f: Fixture): number[] {
  const objects = f.boxes.flatMap(([c, l, t, w, h]) => [
    c,
    l / f.width,
    t / f.height,
    (l + w) / f.width,
    (t + h) / f.height,
  ]);
  return [2, 5, ...objects].map(Math.fround);
}

const byName = [...FIXTURES].sort((a, b) => a.name.localeCompare(b.name));

test('pack turns images and SageMaker JSON into normalised [2, 5] records keyed in name order', async (t) => {
  const { images, annotations } = await writeFixtures(t);
  const out = path.join(await tempDir(t), 'set');
  const run = await runPack(['--images', images, '--annotations', annotations, '--out', out]);
  t.is(run.code, 0, run.stderr);
  t.like(JSON.parse(run.stdout), { out, rec: `${out}.rec`, idx: `${out}.idx`, records: 3, classCount: 3 });
  t.deepEqual(JSON.parse(await fs.readFile(`${out}.classes.json`, 'utf8')), ['class_0', 'car', 'class_2']);
  const records = await readRecords(t, `${out}.rec`);
  t.deepEqual(
    records.map((r) => [r.key, r.id]),
    [
      [0, 0],
      [1, 1],
      [2, 2],
    ],
  );
  for (const [i, f] of byName.entries()) {
    t.deepEqual(records[i]!.labels, expectedLabel(f), f.name);
    t.true(parseDetectionLabel(records[i]!.labels)!.objects.length === f.boxes.length);
    // Without --resize the file's bytes are stored unchanged.
    t.deepEqual(records[i]!.image, await fs.readFile(path.join(images, annotationJson(f).file)));
  }
});

test('pack --resize re-encodes each image as JPEG with its shorter side PX and keeps the boxes', async (t) => {
  const { images, annotations } = await writeFixtures(t);
  const out = path.join(await tempDir(t), 'small');
  const run = await runPack([
    '--images',
    images,
    '--annotations',
    annotations,
    '--out',
    out,
    '--resize',
    '30',
  ]);
  t.is(run.code, 0, run.stderr);
  const records = await readRecords(t, `${out}.rec`);
  // a-park 80x60 -> 40x30; b-street 50x70 -> 30x42 (floor(70 * 30 / 50)); c-field 64x64 -> 30x30.
  t.deepEqual(
    records.map((r) => readImageInfo(r.image)),
    [
      { format: 'jpeg', width: 40, height: 30 },
      { format: 'jpeg', width: 30, height: 42 },
      { format: 'jpeg', width: 30, height: 30 },
    ],
  );
  t.deepEqual(
    records.map((r) => r.labels),
    byName.map(expectedLabel),
  );
});

test('pack reads a SageMaker augmented manifest in line order, with class names from its class-map', async (t) => {
  const { root, images } = await writeFixtures(t);
  const lines = FIXTURES.map((f, i) => {
    const { image_size, annotations, file } = annotationJson(f);
    // Relative (to the manifest's folder) and absolute source-refs both work.
    const ref = i === 0 ? path.join(images, file) : `images/${file}`;
    return JSON.stringify({
      'source-ref': ref,
      'bounding-box': { image_size, annotations },
      'bounding-box-metadata': { 'class-map': { '0': 'person', '1': 'car', '2': 'dog' } },
    });
  });
  await fs.writeFile(path.join(root, 'train.manifest'), `${lines.join('\n')}\n`);
  const out = path.join(await tempDir(t), 'gt');
  const run = await runPack(['--manifest', path.join(root, 'train.manifest'), '--out', out]);
  t.is(run.code, 0, run.stderr);
  t.deepEqual(JSON.parse(await fs.readFile(`${out}.classes.json`, 'utf8')), ['person', 'car', 'dog']);
  const records = await readRecords(t, `${out}.rec`);
  t.deepEqual(
    records.map((r) => r.labels),
    FIXTURES.map(expectedLabel),
  );
});

test('pack rejects conflicting input flags with exit code 2', async (t) => {
  const both = await runPack(['--images', 'a', '--manifest', 'm', '--out', 'x']);
  t.is(both.code, 2);
  t.regex(both.stderr, /exactly one of --images DIR or --manifest FILE/);
  const neither = await runPack(['--out', 'x']);
  t.is(neither.code, 2);
  const badResize = await runPack(['--images', 'a', '--out', 'x', '--resize', '0']);
  t.is(badResize.code, 2);
  t.regex(badResize.stderr, /--resize/);
});

/** Each case spoils the fixtures; pack must fail naming the file and field and write nothing. */
const rejects = test.macro({
  async exec(t, spoil: (dirs: { images: string; annotations: string }) => Promise<void>, expected: RegExp) {
    const dirs = await writeFixtures(t);
    await spoil(dirs);
    const outDir = await tempDir(t);
    const run = await runPack([
      '--images',
      dirs.images,
      '--annotations',
      dirs.annotations,
      '--out',
      path.join(outDir, 'set'),
    ]);
    t.is(run.code, 1);
    t.regex(run.stderr, expected);
    t.deepEqual(await fs.readdir(outDir), []);
  },
  title: (title) => `pack fails on ${title} naming the file and field, leaving no output`,
});

async function editJson(dir: string, name: string, edit: (json: ReturnType<typeof annotationJson>) => void) {
  const file = path.join(dir, `${name}.json`);
  const json = JSON.parse(await fs.readFile(file, 'utf8'));
  edit(json);
  await fs.writeFile(file, JSON.stringify(json));
}

test(
  'a box of zero width',
  rejects,
  (d) => editJson(d.annotations, 'c-field', (j) => (j.annotations[0]!.width = 0)),
  /c-field\.json: annotations\[0\]\.width: must be > 0/,
);
test(
  'a fractional class id',
  rejects,
  (d) => editJson(d.annotations, 'a-park', (j) => (j.annotations[1]!.class_id = 1.5)),
  /a-park\.json: annotations\[1\]\.class_id: expected an integer/,
);
test(
  'a grey-scale depth',
  rejects,
  (d) => editJson(d.annotations, 'a-park', (j) => (j.image_size[0]!.depth = 1)),
  /a-park\.json: image_size\[0\]\.depth: only 3-channel/,
);
test(
  'a box far outside the image',
  rejects,
  (d) => editJson(d.annotations, 'b-street', (j) => (j.annotations[0]!.top = 60)),
  /b-street\.json: annotations\[0\]\.height: top \+ height = 90 exceeds the image's height 70/,
);
test(
  'a missing image_size',
  rejects,
  (d) => editJson(d.annotations, 'b-street', (j) => Reflect.deleteProperty(j, 'image_size')),
  /b-street\.json: image_size: expected an array, got missing/,
);
test(
  'an image without boxes',
  rejects,
  (d) => editJson(d.annotations, 'c-field', (j) => (j.annotations = [])),
  /c-field\.json: annotations: no objects/,
);
test(
  'class ids with a gap',
  rejects,
  (d) => editJson(d.annotations, 'a-park', (j) => (j.annotations[1]!.class_id = 5)),
  /a-park\.json: annotations\[1\]\.class_id: class ids must be consecutive from 0, but 2, 3, 4 never occur/,
);
test(
  'an image_size that is not the image size',
  rejects,
  (d) => editJson(d.annotations, 'c-field', (j) => (j.image_size[0]!.width = 65)),
  /c-field\.json: image_size: says 65x64 but the image .*c-field\.jpg is 64x64/,
);
test(
  'a file field naming another image',
  rejects,
  (d) => editJson(d.annotations, 'b-street', (j) => (j.file = 'photos/a-park.jpg')),
  /b-street\.json: file: names "photos\/a-park\.jpg", but its image is .*b-street\.png/,
);
test(
  'invalid JSON',
  rejects,
  (d) => fs.writeFile(path.join(d.annotations, 'a-park.json'), '{"file": "a-park.jpg",'),
  /a-park\.json: \(root\): not valid JSON/,
);
test(
  'an image without annotation',
  rejects,
  (d) => fs.rm(path.join(d.annotations, 'b-street.json')),
  /b-street\.png: no annotation .*b-street\.json/,
);
test(
  'an annotation without image',
  rejects,
  (d) => fs.rm(path.join(d.images, 'a-park.jpg')),
  /a-park\.json: no image/,
);
test(
  'an image that is not an image',
  rejects,
  (d) => fs.writeFile(path.join(d.images, 'c-field.jpg'), 'not a jpeg'),
  /c-field\.jpg: not a readable image/,
);
