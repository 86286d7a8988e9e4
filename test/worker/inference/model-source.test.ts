import fs from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import test from 'ava';
import { isClusterError } from '../../../shared/errors.js';
import { createLocalStorage } from '../../../shared/storage/local.js';
import { createStorage } from '../../../shared/storage/open-storage.js';
import type { Storage } from '../../../shared/storage/storage.js';
import { openModelSource } from '../../../worker/inference/model-source.js';
import { createTar, type TarEntry } from '../../../worker/train/tar.js';
import { startS3Server } from '../../helpers/s3-server.js';
import { tempDir } from './fixtures.js';

const text = (s: string) => new Uint8Array(Buffer.from(s));
const MODEL_FILES: TarEntry[] = [
  { name: 'model.json', data: text('{"manifest":1}') },
  { name: 'hyperparams.json', data: text('{"num_classes":"2"}') },
];
const archiveOf = (entries: TarEntry[]) => gzipSync(createTar(entries));

function localStorage(t: { teardown(fn: () => unknown): void }): Storage {
  const storage = createLocalStorage();
  t.teardown(() => storage.close());
  return storage;
}

async function readIn(source: { storage: Storage; dir: string }, name: string): Promise<string> {
  return (await source.storage.read(path.join(source.dir, name))).toString('utf8');
}

test('openModelSource takes a model directory, or the model.json in it, as it is', async (t) => {
  const storage = localStorage(t);
  const dir = await tempDir(t);
  for (const entry of MODEL_FILES) await fs.writeFile(path.join(dir, entry.name), entry.data);
  for (const url of [dir, path.join(dir, 'model.json')]) {
    const source = await openModelSource(url, { storage });
    t.is(source.kind, 'directory');
    t.is(source.dir, dir);
    t.is(source.storage, storage);
    t.is(await readIn(source, 'hyperparams.json'), '{"num_classes":"2"}');
  }
});

test('openModelSource unpacks a model.tar.gz in memory, from its path or from a directory holding only it', async (t) => {
  const storage = localStorage(t);
  const dir = await tempDir(t);
  const archive = path.join(dir, 'model.tar.gz');
  await fs.writeFile(archive, archiveOf(MODEL_FILES));
  for (const url of [archive, dir]) {
    const source = await openModelSource(url, { storage });
    t.is(source.kind, 'archive');
    t.is(source.dir, archive);
    t.is(await readIn(source, 'model.json'), '{"manifest":1}');
    await source.close();
    await source.close();
    await t.throwsAsync(readIn(source, 'model.json'), { message: /storage is closed/ });
  }
  t.deepEqual((await fs.readdir(dir)).sort(), ['model.tar.gz']);
});

test('openModelSource roots an archive at its shallowest model.json and leaves other folders out', async (t) => {
  const storage = localStorage(t);
  const dir = await tempDir(t);
  const archive = path.join(dir, 'job.tgz');
  const nested = [
    { name: 'out/model/hyperparams.json', data: text('{}') },
    { name: 'out/model/model.json', data: text('root') },
    { name: 'out/model/old/model.json', data: text('older') },
    { name: 'out/logs.txt', data: text('log') },
  ];
  await fs.writeFile(archive, archiveOf(nested));
  const source = await openModelSource(archive, { storage });
  t.is(await readIn(source, 'model.json'), 'root');
  t.is(await readIn(source, path.join('old', 'model.json')), 'older');
  t.deepEqual(
    (await source.storage.list(`${archive}/`)).map((o) => path.relative(archive, o.url)),
    ['hyperparams.json', 'model.json', path.join('old', 'model.json')],
  );
});

test('openModelSource names what is missing or broken', async (t) => {
  const storage = localStorage(t);
  const dir = await tempDir(t);
  const nothing = await t.throwsAsync(openModelSource(dir, { storage }), {
    message: new RegExp(`--model ${dir}: no model.json or model.tar.gz there`),
  });
  t.true(isClusterError(nothing, 'NOT_FOUND'));
  const notGzip = path.join(dir, 'a.tar.gz');
  await fs.writeFile(notGzip, 'plain text');
  const err = await t.throwsAsync(openModelSource(notGzip, { storage }), {
    message: /a\.tar\.gz: not a gzip file/,
  });
  t.true(isClusterError(err, 'MODEL'));
  const noManifest = path.join(dir, 'b.tar.gz');
  await fs.writeFile(noManifest, archiveOf([{ name: 'weights.bin', data: text('x') }]));
  await t.throwsAsync(openModelSource(noManifest, { storage }), {
    message: /b\.tar\.gz: the archive has no model\.json \(it holds weights\.bin\)/,
  });
  await t.throwsAsync(openModelSource(path.join(dir, 'gone.tar.gz'), { storage }), {
    message: /gone\.tar\.gz/,
  });
});

test('openModelSource reads a model directory and a model.tar.gz on S3', async (t) => {
  const s3 = await startS3Server(t);
  const storage = createStorage({ s3Endpoint: s3.endpoint, s3Credentials: s3.credentials });
  t.teardown(() => storage.close());
  const prefix = `s3://${s3.bucket}/jobs/one`;
  for (const entry of MODEL_FILES) await storage.write(`${prefix}/model/${entry.name}`, entry.data);
  await storage.write(`${prefix}/output/model.tar.gz`, archiveOf(MODEL_FILES));
  const dir = await openModelSource(`${prefix}/model`, { storage });
  t.is(dir.kind, 'directory');
  t.is((await dir.storage.read(`${prefix}/model/model.json`)).toString(), '{"manifest":1}');
  const archive = await openModelSource(`${prefix}/output`, { storage });
  t.is(archive.kind, 'archive');
  t.is(archive.dir, `${prefix}/output/model.tar.gz`);
  t.is((await archive.storage.read(`${archive.dir}/hyperparams.json`)).toString(), '{"num_classes":"2"}');
});
