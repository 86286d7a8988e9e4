import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { deferred } from '../../../shared/abort.js';
import { isClusterError } from '../../../shared/errors.js';
import { createRng, RNG_STREAM } from '../../../shared/random.js';
import { createLocalStorage, TEMP_MARKER } from '../../../shared/storage/local.js';
import type { ByteRange } from '../../../shared/storage/storage.js';
import { collectChunks, inChunks, randomBytes, tempDir } from './fixtures.js';

const MiB = 1024 * 1024;

function openStorage(t: ExecutionContext, options?: Parameters<typeof createLocalStorage>[0]) {
  const storage = createLocalStorage(options);
  t.teardown(() => storage.close());
  return storage;
}

/** A body that sends `first`, then waits for `release` before sending `rest`. */
function pausedBody(first: Uint8Array, rest: Uint8Array) {
  const sentFirst = deferred<void>();
  const release = deferred<void>();
  async function* body() {
    yield first;
    sentFirst.resolve();
    await release.promise;
    yield rest;
  }
  return { body: body(), sentFirst: sentFirst.promise, release: () => release.resolve() };
}

test('local write creates parent directories and leaves no temp file behind', async (t) => {
  const dir = await tempDir(t, 'local-storage-');
  const storage = openStorage(t);
  await storage.write(path.join(dir, 'a/b/c.bin'), randomBytes(100));
  await storage.write(path.join(dir, 'a/b/c.bin'), randomBytes(50));
  t.deepEqual(await fs.readdir(path.join(dir, 'a/b')), ['c.bin']);
  t.is((await fs.stat(path.join(dir, 'a/b/c.bin'))).size, 50);
});

test('local readers see the old object until a slow overwrite completes, and list hides the temp file', async (t) => {
  const dir = await tempDir(t, 'local-storage-');
  const storage = openStorage(t);
  const url = path.join(dir, 'model.json');
  const old = Buffer.from('{"version":1}');
  await storage.write(url, old);
  const next = randomBytes(2 * MiB);
  const paused = pausedBody(next.subarray(0, MiB), next.subarray(MiB));
  const writing = storage.write(url, paused.body);
  await paused.sentFirst;
  t.true((await storage.read(url)).equals(old), 'half-written data is invisible');
  t.is((await fs.readdir(dir)).length, 2, 'the temp file exists on disk meanwhile');
  t.deepEqual(
    (await storage.list(`${dir}/`)).map((info) => info.url),
    [url],
  );
  paused.release();
  await writing;
  t.true((await storage.read(url)).equals(next));
  t.deepEqual(await fs.readdir(dir), ['model.json']);
});

test('local write keeps the old object and removes the temp file when the body fails', async (t) => {
  const dir = await tempDir(t, 'local-storage-');
  const storage = openStorage(t);
  const url = path.join(dir, 'x.rec');
  await storage.write(url, Buffer.from('old'));
  async function* failingBody() {
    yield Buffer.from('new-part');
    throw new Error('source broke');
  }
  const err = await t.throwsAsync(storage.write(url, failingBody()));
  t.true(isClusterError(err, 'STORAGE'));
  t.true(err.message.startsWith(`${url}: write failed`), err.message);
  t.is((err.cause as Error).message, 'source broke');
  t.is((await storage.read(url)).toString(), 'old');
  t.deepEqual(await fs.readdir(dir), ['x.rec']);
});

test('local concurrent writers to one path each use their own temp file; the last rename wins', async (t) => {
  const dir = await tempDir(t, 'local-storage-');
  const storage = openStorage(t);
  const url = path.join(dir, 'shared.bin');
  const bodies = [randomBytes(MiB, 1), randomBytes(MiB, 2), randomBytes(MiB, 3)];
  await Promise.all(bodies.map((bytes) => storage.write(url, inChunks(bytes, 64 * 1024))));
  const result = await storage.read(url);
  t.true(
    bodies.some((bytes) => bytes.equals(result)),
    'one whole body, never a mix',
  );
  t.deepEqual(await fs.readdir(dir), ['shared.bin']);
});

test('local readStream uses 8 MiB chunks by default', async (t) => {
  const dir = await tempDir(t, 'local-storage-');
  const storage = openStorage(t);
  const url = path.join(dir, 'big.rec');
  await fs.writeFile(url, randomBytes(17 * MiB));
  const sizes = (await collectChunks(storage.readStream(url))).map((chunk) => chunk.length);
  t.deepEqual(sizes, [8 * MiB, 8 * MiB, MiB]);
});

test('local readStream with reuseBuffers yields the same bytes as fresh chunks over random ranges', async (t) => {
  const dir = await tempDir(t, 'local-storage-');
  // Chunk sizes that do not divide each other or the file, so chunk edges fall everywhere.
  const storage = openStorage(t, { chunkBytes: 65_537, reusedChunkBytes: 10_007 });
  const url = path.join(dir, 'data.rec');
  const bytes = randomBytes(MiB + 13);
  await fs.writeFile(url, bytes);
  const rng = createRng(7, RNG_STREAM.test, bytes.length);
  const ranges: (ByteRange | undefined)[] = [
    undefined,
    { start: 0, end: 5 },
    { start: bytes.length, end: bytes.length + 9 },
  ];
  for (let i = 0; i < 20; i++) {
    const start = rng.int(bytes.length + 2);
    ranges.push({ start, end: start + rng.int(bytes.length / 2) });
  }
  for (const range of ranges) {
    const fresh = Buffer.concat(await collectChunks(storage.readStream(url, { range })));
    const reused = Buffer.concat(await collectChunks(storage.readStream(url, { range, reuseBuffers: true })));
    const what = range ? `[${range.start}, ${range.end})` : 'whole file';
    t.true(fresh.equals(bytes.subarray(range?.start, range?.end)), what);
    t.true(reused.equals(fresh), what);
  }
});

test('local readStream with reuseBuffers alternates between two buffers of reusedChunkBytes', async (t) => {
  const dir = await tempDir(t, 'local-storage-');
  const storage = openStorage(t, { reusedChunkBytes: 64 * 1024 });
  const url = path.join(dir, 'data.rec');
  await fs.writeFile(url, randomBytes(5 * 64 * 1024 + 100));
  const chunks: Buffer[] = [];
  for await (const chunk of storage.readStream(url, { reuseBuffers: true })) chunks.push(chunk);
  t.deepEqual(
    chunks.map((chunk) => chunk.length),
    [...Array(5).fill(64 * 1024), 100],
  );
  const memory = chunks.map((chunk) => chunk.buffer);
  t.is(new Set(memory).size, 2, 'two buffers in all');
  t.true(
    memory.every((buffer, k) => buffer === memory[k % 2]),
    'used in turn',
  );
});

test('local readStream with reuseBuffers names a missing file and a folder', async (t) => {
  const dir = await tempDir(t, 'local-storage-');
  const storage = openStorage(t);
  const missing = path.join(dir, 'missing.rec');
  const gone = await t.throwsAsync(collectChunks(storage.readStream(missing, { reuseBuffers: true })));
  t.true(isClusterError(gone, 'NOT_FOUND'));
  t.is(gone.message, `${missing}: read failed: no such file`);
  const folder = await t.throwsAsync(collectChunks(storage.readStream(dir, { reuseBuffers: true })));
  t.true(isClusterError(folder, 'STORAGE'));
  t.is(folder.message, `${dir}: read failed: is a directory`);
});

test('local list returns URLs in the form of a relative prefix', async (t) => {
  const dir = await tempDir(t, 'local-storage-');
  const storage = openStorage(t);
  await storage.write(path.join(dir, 'data/train.rec'), randomBytes(3));
  await storage.write(path.join(dir, 'data/train.idx'), randomBytes(2));
  const relative = `${path.relative(process.cwd(), dir)}/data/train`;
  t.deepEqual(
    (await storage.list(relative)).map((info) => [info.url, info.sizeBytes]),
    [
      [`${relative}.idx`, 2],
      [`${relative}.rec`, 3],
    ],
  );
  t.true((await storage.read(`${relative}.rec`)).length === 3);
});

test('local list follows a symlink to a file but not a symlinked folder', async (t) => {
  const dir = await tempDir(t, 'local-storage-');
  const storage = openStorage(t);
  await storage.write(path.join(dir, 'real/a.bin'), randomBytes(4));
  await fs.symlink(path.join(dir, 'real/a.bin'), path.join(dir, 'link.bin'));
  await fs.symlink(path.join(dir, 'real'), path.join(dir, 'loop'));
  t.deepEqual(
    (await storage.list(`${dir}/`)).map((info) => [info.url, info.sizeBytes]),
    [
      [`${dir}/link.bin`, 4],
      [`${dir}/real/a.bin`, 4],
    ],
  );
  t.is((await storage.list(`${dir}/loop/`)).length, 1, 'a symlinked folder named by the prefix is listed');
});

test('local list skips leftover temp files of a crashed writer', async (t) => {
  const dir = await tempDir(t, 'local-storage-');
  const storage = openStorage(t);
  await fs.writeFile(path.join(dir, `.x.bin${TEMP_MARKER}999-1`), 'partial');
  await storage.write(path.join(dir, 'x.bin'), randomBytes(1));
  t.deepEqual(
    (await storage.list(`${dir}/`)).map((info) => info.url),
    [`${dir}/x.bin`],
  );
});

test('local read of a folder is a STORAGE error that names it', async (t) => {
  const dir = await tempDir(t, 'local-storage-');
  const storage = openStorage(t);
  const err = await t.throwsAsync(storage.read(dir));
  t.true(isClusterError(err, 'STORAGE'));
  t.is(err.message, `${dir}: read failed: is a directory`);
});

test('local read through a regular file used as a folder is NOT_FOUND', async (t) => {
  const dir = await tempDir(t, 'local-storage-');
  const storage = openStorage(t);
  await storage.write(path.join(dir, 'file'), randomBytes(1));
  const err = await t.throwsAsync(storage.read(path.join(dir, 'file/inner')));
  t.true(isClusterError(err, 'NOT_FOUND'));
  t.deepEqual(await storage.list(path.join(dir, 'file/')), []);
});

test('local write over a folder is a STORAGE error naming the path, leaving no temp file', async (t) => {
  const dir = await tempDir(t, 'local-storage-');
  const storage = openStorage(t);
  await fs.mkdir(path.join(dir, 'taken'));
  const err = await t.throwsAsync(storage.write(path.join(dir, 'taken'), randomBytes(1)));
  t.true(isClusterError(err, 'STORAGE'));
  t.is(err.message, `${path.join(dir, 'taken')}: write failed: is a directory`);
  t.deepEqual(await fs.readdir(dir), ['taken']);
});

test('local write below a regular file, directly or deeper, is a STORAGE error naming the path', async (t) => {
  const dir = await tempDir(t, 'local-storage-');
  const storage = openStorage(t);
  await storage.write(path.join(dir, 'file'), randomBytes(1));
  // mkdir -p fails with EEXIST for file/x.bin and with ENOTDIR for file/sub/x.bin
  for (const url of [path.join(dir, 'file/x.bin'), path.join(dir, 'file/sub/x.bin')]) {
    const err = await t.throwsAsync(storage.write(url, randomBytes(1)));
    t.true(isClusterError(err, 'STORAGE'));
    t.is(err.message, `${url}: write failed: a parent is a file`);
  }
});

test('local delete keeps an emptied folder unless asked; with removeEmptyFolder the last object takes its folder along', async (t) => {
  const dir = await tempDir(t, 'local-storage-');
  const storage = openStorage(t);
  const mine = path.join(dir, 'model');
  await storage.write(path.join(mine, '.probe'), Buffer.from('x'));
  await storage.delete(path.join(mine, '.probe'));
  t.deepEqual(await fs.readdir(mine), [], 'a folder the user may have made stays, with its owner and mode');
  const ckpt = path.join(dir, 'ckpt', 'ckpt-000000000004');
  await storage.write(path.join(ckpt, 'state.json'), Buffer.from('{}'));
  await storage.write(path.join(ckpt, 'tensors.bin'), Buffer.from([1, 2, 3]));
  await storage.write(path.join(dir, 'ckpt', 'other.txt'), Buffer.from('x'));
  await storage.delete(path.join(ckpt, 'state.json'), { removeEmptyFolder: true });
  t.deepEqual(await fs.readdir(ckpt), ['tensors.bin'], 'a folder that still holds an object stays');
  await storage.delete(path.join(ckpt, 'tensors.bin'), { removeEmptyFolder: true });
  t.deepEqual(
    await fs.readdir(path.join(dir, 'ckpt')),
    ['other.txt'],
    'the emptied folder is gone, not its parent',
  );
  await storage.delete(path.join(ckpt, 'tensors.bin')); // deleting a missing object still succeeds
  await fs.mkdir(ckpt);
  await storage.delete(path.join(ckpt, 'tensors.bin'), { removeEmptyFolder: true });
  t.false(
    existsSync(ckpt),
    'an empty folder left by an interrupted prune goes with the next delete of its object',
  );
  await storage.write(path.join(ckpt, 'state.json'), Buffer.from('{"again":1}'));
  t.is((await storage.read(path.join(ckpt, 'state.json'))).toString(), '{"again":1}');
});

test('local delete below a regular file succeeds, as for any missing object', async (t) => {
  const dir = await tempDir(t, 'local-storage-');
  const storage = openStorage(t);
  await storage.write(path.join(dir, 'file'), Buffer.from('keep'));
  await storage.delete(path.join(dir, 'file/ckpt-000000000003/manifest.json'));
  t.is((await storage.read(path.join(dir, 'file'))).toString(), 'keep');
});
