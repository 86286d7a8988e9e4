import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { createMemoryLogger } from '../../shared/logging.js';
import { parseIndexFile } from '../../shared/recordio/index-file.js';
import { createLocalStorage } from '../../shared/storage/local.js';
import { createStorage } from '../../shared/storage/open-storage.js';
import { openDataset } from '../../worker/data/open-dataset.js';
import { type CliRun, runCli } from '../helpers/run-cli.js';
import { startS3Server } from '../helpers/s3-server.js';
import { fixtureSynthOptions, synthFixture, tinySsdFlags, writeDataset } from '../helpers/synth-fixture.js';

/**
 * `ssd-cluster evaluate` through cli/main.ts on a tiny model trained here, in this process: one tfjs
 * engine, so every test that runs the network is serial.
 */
const data = synthFixture(test, { train: 24, validation: 12 });

interface Trained {
  validationMap: number;
  modelDir: string;
}
let trained: Trained | undefined;

test.serial.before('train a tiny model with a validation channel', async () => {
  const modelDir = data.path('model');
  const run = await runCli([
    ...['train', ...tinySsdFlags(data), '--mini-batch-size', '8', '--epochs', '2'],
    ...['--learning-rate', '0.01', '--train', data.train, '--validation', data.validation],
    ...['--model-dir', modelDir, '--model-archive', '--backend', 'wasm', '--seed', '5'],
  ]);
  if (run.code !== 0) throw new Error(`train failed (${run.code}): ${run.stderr}`);
  const summary = JSON.parse(run.stdout.trim());
  trained = { validationMap: summary.validationMap, modelDir };
});

const evaluate = (args: string[], logger = createMemoryLogger(), env: NodeJS.ProcessEnv = {}) =>
  runCli(['evaluate', '--backend', 'wasm', ...args], { logger, env });

const onlyLine = (run: CliRun) => {
  const lines = run.stdout.trim().split('\n');
  if (lines.length !== 1) throw new Error(`expected one line on stdout, got: ${run.stdout}`);
  return JSON.parse(lines[0]!);
};

/** The validation set copied beside the fixture, with `edit` applied to the copy. */
async function copyOfValidation(name: string, edit: (dir: string) => Promise<void> = async () => {}) {
  const dir = data.path(name);
  await fs.mkdir(dir);
  for (const file of ['validation.rec', 'validation.idx', 'classes.json'])
    await fs.copyFile(data.data(file), path.join(dir, file));
  await edit(dir);
  return path.join(dir, 'validation.rec');
}

test.serial(
  'evaluate on the validation .rec prints exactly the validationMap train ended with',
  async (t) => {
    const run = await evaluate(['--model', trained!.modelDir, '--data', data.validation]);
    t.is(run.code, 0, run.stderr);
    const line = onlyLine(run);
    t.deepEqual(Object.keys(line), [
      'mAP',
      'ap',
      'images',
      'skipped',
      'seconds',
      'imagesPerSecond',
      'metric',
      'iou',
    ]);
    t.true(trained!.validationMap > 0, 'the test needs a model that finds something');
    t.is(line.mAP, trained!.validationMap);
    t.like(line, { images: 12, skipped: 0, metric: 'voc07', iou: 0.5 });
    const classes = JSON.parse(await fs.readFile(data.data('classes.json'), 'utf8')) as string[];
    const apKeys = Object.keys(line.ap);
    t.true(apKeys.length > 0 && apKeys.every((k) => classes.includes(k)), apKeys.join(', '));
    const values = Object.values(line.ap) as number[];
    t.is(line.mAP, values.reduce((s, v) => s + v, 0) / values.length);
  },
);

test.serial('evaluate of the model archive in other batch sizes gives the same mAP', async (t) => {
  const archive = path.join(trained!.modelDir, 'model.tar.gz');
  const run = await evaluate(['--model', archive, '--data', data.validation, '--batch-size', '5']);
  t.is(run.code, 0, run.stderr);
  t.is(onlyLine(run).mAP, trained!.validationMap);
});

test.serial('map on the files of --ground-truth-out and --detections-out prints the same mAP', async (t) => {
  const files = { gt: data.path('out', 'gt.json'), det: data.path('out', 'det.json') };
  const run = await evaluate([
    ...['--model', trained!.modelDir, '--data', data.validation, '--metric', 'area', '--iou', '0.3'],
    ...['--ground-truth-out', files.gt, '--detections-out', files.det],
  ]);
  t.is(run.code, 0, run.stderr);
  const evaluated = onlyLine(run);
  t.like(evaluated, { metric: 'area', iou: 0.3 });
  const truth = JSON.parse(await fs.readFile(files.gt, 'utf8'));
  t.is(truth[0].image, `${data.validation}#00`);
  t.true(
    truth.some((g: { box: number[] }) => g.box.some((v) => v > 1)),
    'boxes are in pixels',
  );
  const mapped = await runCli([
    ...['map', '--ground-truth', files.gt, '--detections', files.det, '--metric', 'area', '--iou', '0.3'],
  ]);
  t.is(mapped.code, 0, mapped.stderr);
  const result = onlyLine(mapped);
  t.is(result.mAP, evaluated.mAP);
  t.deepEqual(Object.values(result.ap), Object.values(evaluated.ap));
});

/**
 * The validation set as a folder of JPEGs with SageMaker JSON annotations in a separate folder (or the
 * same one), keeping the objects of the classes `keep` accepts.
 */
async function validationAsFolder(
  name = 'folder',
  options: { keep?: (classId: number) => boolean; beside?: boolean } = {},
): Promise<{ images: string; annotations: string }> {
  const keep = options.keep ?? (() => true);
  const storage = createLocalStorage();
  const dataset = await openDataset(data.validation, { storage });
  const images = data.path(name, 'images');
  const folders = { images, annotations: options.beside ? images : data.path(name, 'annotations') };
  try {
    for (const dir of Object.values(folders)) await fs.mkdir(dir, { recursive: true });
    const size = data.options.imageSize;
    for (let i = 0; i < dataset.size; i++) {
      const { image, gt } = await dataset.read(i);
      const file = `img-${String(i).padStart(2, '0')}.jpg`;
      await fs.writeFile(path.join(folders.images, file), image);
      const annotations = Array.from(gt.classes, (c, k) => {
        const [x1, y1, x2, y2] = Array.from(gt.boxes.subarray(4 * k, 4 * k + 4), (v) => v * size);
        return { class_id: c, left: x1!, top: y1!, width: x2! - x1!, height: y2! - y1! };
      }).filter((o) => keep(o.class_id));
      const json = { file, image_size: [{ width: size, height: size, depth: 3 }], annotations };
      await fs.writeFile(path.join(folders.annotations, file.replace('.jpg', '.json')), JSON.stringify(json));
    }
  } finally {
    await dataset.close();
    await storage.close();
  }
  return folders;
}

test.serial('evaluate takes a folder of images with --annotation and names its images by file', async (t) => {
  const folder = await validationAsFolder();
  const files = { gt: data.path('folder-gt.json'), det: data.path('folder-det.json') };
  const run = await evaluate([
    ...['--model', trained!.modelDir, '--data', folder.images, '--annotation', folder.annotations],
    ...['--ground-truth-out', files.gt, '--detections-out', files.det],
  ]);
  t.is(run.code, 0, run.stderr);
  const evaluated = onlyLine(run);
  t.like(evaluated, { images: 12, skipped: 0 });
  const truth = JSON.parse(await fs.readFile(files.gt, 'utf8'));
  t.is(truth[0].image, 'img-00.jpg');
  const mapped = await runCli(['map', '--ground-truth', files.gt, '--detections', files.det]);
  t.is(onlyLine(mapped).mAP, evaluated.mAP);
});

/** `train` with `validation` as its validation channel, then `evaluate` of its model on the same data. */
async function trainThenEvaluate(name: string, validation: string) {
  const modelDir = data.path(name, 'model');
  const trainRun = await runCli([
    ...['train', ...tinySsdFlags(data), '--mini-batch-size', '8', '--epochs', '1'],
    ...['--learning-rate', '0.01', '--train', data.train, '--validation', validation],
    ...['--model-dir', modelDir, '--backend', 'wasm', '--seed', '5'],
  ]);
  if (trainRun.code !== 0) throw new Error(`train failed (${trainRun.code}): ${trainRun.stderr}`);
  const evaluated = await evaluate(['--model', modelDir, '--data', validation]);
  return { trained: JSON.parse(trainRun.stdout.trim()), trainRun, evaluated: onlyLine(evaluated) };
}

test.serial(
  'train and evaluate report the same mAP when classes or all ground truth are missing (SPEC: nanmean)',
  async (t) => {
    // Classes 0 and 1 have no ground truth: both leave them out of the mean rather than counting 0.
    const some = await validationAsFolder('without-two-classes', { keep: (c) => c > 1, beside: true });
    const partial = await trainThenEvaluate('without-two-classes', some.images);
    t.is(typeof partial.evaluated.mAP, 'number');
    t.is(partial.trained.validationMap, partial.evaluated.mAP);
    t.true(partial.trainRun.stderr.includes('validation mAP <score>=('), partial.trainRun.stderr);
    const classes = JSON.parse(await fs.readFile(data.data('classes.json'), 'utf8')) as string[];
    const apKeys = Object.keys(partial.evaluated.ap);
    t.true(apKeys.length > 0, 'some classes are evaluated');
    t.false(apKeys.includes(classes[0]!) || apKeys.includes(classes[1]!), apKeys.join(', '));

    // No ground truth at all: the mean is undefined, null from both (train logs no validation mAP line).
    const none = await validationAsFolder('without-truth', { keep: () => false, beside: true });
    const empty = await trainThenEvaluate('without-truth', none.images);
    t.is(empty.evaluated.mAP, null);
    t.is(empty.trained.validationMap, null);
    t.false(empty.trainRun.stderr.includes('validation mAP'), empty.trainRun.stderr);
  },
);

test.serial(
  'evaluate reads the model archive and the data from s3:// and writes the map files there',
  async (t) => {
    const s3 = await startS3Server(t);
    const storage = createStorage({ s3Endpoint: s3.endpoint, s3Credentials: s3.credentials });
    t.teardown(() => storage.close());
    const prefix = `s3://${s3.bucket}/job`;
    const upload = async (file: string, key: string) =>
      storage.write(`${prefix}/${key}`, await fs.readFile(file));
    await upload(path.join(trained!.modelDir, 'model.tar.gz'), 'model/model.tar.gz');
    for (const name of ['validation.rec', 'validation.idx', 'classes.json'])
      await upload(data.data(name), `data/${name}`);
    const run = await evaluate(
      [
        ...['--model', `${prefix}/model`, '--data', `${prefix}/data/validation.rec`],
        ...['--ground-truth-out', `${prefix}/out/gt.json`, '--detections-out', `${prefix}/out/det.json`],
      ],
      createMemoryLogger(),
      s3.env,
    );
    t.is(run.code, 0, run.stderr);
    t.is(onlyLine(run).mAP, trained!.validationMap);
    const mapped = await runCli(
      ['map', '--ground-truth', `${prefix}/out/gt.json`, '--detections', `${prefix}/out/det.json`],
      { env: s3.env },
    );
    t.is(mapped.code, 0, mapped.stderr);
    t.is(onlyLine(mapped).mAP, trained!.validationMap);
  },
);

test.serial(
  'evaluate skips a corrupt record, names it and counts it; --on-bad-record fail stops',
  async (t) => {
    const index = parseIndexFile(await fs.readFile(data.data('validation.idx'), 'utf8'), 'validation.idx');
    const victim = index[5]!.offset;
    const rec = await copyOfValidation('corrupt', async (dir) => {
      const file = await fs.open(path.join(dir, 'validation.rec'), 'r+');
      await file.write(Buffer.from([0xde, 0xad, 0xbe, 0xef]), 0, 4, victim); // the record's magic
      await file.close();
    });
    const logger = createMemoryLogger();
    const run = await evaluate(['--model', trained!.modelDir, '--data', rec], logger);
    t.is(run.code, 0, run.stderr);
    t.like(onlyLine(run), { images: 11, skipped: 1 });
    const warnings = logger.entries.filter((e) => e.level === 'warn');
    t.is(warnings.length, 1);
    t.is(warnings[0]!.fields.source, `${rec}@${victim}`);

    const failed = await evaluate(['--model', trained!.modelDir, '--data', rec, '--on-bad-record', 'fail']);
    t.is(failed.code, 1);
    t.is(failed.stdout, '');
    t.true(failed.stderr.includes(`${rec} at byte ${victim}`), failed.stderr);
  },
);

test.serial('evaluate fails when every record is skipped, naming the first', async (t) => {
  const index = parseIndexFile(await fs.readFile(data.data('validation.idx'), 'utf8'), 'validation.idx');
  const rec = await copyOfValidation('all-corrupt', async (dir) => {
    const file = await fs.open(path.join(dir, 'validation.rec'), 'r+');
    for (const { offset } of index) await file.write(Buffer.from([0xde, 0xad, 0xbe, 0xef]), 0, 4, offset);
    await file.close();
  });
  const run = await evaluate(['--model', trained!.modelDir, '--data', rec]);
  t.is(run.code, 1);
  t.is(run.stdout, '');
  t.true(
    run.stderr.includes(
      `--data ${rec}: no sample could be evaluated, all 12 were skipped (the first: ${rec}@0:`,
    ),
    run.stderr,
  );
});

test.serial("evaluate skips records with class ids beyond the model's num_classes, saying so", async (t) => {
  // Synth data with 7 classes and no classes.json: the 5-class model's labels end at class 4.
  const dir = data.path('seven-classes');
  await writeDataset(dir, fixtureSynthOptions({ train: 1, validation: 8, classes: 7 }));
  await fs.rm(path.join(dir, 'classes.json'));
  const logger = createMemoryLogger();
  const run = await evaluate(
    ['--model', trained!.modelDir, '--data', path.join(dir, 'validation.rec')],
    logger,
  );
  t.is(run.code, 0, run.stderr);
  const line = onlyLine(run);
  const warnings = logger.entries.filter((e) => e.level === 'warn');
  t.true(line.skipped > 0 && line.skipped < 8, `skipped ${line.skipped}`);
  t.is(line.images + line.skipped, 8);
  t.is(warnings.length, line.skipped);
  for (const w of warnings) t.regex(String(w.fields.reason), /has class [56], but num_classes is 5/);
});

test.serial('evaluate of a missing model fails naming --model and what it looked for', async (t) => {
  const missing = data.path('no-such-model');
  const run = await evaluate(['--model', missing, '--data', data.validation]);
  t.is(run.code, 1);
  t.true(run.stderr.startsWith(`ssd-cluster evaluate: --model ${missing}: no model.json or model.tar.gz`));
});

test.serial('evaluate refuses data whose classes.json names another number of classes', async (t) => {
  const rec = await copyOfValidation('three-classes', (dir) =>
    fs.writeFile(path.join(dir, 'classes.json'), JSON.stringify(['a', 'b', 'c'])),
  );
  const run = await evaluate(['--model', trained!.modelDir, '--data', rec]);
  t.is(run.code, 2);
  t.regex(run.stderr, /--data .*validation\.rec does not fit --model .* \(num_classes 5\)/);
  t.regex(run.stderr, /classes\.json: names 3 classes/);
});

const badFlags: [string[], RegExp][] = [
  [['--data', 'v.rec'], /--model is required/],
  [['--model', 'm'], /--data is required/],
  [
    ['--model', 'm', '--data', 'v.rec', '--metric', 'coco'],
    /--metric: expected one of voc07, area, got 'coco'/,
  ],
  [['--model', 'm', '--data', 'v.rec', '--iou', '0'], /--iou: expected a number in \(0, 1\], got '0'/],
  [['--model', 'm', '--data', 'v.rec', '--batch-size', '0'], /--batch-size: expected an integer >= 1/],
  [
    ['--model', 'm', '--data', 'v.rec', '--on-bad-record', 'ignore'],
    /--on-bad-record: expected skip or fail/,
  ],
  [['--model', 'm', '--data', 'v.rec', '--annotation', 'ann'], /--annotation: only for a folder of images/],
  [['--model', 'm', '--data', 'v.rec', '--threshold', '0.5'], /Unknown option '--threshold'/],
];
for (const [args, message] of badFlags) {
  test(`evaluate ${args.slice(-2).join(' ')} is a usage error naming the flag`, async (t) => {
    const run = await evaluate(args);
    t.is(run.code, 2);
    t.regex(run.stderr, message);
    t.is(run.stdout, '');
  });
}

test('evaluate --help lists every flag', async (t) => {
  const run = await runCli(['evaluate', '--help']);
  t.is(run.code, 0);
  for (const flag of ['--model', '--data', '--annotation', '--metric', '--iou', '--batch-size', '--backend'])
    t.true(run.stdout.includes(flag), flag);
  for (const flag of [
    '--threads',
    '--on-bad-record',
    '--ground-truth-out',
    '--detections-out',
    '--s3-endpoint',
  ])
    t.true(run.stdout.includes(flag), flag);
});
