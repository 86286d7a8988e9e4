import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import sharp from 'sharp';
import { noopLogger } from '../../../shared/logging.js';
import { createLocalStorage } from '../../../shared/storage/local.js';
import { loadPredictor } from '../../../worker/inference/predictor.js';
import { runCli } from '../../helpers/run-cli.js';
import {
  createTempDir,
  type KnownImage,
  knownImages,
  knownObjectsProblem,
  tempDir,
  trainKnownModel,
  type WrittenModel,
  writeTinyModel,
} from './fixtures.js';
import { startServeCli } from './serve-fixture.js';

/**
 * The done-when: predict and serve return the known objects of synthetic images. The model is a
 * tiny SSD overfitted on two `ssd-cluster synth` images in the before hook (fixtures.ts), written as a
 * real artifact directory plus model.tar.gz.
 */
const storage = createLocalStorage();
let model: WrittenModel;
let images: KnownImage[];
let files: string[];

let dir: string;
let removeDir: (() => Promise<void>) | undefined;

test.before(async () => {
  ({ dir, remove: removeDir } = await createTempDir('known-objects-'));
  model = await trainKnownModel(storage, path.join(dir, 'model'), true);
  images = await knownImages();
  files = await Promise.all(
    images.map(async (image, i) => {
      const file = path.join(dir, `known-${i}.jpg`);
      await fs.writeFile(file, image.jpeg);
      return file;
    }),
  );
});

test.after.always(async () => {
  await storage.close();
  await removeDir?.();
});

test.serial('loadPredictor returns the known objects of both synthetic images', async (t) => {
  const predictor = await loadPredictor(model.dir, { storage, backend: 'wasm', logger: noopLogger });
  t.teardown(() => predictor.close());
  for (const image of images)
    t.is(knownObjectsProblem(await predictor.predict(image.jpeg), image.objects), null);
});

test.serial(
  'boxes are normalised to the original image: a stretched copy gives the same objects',
  async (t) => {
    const predictor = await loadPredictor(model.dir, { storage, backend: 'wasm', logger: noopLogger });
    t.teardown(() => predictor.close());
    for (const image of images) {
      // 96x96 -> 192x72: the normalised boxes of the objects do not change.
      const stretched = await sharp(image.jpeg).resize(192, 72, { fit: 'fill' }).png().toBuffer();
      t.is(knownObjectsProblem(await predictor.predict(stretched), image.objects), null);
    }
  },
);

test.serial('the known-objects check fails for an untrained model of the same shape', async (t) => {
  const untrained = await tempDir(t);
  await writeTinyModel(storage, untrained, { seed: 1 });
  const predictor = await loadPredictor(untrained, { storage, backend: 'wasm', logger: noopLogger });
  t.teardown(() => predictor.close());
  for (const image of images)
    t.not(knownObjectsProblem(await predictor.predict(image.jpeg), image.objects), null);
});

test.serial(
  'predict prints the known objects of each image in order, from the directory and from model.tar.gz',
  async (t) => {
    for (const modelArg of [model.dir, model.archive!]) {
      const run = await runCli(['predict', '--model', modelArg, '--backend', 'wasm', ...files]);
      t.is(run.code, 0, run.stderr);
      const lines = run.stdout.trimEnd().split('\n');
      t.is(lines.length, images.length);
      for (const [i, line] of lines.entries()) {
        t.is(
          knownObjectsProblem(JSON.parse(line).prediction, images[i]!.objects),
          null,
          `${modelArg} image ${i}`,
        );
      }
    }
  },
);

test.serial('serve answers POST /invocations with the known objects of each image', async (t) => {
  const serve = await startServeCli([
    '--model',
    model.dir,
    '--port',
    '0',
    '--host',
    '127.0.0.1',
    '--backend',
    'wasm',
  ]);
  t.teardown(() => serve.stop());
  await serve.serving;
  for (const image of images) {
    const response = await fetch(`${serve.url}/invocations`, {
      method: 'POST',
      headers: { 'Content-Type': 'image/jpeg' },
      body: image.jpeg,
    });
    t.is(response.status, 200);
    t.is(
      knownObjectsProblem(((await response.json()) as { prediction: number[][] }).prediction, image.objects),
      null,
    );
  }
  t.is(await serve.stop(), 0, serve.stderr());
});
