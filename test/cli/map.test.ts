import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { createMemoryLogger } from '../../shared/logging.js';
import { createStorage } from '../../shared/storage/open-storage.js';
import { tempDir } from '../helpers/recordio-fixtures.js';
import { runCli } from '../helpers/run-cli.js';
import { startS3Server } from '../helpers/s3-server.js';

/** `ssd-cluster map ARGS`, in this process. */
const runMap = (args: string[], env: NodeJS.ProcessEnv = {}) => runCli(['map', ...args], { env });

/**
 * Class 0: 10 objects, detections TP, TP, TP, FP, FP -> VOC07 3/11, area 0.3.
 * Class 1: a difficult box detected first (ignored), then TP, FP, TP over 2 objects -> 28/33, area 5/6.
 * Class 2: detections only -> left out of the mean.
 */
const truth = [
  ...Array.from({ length: 10 }, (_, k) => ({ image: `a${k}`, class: 0, box: [0, 0, 9, 9] })),
  { image: 'b0', class: 1, box: [0, 0, 9, 9], difficult: true },
  { image: 'b0', class: 1, box: [40, 0, 49, 9] },
  { image: 'b1', class: 1, box: [0, 0, 9, 9], difficult: false },
];
const detections = [
  { image: 'a0', class: 0, score: 0.9, box: [0, 0, 9, 9] },
  { image: 'a1', class: 0, score: 0.8, box: [0, 0, 9, 9] },
  { image: 'a2', class: 0, score: 0.7, box: [0, 0, 9, 9] },
  { image: 'a3', class: 0, score: 0.6, box: [100, 100, 120, 120] },
  { image: 'a4', class: 0, score: 0.5, box: [100, 100, 120, 120] },
  { image: 'b0', class: 1, score: 0.95, box: [0, 0, 9, 9] },
  { image: 'b0', class: 1, score: 0.9, box: [40, 0, 49, 9] },
  { image: 'b1', class: 1, score: 0.8, box: [60, 60, 70, 70] },
  { image: 'b1', class: 1, score: 0.7, box: [0, 0, 9, 9] },
  { image: 'b1', class: 2, score: 0.7, box: [0, 0, 9, 9] },
];

async function writeInputs(
  t: Parameters<typeof tempDir>[0],
  gt: unknown = truth,
  dets: unknown = detections,
) {
  const dir = await tempDir(t);
  const gtFile = path.join(dir, 'gt.json');
  const detFile = path.join(dir, 'dets.json');
  await fs.writeFile(gtFile, JSON.stringify(gt));
  await fs.writeFile(detFile, JSON.stringify(dets));
  return { gtFile, detFile };
}

function close(t: { true(v: boolean, m?: string): void }, actual: number, expected: number) {
  t.true(Math.abs(actual - expected) < 1e-12, `expected ${expected}, got ${actual}`);
}

test('map prints the VOC07 mAP and per-class AP of hand-checked files', async (t) => {
  const { gtFile, detFile } = await writeInputs(t);
  const { code, stdout, stderr } = await runMap(['--ground-truth', gtFile, '--detections', detFile]);
  t.is(stderr, '');
  t.is(code, 0);
  const out = JSON.parse(stdout);
  t.deepEqual(Object.keys(out.ap), ['0', '1']);
  close(t, out.ap['0'], 3 / 11);
  close(t, out.ap['1'], 28 / 33);
  close(t, out.mAP, (3 / 11 + 28 / 33) / 2);
});

test('map --metric area --iou and --pixel-offset change the rules', async (t) => {
  const { gtFile, detFile } = await writeInputs(t);
  const area = JSON.parse(
    (await runMap(['--ground-truth', gtFile, '--detections', detFile, '--metric', 'area'])).stdout,
  );
  close(t, area.ap['0'], 0.3);
  close(t, area.ap['1'], 5 / 6);
  // At IoU 1 with offset 0 the exact boxes still match; the result is unchanged.
  const strict = JSON.parse(
    (await runMap(['--ground-truth', gtFile, '--detections', detFile, '--iou', '1', '--pixel-offset', '0']))
      .stdout,
  );
  close(t, strict.ap['0'], 3 / 11);
  // A half-overlapping detection matches at 0.5 only with the +1 convention.
  const half = await writeInputs(
    t,
    [{ image: 'x', class: 0, box: [0, 0, 9, 9] }],
    [{ image: 'x', class: 0, score: 1, box: [0, 0, 9, 4] }],
  );
  const withOffset = await runMap(['--ground-truth', half.gtFile, '--detections', half.detFile]);
  const withoutOffset = await runMap([
    '--ground-truth',
    half.gtFile,
    '--detections',
    half.detFile,
    '--pixel-offset',
    '0',
  ]);
  t.is(JSON.parse(withOffset.stdout).mAP, 1);
  t.is(JSON.parse(withoutOffset.stdout).mAP, 0);
});

test('map prints a null mAP when no class has non-difficult ground truth', async (t) => {
  const { gtFile, detFile } = await writeInputs(t, [
    { image: 'x', class: 0, box: [0, 0, 9, 9], difficult: true },
  ]);
  const { code, stdout } = await runMap(['--ground-truth', gtFile, '--detections', detFile]);
  t.is(code, 0);
  t.deepEqual(JSON.parse(stdout), { mAP: null, ap: {} });
});

test('map names the file, element and field of a bad entry', async (t) => {
  const cases: [unknown, unknown, RegExp][] = [
    [
      [{ image: 'x', class: 0, box: [0, 0, 'a', 9] }],
      [],
      /gt\.json: element \[0\]\.box\[2\]: expected a finite number/,
    ],
    [
      [{ image: 'x', class: 1.5, box: [0, 0, 9, 9] }],
      [],
      /gt\.json: element \[0\]\.class: expected an integer >= 0/,
    ],
    [
      [],
      [{ image: 'x', class: 0, box: [0, 0, 9, 9] }],
      /dets\.json: element \[0\]\.score: expected a finite number/,
    ],
    [
      [],
      [{ image: 'x', class: 0, score: 1, box: [5, 0, 1, 9] }],
      /dets\.json: element \[0\]\.box: xmax < xmin/,
    ],
    [
      [{ image: 'x', class: 0, box: [0, 0, 9, 9], difficult: 1 }],
      [],
      /element \[0\]\.difficult: expected true or false/,
    ],
    [{ image: 'x' }, [], /gt\.json: expected a JSON array/],
    [[], [7], /dets\.json: element \[0\]: expected an object, got 7/],
  ];
  for (const [gt, dets, message] of cases) {
    const { gtFile, detFile } = await writeInputs(t, gt, dets);
    const { code, stderr } = await runMap(['--ground-truth', gtFile, '--detections', detFile]);
    t.is(code, 1, stderr);
    t.regex(stderr, message);
  }
  const dir = await tempDir(t);
  const broken = path.join(dir, 'broken.json');
  await fs.writeFile(broken, '[{"image": ');
  const { stderr } = await runMap(['--ground-truth', broken, '--detections', broken]);
  t.regex(stderr, /broken\.json: not valid JSON/);
});

test('map rejects bad flags with exit code 2 naming the flag', async (t) => {
  const { gtFile, detFile } = await writeInputs(t);
  const base = ['--ground-truth', gtFile, '--detections', detFile];
  for (const [extra, message] of [
    [['--metric', 'coco'], /--metric: expected one of voc07, area/],
    [['--iou', '0'], /--iou: expected a number in \(0, 1\]/],
    [['--iou', 'half'], /--iou: expected a number/],
    [['--pixel-offset', '2'], /--pixel-offset: expected 1 or 0/],
  ] as [string[], RegExp][]) {
    const { code, stderr } = await runMap([...base, ...extra]);
    t.is(code, 2);
    t.regex(stderr, message);
  }
  const missing = await runMap(['--detections', detFile]);
  t.is(missing.code, 2);
  t.regex(missing.stderr, /--ground-truth is required/);
  const absent = await runMap([
    '--ground-truth',
    path.join(path.dirname(gtFile), 'nope.json'),
    '--detections',
    detFile,
  ]);
  t.is(absent.code, 1);
  t.regex(absent.stderr, /nope\.json/);
});

test('map reads s3:// inputs through --s3-endpoint', async (t) => {
  const server = await startS3Server(t);
  const storage = createStorage({ s3Endpoint: server.endpoint, s3Credentials: server.credentials });
  t.teardown(() => storage.close());
  await storage.write(`s3://${server.bucket}/eval/gt.json`, Buffer.from(JSON.stringify(truth)));
  await storage.write(`s3://${server.bucket}/eval/dets.json`, Buffer.from(JSON.stringify(detections)));
  // Keys reach the CLI through its env (AWS_* variables, as in a shell); the endpoint through the flag.
  const { AWS_ENDPOINT_URL_S3: _endpoint, ...keys } = server.env;
  const { code, stdout, stderr } = await runMap(
    [
      ...['--ground-truth', `s3://${server.bucket}/eval/gt.json`],
      ...['--detections', `s3://${server.bucket}/eval/dets.json`],
      ...['--s3-endpoint', server.endpoint],
    ],
    keys,
  );
  t.is(stderr, '');
  t.is(code, 0);
  close(t, JSON.parse(stdout).mAP, (3 / 11 + 28 / 33) / 2);
});

test('map warns that --pixel-offset 0 is meant when every ground-truth box is normalised', async (t) => {
  const scale = (box: number[]) => box.map((v) => v / 128);
  const { gtFile, detFile } = await writeInputs(
    t,
    truth.map((g) => ({ ...g, box: scale(g.box) })),
    detections.map((d) => ({ ...d, box: scale(d.box) })),
  );
  const warnings = async (extra: string[]) => {
    const logger = createMemoryLogger();
    const { code } = await runCli(['map', '--ground-truth', gtFile, '--detections', detFile, ...extra], {
      logger,
    });
    t.is(code, 0);
    return logger.entries.filter((e) => e.level === 'warn').map((e) => e.msg);
  };
  const [warning, ...more] = await warnings([]);
  t.regex(warning ?? '', /within \[0, 1\].*--pixel-offset 0/);
  t.deepEqual(more, []);
  t.deepEqual(await warnings(['--pixel-offset', '0']), []);
  const pixels = await writeInputs(t);
  const logger = createMemoryLogger();
  await runCli(['map', '--ground-truth', pixels.gtFile, '--detections', pixels.detFile], { logger });
  t.deepEqual(logger.entries, [], 'pixel boxes: no warning');
});
