import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { noopLogger } from '../../shared/logging.js';
import { createLocalStorage } from '../../shared/storage/local.js';
import { createStorage } from '../../shared/storage/open-storage.js';
import { loadPredictor, type Predictor } from '../../worker/inference/predictor.js';
import { runCli } from '../helpers/run-cli.js';
import { startS3Server } from '../helpers/s3-server.js';
import { createTempDir, makeImage, wasmTf, writeTinyModel } from '../worker/inference/fixtures.js';

/** `ssd-cluster predict` through cli/main.ts, on an untrained tiny model (known objects: test/worker/inference). */
const storage = createLocalStorage();
let dir: string;
let removeDir: (() => Promise<void>) | undefined;
let modelDir: string;
let predictor: Predictor;
let images: { file: string; bytes: Buffer }[];

test.before(async () => {
  await wasmTf();
  ({ dir, remove: removeDir } = await createTempDir('predict-cli-'));
  modelDir = path.join(dir, 'model');
  await writeTinyModel(storage, modelDir);
  predictor = await loadPredictor(modelDir, { storage, backend: 'wasm', logger: noopLogger });
  const sizes = [
    [80, 60],
    [40, 120],
    [64, 64],
  ] as const;
  images = await Promise.all(
    sizes.map(async ([w, h], i) => {
      const file = path.join(dir, `image-${i}.${i === 1 ? 'png' : 'jpg'}`);
      const bytes = await makeImage(i === 1 ? 'png' : 'jpeg', w, h, 3, i);
      await fs.writeFile(file, bytes);
      return { file, bytes };
    }),
  );
});
test.after.always(async () => {
  await predictor?.close();
  await storage.close();
  await removeDir?.();
});

const predict = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  runCli(['predict', '--backend', 'wasm', ...args], { env });
const linesOf = (stdout: string) => stdout.trimEnd().split('\n');

test.serial('predict prints one SageMaker line per image, in the order given', async (t) => {
  const files = [images[2]!, images[0]!, images[1]!, images[0]!];
  const run = await predict(['--model', modelDir, '--batch-size', '2', ...files.map((f) => f.file)]);
  t.is(run.code, 0, run.stderr);
  const lines = linesOf(run.stdout);
  t.is(lines.length, files.length);
  for (const [i, line] of lines.entries()) {
    t.regex(line, /^\{"prediction": \[\[\d\.0, /);
    t.deepEqual(JSON.parse(line), { prediction: await predictor.predict(files[i]!.bytes) });
  }
});

test.serial('predict --threshold leaves out the rows scoring below it', async (t) => {
  const all = await predictor.predict(images[0]!.bytes);
  const cut = all[Math.floor(all.length / 2)]![1]!;
  const run = await predict(['--model', modelDir, '--threshold', String(cut), images[0]!.file]);
  t.is(run.code, 0, run.stderr);
  t.deepEqual(
    JSON.parse(run.stdout).prediction,
    all.filter((row) => row[1]! >= cut),
  );
});

test.serial(
  'predict stops at an image it cannot decode, naming it, after the lines of the images before it',
  async (t) => {
    const bad = path.join(dir, 'notes.jpg');
    await fs.writeFile(bad, 'these are notes, not a JPEG');
    const run = await predict(['--model', modelDir, images[0]!.file, bad, images[1]!.file]);
    t.is(run.code, 1);
    t.is(linesOf(run.stdout).length, 1);
    t.deepEqual(JSON.parse(run.stdout).prediction, await predictor.predict(images[0]!.bytes));
    t.regex(run.stderr, new RegExp(`${bad}: not a JPEG or PNG image`));
  },
);

test.serial('predict names an image file that does not exist and a model that is not there', async (t) => {
  const missing = path.join(dir, 'missing.png');
  const noImage = await predict(['--model', modelDir, images[0]!.file, missing]);
  t.is(noImage.code, 1);
  t.is(linesOf(noImage.stdout).length, 1);
  t.regex(noImage.stderr, /missing\.png/);
  const noModel = await predict(['--model', path.join(dir, 'nowhere'), images[0]!.file]);
  t.is(noModel.code, 1);
  t.is(noModel.stdout, '');
  t.regex(noModel.stderr, /--model .*nowhere: no model\.json or model\.tar\.gz there/);
});

const usage = test.macro({
  async exec(t, args: string[], message: RegExp) {
    const run = await predict(args);
    t.is(run.code, 2);
    t.regex(run.stderr, message);
    t.is(run.stdout, '');
  },
  title: (what) => `predict refuses ${what} as a usage error`,
});

test.serial('a missing --model', usage, ['x.jpg'], /--model is required/);
test.serial('no IMAGE', usage, ['--model', 'm'], /give at least one IMAGE/);
test.serial(
  'a --threshold over 1',
  usage,
  ['--model', 'm', '--threshold', '1.5', 'x.jpg'],
  /--threshold: expected a number in \[0, 1\], got '1\.5'/,
);
test.serial(
  'a --batch-size of 0',
  usage,
  ['--model', 'm', '--batch-size', '0', 'x.jpg'],
  /--batch-size: expected an integer >= 1/,
);
test.serial(
  'an unknown --backend',
  usage,
  ['--model', 'm', '--backend', 'gpu', 'x.jpg'],
  /--backend: must be one of/,
);

test.serial('predict reads the model and the images from s3:// URLs', async (t) => {
  const s3 = await startS3Server(t);
  const s3Storage = createStorage({ s3Endpoint: s3.endpoint, s3Credentials: s3.credentials });
  t.teardown(() => s3Storage.close());
  const prefix = `s3://${s3.bucket}/job`;
  for (const name of await fs.readdir(modelDir)) {
    await s3Storage.write(`${prefix}/model/${name}`, await fs.readFile(path.join(modelDir, name)));
  }
  await s3Storage.write(`${prefix}/in/a.png`, images[1]!.bytes);
  const run = await predict(['--model', `${prefix}/model`, `${prefix}/in/a.png`], s3.env);
  t.is(run.code, 0, run.stderr);
  t.deepEqual(JSON.parse(run.stdout).prediction, await predictor.predict(images[1]!.bytes));
});
