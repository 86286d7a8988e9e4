import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import test from 'ava';
import { compileHyperparameters } from '../../../shared/config/compile.js';
import { ClusterError } from '../../../shared/errors.js';
import { createMemoryStorage } from '../../../shared/storage/memory.js';
import { createStorage } from '../../../shared/storage/open-storage.js';
import type { Storage } from '../../../shared/storage/storage.js';
import { createSsdModel, type SsdModel } from '../../../worker/model/ssd.js';
import {
  loadBaseWeights,
  loadWeights,
  readWeights,
  requirePretrainedBase,
  saveWeights,
  WEIGHTS_FORMAT,
  type WeightsFile,
} from '../../../worker/model/weights.js';
import { startS3Server } from '../../helpers/s3-server.js';

test.before(async () => {
  await tf.setBackend('cpu');
});

function tiny(t: { teardown(fn: () => void): void }, seed: number, numClasses = 3): SsdModel {
  const model = createSsdModel({ baseNetwork: 'tiny', imageShape: 64, numClasses, seed });
  t.teardown(() => model.dispose());
  return model;
}

function memory(t: { teardown(fn: () => Promise<void>): void }): Storage {
  const storage = createMemoryStorage();
  t.teardown(() => storage.close());
  return storage;
}

async function valuesOf(model: SsdModel, names = [...model.variables.keys()]): Promise<Float32Array[]> {
  return Promise.all(names.map(async (n) => (await model.variables.get(n)!.data()) as Float32Array));
}

async function readManifest(storage: Storage, url: string): Promise<WeightsFile> {
  return JSON.parse((await storage.read(url)).toString('utf8')) as WeightsFile;
}

test.serial('saveWeights writes a sharded tfjs manifest that tf.io.decodeWeights reads back', async (t) => {
  const storage = memory(t);
  const model = tiny(t, 1);
  const { manifestUrl, shardUrls, sizeBytes } = await saveWeights(model, 'mem/run1', storage, {
    shardSizeBytes: 300_000,
  });
  t.is(manifestUrl, 'mem/run1/model.json');
  t.is(sizeBytes, model.parameterCount() * 4);
  t.is(shardUrls.length, Math.ceil(sizeBytes / 300_000));
  const file = await readManifest(storage, manifestUrl);
  t.is(file.format, WEIGHTS_FORMAT);
  t.deepEqual(file.modelTopology, { ssd: { baseNetwork: 'tiny', imageShape: 64, numClasses: 3 } });
  const [group] = file.weightsManifest;
  const n = shardUrls.length;
  t.deepEqual(
    group!.paths,
    shardUrls.map((_, i) => `group1-shard${i + 1}of${n}.bin`),
  );
  t.deepEqual(shardUrls[n - 1], `mem/run1/group1-shard${n}of${n}.bin`);
  t.deepEqual(
    group!.weights.map((w) => w.name),
    [...model.variables.keys()],
  );
  const bytes = Buffer.concat(await Promise.all(shardUrls.map((u) => storage.read(u))));
  const decoded = tf.io.decodeWeights(new Uint8Array(bytes).buffer, group!.weights);
  const expected = await valuesOf(model);
  [...model.variables.keys()].forEach((name, i) => {
    t.deepEqual(decoded[name]!.dataSync(), expected[i], name);
  });
  tf.dispose(decoded);
});

test.serial('loadWeights restores every variable of a model saved on the local file system', async (t) => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'ssd-weights-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const storage = createStorage();
  t.teardown(() => storage.close());
  const saved = tiny(t, 1);
  await saveWeights(saved, path.join(dir, 'final', 'model.json'), storage);
  const restored = tiny(t, 2);
  t.notDeepEqual(await valuesOf(restored), await valuesOf(saved));
  const before = tf.memory().numTensors;
  await loadWeights(restored, path.join(dir, 'final'), storage);
  t.is(tf.memory().numTensors, before);
  t.deepEqual(await valuesOf(restored), await valuesOf(saved));
});

test.serial('weights round-trip through a real S3-compatible server', async (t) => {
  const s3 = await startS3Server(t);
  const storage = createStorage({ s3Endpoint: s3.endpoint, s3Credentials: s3.credentials });
  t.teardown(() => storage.close());
  const saved = tiny(t, 4);
  const url = `s3://${s3.bucket}/runs/a/model.json`;
  await saveWeights(saved, url, storage, { shardSizeBytes: 1_000_000 });
  const restored = tiny(t, 5);
  await loadWeights(restored, url, storage);
  t.deepEqual(await valuesOf(restored), await valuesOf(saved));
});

test.serial('loadWeights refuses a model of another shape and names the mismatched layers', async (t) => {
  const storage = memory(t);
  await saveWeights(tiny(t, 1, 5), 'm', storage);
  const model = tiny(t, 2, 3);
  const before = await valuesOf(model);
  await t.throwsAsync(loadWeights(model, 'm', storage), {
    message:
      /m\/model\.json does not fit a tiny SSD at 64 with 3 classes \(the file says .*"numClasses":5.*shape mismatches: tiny_source1_mbox_conf\/kernel \[3,3,64,24\] in the file, \[3,3,64,16\] in the model/,
  });
  t.deepEqual(await valuesOf(model), before, 'nothing changed');
});

test.serial(
  'loadBaseWeights sets the base, skips heads of another class count and ignores unknown names',
  async (t) => {
    const storage = memory(t);
    const source = tiny(t, 1, 5);
    await saveWeights(source, 'base', storage);
    // An ImageNet-style file also carries a classifier the detector does not have.
    const file = await readManifest(storage, 'base/model.json');
    file.weightsManifest[0]!.weights.push({ name: 'fc8/bias', shape: [2], dtype: 'float32' });
    await storage.write('base/group1-shard2of2.bin', Buffer.alloc(8));
    file.weightsManifest[0]!.paths.push('group1-shard2of2.bin');
    await storage.write('base/model.json', Buffer.from(JSON.stringify(file)));

    const model = tiny(t, 2, 3);
    const report = await loadBaseWeights(model, 'base/model.json', storage);
    const base = model.params.filter((p) => p.part === 'base').map((p) => p.name);
    t.deepEqual(await valuesOf(model, base), await valuesOf(source, base));
    t.true(base.every((n) => report.loaded.includes(n)));
    t.true(report.loaded.includes('tiny_source1_mbox_loc/kernel'));
    t.deepEqual(
      report.skipped.map((s) => s.name),
      ['tiny_source1', 'tiny_source2', 'tiny_source3', 'tiny_source4']
        .map((l) => `${l}_mbox_conf/kernel`)
        .flatMap((k) => [k, k.replace('kernel', 'bias')]),
    );
    t.deepEqual(report.unexpected, ['fc8/bias']);
  },
);

test.serial('loadBaseWeights lists the base weights a file lacks and changes nothing', async (t) => {
  const storage = memory(t);
  await saveWeights(tiny(t, 1), 'partial', storage);
  const file = await readManifest(storage, 'partial/model.json');
  const kept = file.weightsManifest[0]!.weights.filter((w) => !w.name.startsWith('tiny_conv6'));
  // Rewrite the file without tiny_conv6*: drop those bytes too, so the manifest stays consistent.
  const { tensors } = await readWeights('partial', storage);
  const bytes = Buffer.concat(
    kept.map((w) => Buffer.from((tensors[w.name]!.dataSync() as Float32Array).buffer)),
  );
  tf.dispose(tensors);
  await storage.write('partial/group1-shard1of1.bin', bytes);
  file.weightsManifest[0] = { paths: ['group1-shard1of1.bin'], weights: kept };
  await storage.write('partial/model.json', Buffer.from(JSON.stringify(file)));
  const model = tiny(t, 2);
  const before = await valuesOf(model);
  await t.throwsAsync(loadBaseWeights(model, 'partial', storage), {
    message:
      /partial\/model\.json is not a tiny base for this model: missing 3 of \d+ base weights: tiny_conv6\/kernel, tiny_conv6_gn\/gamma, tiny_conv6_gn\/beta/,
  });
  t.deepEqual(await valuesOf(model), before);
});

test.serial('readWeights names the manifest and the field or shard that is wrong', async (t) => {
  const storage = memory(t);
  await saveWeights(tiny(t, 1), 'w', storage);
  const good = (await storage.read('w/model.json')).toString();
  await storage.write(
    'w/group1-shard1of1.bin',
    (await storage.read('w/group1-shard1of1.bin')).subarray(0, 1000),
  );
  await t.throwsAsync(readWeights('w', storage), {
    message:
      /w\/model\.json: weightsManifest\[0\] lists \d+ bytes of weights but its shards \(w\/group1-shard1of1\.bin\) hold 1000/,
  });
  const broken = JSON.parse(good) as { weightsManifest: { weights: { shape: unknown }[] }[] };
  broken.weightsManifest[0]!.weights[1]!.shape = 'big';
  await storage.write('w/model.json', Buffer.from(JSON.stringify(broken)));
  await t.throwsAsync(readWeights('w', storage), {
    message: /w\/model\.json: weightsManifest\[0\]\.weights\[1\] needs/,
  });
  await storage.write('w/model.json', Buffer.from('{"weightsManifest": '));
  await t.throwsAsync(readWeights('w', storage), { message: /w\/model\.json: not a JSON weights manifest/ });
  await t.throwsAsync(readWeights('nowhere', storage), { message: /nowhere\/model\.json/ });
});

test.serial('saveWeights stops when its signal is aborted', async (t) => {
  const storage = memory(t);
  const controller = new AbortController();
  controller.abort(new ClusterError('ABORTED', 'shutting down'));
  await t.throwsAsync(saveWeights(tiny(t, 1), 'a', storage, { signal: controller.signal }), {
    message: 'shutting down',
  });
  t.deepEqual(await storage.list('a/'), []);
});

test('requirePretrainedBase asks for --pretrained-base when use_pretrained_model=1 and none was given', (t) => {
  t.throws(() => requirePretrainedBase({ use_pretrained_model: 1, base_network: 'vgg-16' }, undefined), {
    code: 'CONFIG',
    message:
      /use_pretrained_model=1 needs --pretrained-base URL \(a tfjs weights manifest of the vgg-16 base\).*pass --use-pretrained-model 0 to train from scratch/,
  } as never);
  t.throws(() => requirePretrainedBase({ use_pretrained_model: '1', base_network: 'resnet-50' }, undefined), {
    message: /resnet-50 base/,
  });
  t.is(
    requirePretrainedBase({ use_pretrained_model: 1, base_network: 'vgg-16' }, 's3://b/vgg'),
    's3://b/vgg',
  );
  t.is(requirePretrainedBase({ use_pretrained_model: 0, base_network: 'vgg-16' }, undefined), undefined);
  t.is(requirePretrainedBase({ use_pretrained_model: 1, base_network: 'tiny' }, undefined), undefined);
  t.throws(() => requirePretrainedBase({ use_pretrained_model: 0, base_network: 'vgg-16' }, '/w'), {
    message: /--pretrained-base \/w was given but use_pretrained_model=0/,
  });
  // tiny reads as 0 after compileHyperparameters even when the user passed 1: the message may not blame it
  const tiny = compileHyperparameters({
    num_classes: 2,
    num_training_samples: 8,
    base_network: 'tiny',
    use_pretrained_model: '1',
  });
  t.throws(() => requirePretrainedBase(tiny, '/w'), {
    message: /^--pretrained-base \/w: base_network 'tiny' has no pretrained base .*drop --pretrained-base$/,
  });
});
