import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { type ClusterErrorCode, isClusterError } from '../../../shared/errors.js';
import { createLocalStorage } from '../../../shared/storage/local.js';
import { loadInferenceModel } from '../../../worker/inference/load-model.js';
import { createSsdModel } from '../../../worker/model/ssd.js';
import { CLASS_NAMES, SIDE, tempDir, tinyHyperparameters, wasmTf, writeTinyModel } from './fixtures.js';

const storage = createLocalStorage();
test.after.always(() => storage.close());
test.before(async () => {
  await wasmTf();
});

async function editJson(file: string, edit: (value: Record<string, unknown>) => unknown): Promise<void> {
  const value = JSON.parse(await fs.readFile(file, 'utf8'));
  await fs.writeFile(file, JSON.stringify(edit(value) ?? value));
}

test.serial(
  'loadInferenceModel restores the weights, hyperparameters and class names of an artifact',
  async (t) => {
    const dir = await tempDir(t);
    const original = createSsdModel({ baseNetwork: 'tiny', imageShape: SIDE, numClasses: 2, seed: 7 });
    t.teardown(() => original.dispose());
    const hp = tinyHyperparameters({ nms_threshold: '0.3', nms_topk: '50' });
    await writeTinyModel(storage, dir, { model: original, hp });
    const loaded = await loadInferenceModel(storage, dir);
    t.teardown(() => loaded.model.dispose());
    t.deepEqual(loaded.hp, hp);
    t.deepEqual(loaded.classes, CLASS_NAMES);
    t.deepEqual([...loaded.model.variables.keys()], [...original.variables.keys()]);
    for (const [name, v] of original.variables) {
      t.deepEqual(await loaded.model.variables.get(name)!.data(), await v.data(), name);
    }
  },
);

test.serial('loadInferenceModel works without classes.json', async (t) => {
  const dir = await tempDir(t);
  await writeTinyModel(storage, dir);
  await fs.rm(path.join(dir, 'classes.json'));
  const loaded = await loadInferenceModel(storage, dir);
  t.teardown(() => loaded.model.dispose());
  t.is(loaded.classes, undefined);
});

const broken = test.macro({
  async exec(
    t,
    breakIt: (dir: string) => Promise<unknown>,
    message: RegExp,
    code: ClusterErrorCode = 'MODEL',
  ) {
    const dir = await tempDir(t);
    await writeTinyModel(storage, dir);
    await breakIt(dir);
    const err = await t.throwsAsync(loadInferenceModel(storage, dir), { message });
    t.is(isClusterError(err) && err.code, code);
  },
  title: (what) => `loadInferenceModel refuses an artifact whose ${what}`,
});

test.serial(
  'hyperparams.json disagrees with model.json',
  broken,
  (dir) => editJson(path.join(dir, 'hyperparams.json'), (hp) => ({ ...hp, image_shape: '96' })),
  /model\.json: modelTopology\.ssd\.imageShape is 64, hyperparams\.json says 96/,
);
test.serial(
  'hyperparams.json has a bad value',
  broken,
  (dir) => editJson(path.join(dir, 'hyperparams.json'), (hp) => ({ ...hp, nms_threshold: 'high' })),
  /hyperparams\.json: nms_threshold: must be/,
);
test.serial(
  'hyperparams.json is not JSON',
  broken,
  (dir) => fs.writeFile(path.join(dir, 'hyperparams.json'), '{"num_classes": '),
  /hyperparams\.json: not valid JSON/,
);
test.serial(
  'hyperparams.json is missing',
  broken,
  (dir) => fs.rm(path.join(dir, 'hyperparams.json')),
  /hyperparams\.json/,
  'NOT_FOUND',
);
test.serial(
  'classes.json has the wrong number of names',
  broken,
  (dir) => fs.writeFile(path.join(dir, 'classes.json'), '["circle"]'),
  /classes\.json: names 1 classes but hyperparams\.json has num_classes 2/,
);
test.serial(
  'weights are for another class count',
  broken,
  async (dir) => {
    await editJson(path.join(dir, 'hyperparams.json'), (hp) => ({ ...hp, num_classes: '3' }));
    await editJson(path.join(dir, 'model.json'), (m) => {
      (m as { modelTopology: { ssd: { numClasses: number } } }).modelTopology.ssd.numClasses = 3;
    });
    await fs.rm(path.join(dir, 'classes.json'));
  },
  /does not fit a tiny SSD at 64 with 3 classes/,
);
