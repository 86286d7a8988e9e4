import fs from 'node:fs/promises';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { ConfigError, isClusterError } from '../../../shared/errors.js';
import { type CreateStorageOptions, createStorage } from '../../../shared/storage/open-storage.js';
import { startS3Server } from '../../helpers/s3-server.js';
import { collectChunks, tempDir } from './fixtures.js';

function open(t: ExecutionContext, options?: CreateStorageOptions) {
  const storage = createStorage(options);
  t.teardown(() => storage.close());
  return storage;
}

test('createStorage sends s3:// URLs to the S3 endpoint and paths to the file system', async (t) => {
  const server = await startS3Server(t);
  const dir = await tempDir(t, 'open-storage-');
  const storage = open(t, { s3Endpoint: server.endpoint, s3Credentials: server.credentials, env: {} });
  const local = path.join(dir, 'train.rec');
  const remote = `s3://${server.bucket}/data/train.rec`;
  await storage.write(local, Buffer.from('on disk'));
  const before = server.requests.length;
  await storage.write(remote, Buffer.from('in the bucket'));
  t.is(server.requests.length, before + 1, 'one PUT reached the server');
  t.is(await fs.readFile(local, 'utf8'), 'on disk');
  t.is((await storage.read(remote)).toString(), 'in the bucket');
  t.deepEqual(
    (await storage.list(`s3://${server.bucket}/data/`)).map((info) => info.url),
    [remote],
  );
  t.deepEqual(
    (await storage.list(`${dir}/`)).map((info) => info.url),
    [local],
  );
  t.is(Buffer.concat(await collectChunks(storage.readStream(remote))).toString(), 'in the bucket');
});

test('createStorage finds the endpoint and keys in the AWS_* variables of the given env', async (t) => {
  const server = await startS3Server(t);
  const storage = open(t, { env: server.env });
  await storage.write(`s3://${server.bucket}/e.bin`, Buffer.from('x'));
  t.true(server.requests.some((r) => r.method === 'PUT' && r.url.startsWith(`/${server.bucket}/e.bin`)));
});

test('createStorage rejects a bad --s3-endpoint at once, before any S3 URL is used', (t) => {
  const err = t.throws(() => createStorage({ s3Endpoint: 'localhost:9000', env: {} }), {
    instanceOf: ConfigError,
  });
  t.regex(err.message, /^--s3-endpoint: /);
});

test('createStorage close is idempotent and later calls reject with a StorageError', async (t) => {
  const server = await startS3Server(t);
  const dir = await tempDir(t, 'open-storage-');
  const storage = createStorage({ s3Endpoint: server.endpoint, s3Credentials: server.credentials });
  await storage.write(`s3://${server.bucket}/c.bin`, Buffer.from('x'));
  await storage.close();
  await storage.close();
  for (const url of [`s3://${server.bucket}/c.bin`, path.join(dir, 'c.bin')]) {
    const err = await t.throwsAsync(storage.read(url));
    t.true(isClusterError(err, 'STORAGE'));
    t.is(err.message, `${url}: storage is closed`);
    await t.throwsAsync(collectChunks(storage.readStream(url)), { message: `${url}: storage is closed` });
  }
});
