import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { isClusterError } from '../../../shared/errors.js';
import { createStorage } from '../../../shared/storage/open-storage.js';
import { checkWritableDir } from '../../../shared/storage/writable-dir.js';
import { startS3Server } from '../../helpers/s3-server.js';

async function tempDir(t: ExecutionContext): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'writable-dir-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  return dir;
}

function localStorage(t: ExecutionContext) {
  const storage = createStorage({ env: {} });
  t.teardown(() => storage.close());
  return storage;
}

test('a folder that does not exist yet passes and nothing is created', async (t) => {
  const dir = await tempDir(t);
  await checkWritableDir(localStorage(t), path.join(dir, 'a', 'b', 'model'), '--model-dir');
  t.deepEqual(await fs.readdir(dir), []);
});

test('a file where the folder should be is a usage error naming the flag, and the file is kept', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'notes.txt');
  await fs.writeFile(file, 'keep me');
  const err = await t.throwsAsync(checkWritableDir(localStorage(t), file, '--model-dir'));
  t.true(isClusterError(err, 'USAGE'));
  t.is(err?.message, `--model-dir ${file}: a file is in the way; pass a folder`);
  t.is(await fs.readFile(file, 'utf8'), 'keep me');
});

test('a file above the folder is named in the error', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'notes.txt');
  await fs.writeFile(file, 'keep me');
  const target = path.join(file, 'ckpt');
  const err = await t.throwsAsync(checkWritableDir(localStorage(t), target, '--checkpoint-dir'));
  t.is(err?.message, `--checkpoint-dir ${target}: a file is in the way (${file}); pass a folder`);
});

test('an s3 prefix in a missing bucket fails naming the flag and the bucket', async (t) => {
  const server = await startS3Server(t);
  const storage = createStorage({ s3Endpoint: server.endpoint, s3Credentials: server.credentials, env: {} });
  t.teardown(() => storage.close());
  const err = await t.throwsAsync(checkWritableDir(storage, 's3://no-such-bucket/model', '--model-dir'));
  t.true(isClusterError(err, 'USAGE'));
  t.regex(
    err?.message ?? '',
    /^--model-dir s3:\/\/no-such-bucket\/model: cannot write there \(.*bucket 'no-such-bucket' does not exist\)$/,
  );
});

test('a writable s3 prefix passes and keeps no probe object', async (t) => {
  const server = await startS3Server(t);
  const storage = createStorage({ s3Endpoint: server.endpoint, s3Credentials: server.credentials, env: {} });
  t.teardown(() => storage.close());
  await checkWritableDir(storage, `s3://${server.bucket}/runs/model`, '--model-dir');
  t.deepEqual(await storage.list(`s3://${server.bucket}/`), []);
  t.true(server.requests.some((r) => r.method === 'PUT' && r.url.includes('.ssd-cluster-write-check')));
});
