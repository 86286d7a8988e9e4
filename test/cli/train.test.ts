import fs from 'node:fs/promises';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import test from 'ava';
import { createStorage } from '../../shared/storage/open-storage.js';
import { createSsdModel } from '../../worker/model/ssd.js';
import { loadWeights } from '../../worker/model/weights.js';
import { runCli } from '../helpers/run-cli.js';
import { type SynthFixture, writeSynthFixture } from '../worker/train/trainer-fixtures.js';

// One tfjs engine per process: the tests that train run serially.
let fixture: SynthFixture | undefined;
test.before(async () => {
  fixture = await writeSynthFixture({ train: 16, validation: 8 });
});
test.after.always(() => fixture?.remove());

const tinyFlags = (modelDir: string, samples = 16) => [
  'train',
  '--num-classes',
  '5',
  '--num-training-samples',
  String(samples),
  '--base-network',
  'tiny',
  '--image-shape',
  '64',
  '--mini-batch-size',
  '8',
  '--epochs',
  '1',
  '--train',
  fixture!.train,
  '--validation',
  fixture!.validation,
  '--model-dir',
  modelDir,
  '--backend',
  'wasm',
  '--seed',
  '3',
];

test.serial(
  'train on a tiny synthetic set prints the JSON line and writes a loadable model dir',
  async (t) => {
    const modelDir = path.join(fixture!.dir, 'model');
    const run = await runCli([...tinyFlags(modelDir), '--model-archive']);
    t.is(run.code, 0, run.stderr);
    const lines = run.stdout.trim().split('\n');
    t.is(lines.length, 1);
    const result = JSON.parse(lines[0]!);
    t.deepEqual(Object.keys(result), [
      'images',
      'seconds',
      'imagesPerSecond',
      'workers',
      'epochs',
      'validationMap',
      'modelDir',
    ]);
    t.like(result, { images: 16, workers: 1, epochs: 1, modelDir });
    t.true(result.validationMap >= 0 && result.validationMap <= 1);
    t.regex(run.stderr, new RegExp(`validation mAP <score>=\\(${result.validationMap}\\)`));

    const model = createSsdModel({ baseNetwork: 'tiny', imageShape: 64, numClasses: 5, seed: 99 });
    t.teardown(() => model.dispose());
    const storage = createStorage({ env: {} });
    t.teardown(() => storage.close());
    await loadWeights(model, modelDir, storage);
    const hyperparams = JSON.parse(await fs.readFile(path.join(modelDir, 'hyperparams.json'), 'utf8'));
    t.like(hyperparams, {
      num_classes: '5',
      num_training_samples: '16',
      base_network: 'tiny',
      image_shape: '64',
    });
    t.true(Object.values(hyperparams).every((v) => typeof v === 'string'));
    t.deepEqual(
      JSON.parse(await fs.readFile(path.join(modelDir, 'classes.json'), 'utf8')),
      JSON.parse(await fs.readFile(fixture!.classes, 'utf8')),
    );
    const tar = gunzipSync(await fs.readFile(path.join(modelDir, 'model.tar.gz')));
    const names = [];
    for (
      let at = 0;
      tar[at] !== 0;
      at += 512 + Math.ceil(Number.parseInt(tar.toString('latin1', at + 124, at + 135), 8) / 512) * 512
    ) {
      names.push(tar.toString('utf8', at, at + 100).replace(/\0+$/, ''));
    }
    t.deepEqual(names.sort(), ['classes.json', 'group1-shard1of1.bin', 'hyperparams.json', 'model.json']);
  },
);

test.serial('train fails with a clear error when num_training_samples does not match the data', async (t) => {
  const run = await runCli(tinyFlags(path.join(fixture!.dir, 'never'), 20));
  t.is(run.code, 2);
  t.regex(
    run.stderr,
    /num_training_samples: is 20 but the train data has 16 records; set num_training_samples to 16 \(.*train\.rec\)/,
  );
  await t.throwsAsync(fs.stat(path.join(fixture!.dir, 'never')));
});

test('train without --train says what to pass', async (t) => {
  const run = await runCli([
    'train',
    '--num-classes',
    '5',
    '--num-training-samples',
    '16',
    '--model-dir',
    'x',
  ]);
  t.is(run.code, 2);
  t.regex(run.stderr, /--train SOURCE is required .*ssd-cluster synth --out DIR/);
});

test('train rejects an unknown --on-bad-record value', async (t) => {
  const run = await runCli([...tinyFlags('x'), '--on-bad-record', 'maybe']);
  t.is(run.code, 2);
  t.regex(run.stderr, /--on-bad-record: expected skip or fail, got 'maybe'/);
});

test.serial('train refuses a --model-dir that is a file before it trains, and keeps the file', async (t) => {
  const file = path.join(fixture!.dir, 'model-is-a-file');
  await fs.writeFile(file, 'keep me');
  const run = await runCli(tinyFlags(file));
  t.is(run.code, 2, run.stderr);
  t.is(run.stderr, `ssd-cluster train: --model-dir ${file}: a file is in the way; pass a folder\n`);
  t.is(await fs.readFile(file, 'utf8'), 'keep me');
});

test.serial('train refuses a --checkpoint-dir below a file before it trains', async (t) => {
  const file = path.join(fixture!.dir, 'checkpoints-is-a-file');
  await fs.writeFile(file, 'keep me');
  const modelDir = path.join(fixture!.dir, 'model-never-written');
  const run = await runCli([...tinyFlags(modelDir), '--checkpoint-dir', path.join(file, 'ckpt')]);
  t.is(run.code, 2, run.stderr);
  t.regex(
    run.stderr,
    /--checkpoint-dir .*checkpoints-is-a-file\/ckpt: a file is in the way \(.*checkpoints-is-a-file\); pass a folder/,
  );
  await t.throwsAsync(fs.stat(modelDir));
});
