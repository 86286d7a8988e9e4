import test, { type ExecutionContext } from 'ava';
import { deadline } from '../../../shared/abort.js';
import { ConfigError, isClusterError } from '../../../shared/errors.js';
import { createS3Storage, resolveS3ClientConfig, type S3StorageOptions } from '../../../shared/storage/s3.js';
import { toS3StorageError } from '../../../shared/storage/s3-errors.js';
import { type S3Request, type S3TestServer, startS3Server } from '../../helpers/s3-server.js';
import { collectChunks, randomBytes } from './fixtures.js';

const MiB = 1024 * 1024;
let folderCounter = 0;

async function open(t: ExecutionContext, options: S3StorageOptions = {}) {
  const server = await startS3Server(t);
  const storage = createS3Storage({ endpoint: server.endpoint, credentials: server.credentials, ...options });
  t.teardown(() => storage.close());
  return { server, storage, base: `s3://${server.bucket}/s${++folderCounter}/` };
}

/** The requests after `from` as 'METHOD path?query', with the bucket and the folder counter elided. */
function requestLines(server: S3TestServer, from: number): string[] {
  const line = ({ method, url }: S3Request) => `${method} ${url.replace(/^\/[^/]+\/s\d+\//, '/…/')}`;
  return server.requests.slice(from).map(line);
}

test('resolveS3ClientConfig takes the endpoint from the option, then AWS_ENDPOINT_URL_S3, then AWS_ENDPOINT_URL', (t) => {
  const env = { AWS_ENDPOINT_URL_S3: 'http://s3-specific:9000', AWS_ENDPOINT_URL: 'http://generic:9000' };
  t.is(resolveS3ClientConfig({ endpoint: 'http://flag:1', env }).endpoint, 'http://flag:1');
  t.is(resolveS3ClientConfig({ env }).endpoint, 'http://s3-specific:9000');
  t.is(
    resolveS3ClientConfig({ env: { AWS_ENDPOINT_URL: 'http://generic:9000' } }).endpoint,
    'http://generic:9000',
  );
  t.is(resolveS3ClientConfig({ env: { AWS_ENDPOINT_URL_S3: '' } }).endpoint, undefined, 'empty means unset');
});

test('resolveS3ClientConfig uses path-style addressing and relaxed checksums only for a custom endpoint', (t) => {
  const custom = resolveS3ClientConfig({ endpoint: 'http://127.0.0.1:9000', env: {} });
  t.like(custom, { forcePathStyle: true, requestChecksumCalculation: 'WHEN_REQUIRED' });
  const aws = resolveS3ClientConfig({ env: {} });
  t.is(aws.forcePathStyle, undefined);
  t.is(aws.requestChecksumCalculation, undefined);
  t.is(aws.credentials, undefined, 'the SDK default credential chain');
});

test('resolveS3ClientConfig takes static keys from the given env unless credentials are passed', (t) => {
  const env = { AWS_ACCESS_KEY_ID: 'AKID', AWS_SECRET_ACCESS_KEY: 'SECRET', AWS_SESSION_TOKEN: 'TOKEN' };
  t.deepEqual(resolveS3ClientConfig({ env }).credentials, {
    accessKeyId: 'AKID',
    secretAccessKey: 'SECRET',
    sessionToken: 'TOKEN',
  });
  const explicit = { accessKeyId: 'OTHER', secretAccessKey: 'X' };
  t.deepEqual(resolveS3ClientConfig({ env, credentials: explicit }).credentials, explicit);
  t.is(
    resolveS3ClientConfig({ env: { AWS_ACCESS_KEY_ID: 'AKID' } }).credentials,
    undefined,
    'half a key pair',
  );
});

test('resolveS3ClientConfig takes the region from the option, AWS_REGION, AWS_DEFAULT_REGION, else us-east-1', (t) => {
  t.is(resolveS3ClientConfig({ region: 'eu-west-1', env: { AWS_REGION: 'x' } }).region, 'eu-west-1');
  t.is(
    resolveS3ClientConfig({ env: { AWS_REGION: 'ap-south-1', AWS_DEFAULT_REGION: 'x' } }).region,
    'ap-south-1',
  );
  t.is(resolveS3ClientConfig({ env: { AWS_DEFAULT_REGION: 'sa-east-1' } }).region, 'sa-east-1');
  t.is(resolveS3ClientConfig({ env: {} }).region, 'us-east-1');
});

test('resolveS3ClientConfig rejects an endpoint that is not an http URL, naming where it came from', (t) => {
  const fromFlag = t.throws(() => resolveS3ClientConfig({ endpoint: 'minio:9000', env: {} }), {
    instanceOf: ConfigError,
  });
  t.is(fromFlag.message, "--s3-endpoint: expected an http:// or https:// URL, got 'minio:9000'");
  const fromEnv = t.throws(() => resolveS3ClientConfig({ env: { AWS_ENDPOINT_URL_S3: 'ftp://x' } }));
  t.regex(fromEnv.message, /^AWS_ENDPOINT_URL_S3: /);
});

test('s3 write sends a small body in one PUT and a large one as a multipart upload', async (t) => {
  const { server, storage, base } = await open(t, { partSizeBytes: 5 * MiB });
  let from = server.requests.length;
  await storage.write(`${base}small.bin`, randomBytes(5 * MiB));
  t.deepEqual(requestLines(server, from), ['PUT /…/small.bin?x-id=PutObject']);
  from = server.requests.length;
  const big = randomBytes(12 * MiB);
  await storage.write(`${base}big.bin`, big);
  const lines = requestLines(server, from).map((line) => line.replace(/uploadId=[^&]+/, 'uploadId=ID'));
  t.deepEqual(lines.sort(), [
    'POST /…/big.bin?uploadId=ID',
    'POST /…/big.bin?uploads=',
    'PUT /…/big.bin?partNumber=1&uploadId=ID&x-id=UploadPart',
    'PUT /…/big.bin?partNumber=2&uploadId=ID&x-id=UploadPart',
    'PUT /…/big.bin?partNumber=3&uploadId=ID&x-id=UploadPart',
  ]);
  t.true((await storage.read(`${base}big.bin`)).equals(big));
});

test('s3 ranged reads send an inclusive Range header', async (t) => {
  const { server, storage, base } = await open(t);
  const bytes = randomBytes(100);
  await storage.write(`${base}r.bin`, bytes);
  const from = server.requests.length;
  t.true(
    Buffer.concat(
      await collectChunks(storage.readStream(`${base}r.bin`, { range: { start: 10, end: 20 } })),
    ).equals(bytes.subarray(10, 20)),
  );
  t.is(server.requests[from]?.headers.range, 'bytes=10-19');
});

test('s3 calls sharing one signal run concurrently without a MaxListenersExceededWarning', async (t) => {
  // The SDK adds abort listeners per request in flight (retry race, HTTP handler) and a read stream
  // one more: a worker's epoch signal carries a dozen concurrent ranged reads and checkpoint writes.
  const { storage, base } = await open(t);
  const bytes = randomBytes(64);
  await storage.write(`${base}c.bin`, bytes);
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
  process.on('warning', onWarning);
  t.teardown(() => process.off('warning', onWarning));
  const { signal } = new AbortController();
  const reads = Array.from({ length: 16 }, (_, i) =>
    storage.read(`${base}c.bin`, { range: { start: i, end: i + 8 }, signal }),
  );
  const stats = Array.from({ length: 16 }, () => storage.stat(`${base}c.bin`, { signal }));
  const read = await Promise.all(reads);
  await Promise.all(stats);
  t.deepEqual(
    read.map((chunk) => chunk.toString('hex')),
    read.map((_, i) => bytes.subarray(i, i + 8).toString('hex')),
  );
  await new Promise((resolve) => setImmediate(resolve)); // process warnings are emitted on a later tick
  t.deepEqual(
    warnings.filter((w) => w.startsWith('MaxListenersExceededWarning')),
    [],
  );
});

test('s3 list follows continuation tokens across pages', async (t) => {
  const { server, storage, base } = await open(t, { listPageSize: 2 });
  const names = ['a', 'b', 'c', 'd', 'e'];
  await Promise.all(names.map((name) => storage.write(`${base}${name}`, randomBytes(1))));
  const from = server.requests.length;
  t.deepEqual(
    (await storage.list(base)).map((info) => info.url),
    names.map((name) => `${base}${name}`),
  );
  t.is(requestLines(server, from).length, 3, 'three pages of at most two keys');
});

test('s3 aborting a multipart upload mid-way aborts it on the server and leaves no object', async (t) => {
  const { server, storage, base } = await open(t, { partSizeBytes: 5 * MiB, queueSize: 1 });
  const controller = new AbortController();
  const reason = new Error('shutting down');
  const limit = deadline(undefined, 10_000);
  t.teardown(() => limit.clear());
  async function* body() {
    yield randomBytes(6 * MiB, 1);
    await server.waitForRequest((r) => r.url.includes('partNumber=1'), limit.signal);
    controller.abort(reason);
    yield randomBytes(6 * MiB, 2);
  }
  t.is(
    await t.throwsAsync(storage.write(`${base}aborted.bin`, body(), { signal: controller.signal })),
    reason,
  );
  const abortRequest = await server.waitForRequest(
    (r) => r.method === 'DELETE' && r.url.includes('uploadId='),
    limit.signal,
  );
  t.true(abortRequest.url.includes('aborted.bin'));
  t.is(await storage.stat(`${base}aborted.bin`), undefined);
  t.false(
    server.requests.some((r) => r.url.includes('partNumber=3')),
    'stopped pulling the body',
  );
});

test('s3 names a missing bucket in a NOT_FOUND error', async (t) => {
  const { storage } = await open(t);
  for (const attempt of [
    () => storage.read('s3://no-such-bucket/x.rec'),
    () => storage.list('s3://no-such-bucket/dir/'),
    () => storage.write('s3://no-such-bucket/x.rec', randomBytes(1)),
  ]) {
    const err = await t.throwsAsync(attempt());
    t.true(isClusterError(err, 'NOT_FOUND'));
    t.regex(err.message, /^s3:\/\/no-such-bucket\/\S*: \w+ failed: bucket 'no-such-bucket' does not exist$/);
  }
});

test('s3 explains an unknown access key id with a credentials hint', async (t) => {
  const server = await startS3Server(t);
  const credentials = { accessKeyId: 'NOT-A-KEY', secretAccessKey: 'S3RVER' };
  const storage = createS3Storage({ endpoint: server.endpoint, credentials });
  t.teardown(() => storage.close());
  const err = await t.throwsAsync(storage.read(`s3://${server.bucket}/x`));
  t.true(isClusterError(err, 'STORAGE'));
  t.regex(
    err.message,
    /^s3:\/\/test-bucket\/x: read failed: the access key id is not known to the store.*AWS_ACCESS_KEY_ID/,
  );
  // stat is a HEAD: the 403 has no body, so the SDK knows no error code ('UnknownError (Unknown)')
  const bare = await t.throwsAsync(storage.stat(`s3://${server.bucket}/x`));
  t.true(isClusterError(bare, 'STORAGE'));
  t.regex(bare.message, /^s3:\/\/test-bucket\/x: stat failed: access denied \(HTTP 403.*AWS_ACCESS_KEY_ID/);
});

test('s3 explains a refused connection by pointing at the endpoint', async (t) => {
  const server = await startS3Server();
  await server.close(); // a port that was just free
  const storage = createS3Storage({ endpoint: server.endpoint, credentials: server.credentials, env: {} });
  t.teardown(() => storage.close());
  const err = await t.throwsAsync(storage.stat('s3://b1b/x'));
  t.true(isClusterError(err, 'STORAGE'));
  t.regex(err.message, /^s3:\/\/b1b\/x: stat failed: connection refused: .*--s3-endpoint/);
});

test('s3 rejects a malformed URL or a bare bucket as an object, naming it', async (t) => {
  const storage = createS3Storage({ endpoint: 'http://127.0.0.1:1', env: {} });
  t.teardown(() => storage.close());
  const err = await t.throwsAsync(storage.read('s3://x/key'));
  t.true(isClusterError(err, 'STORAGE'));
  t.true(err.message.startsWith("s3://x/key: invalid bucket name 'x'"), err.message);
  const bare = await t.throwsAsync(storage.write('s3://bucket/', randomBytes(1)));
  t.is(bare.message, 's3://bucket/: names a bucket, not an object');
});

test('toS3StorageError maps SDK failures by name and keeps the cause', (t) => {
  const named = (name: string) => Object.assign(new Error(`${name} happened`), { name });
  const missing = toS3StorageError('s3://b1b/k', 'b1b', 'read', named('NoSuchKey'), undefined) as Error;
  t.true(isClusterError(missing, 'NOT_FOUND'));
  t.is(missing.message, 's3://b1b/k: read failed: no such object');
  t.is(missing.cause instanceof Error && missing.cause.name, 'NoSuchKey');
  const creds = toS3StorageError(
    's3://b1b/k',
    'b1b',
    'list',
    named('CredentialsProviderError'),
    undefined,
  ) as Error;
  t.regex(creds.message, /^s3:\/\/b1b\/k: list failed: no AWS credentials found \(check AWS_ACCESS_KEY_ID/);
  const other = toS3StorageError('s3://b1b/k', 'b1b', 'write', named('SlowDown'), undefined) as Error;
  t.is(other.message, 's3://b1b/k: write failed: SlowDown happened (SlowDown)');
  const reason = new Error('stop');
  t.is(toS3StorageError('s3://b1b/k', 'b1b', 'read', named('AbortError'), AbortSignal.abort(reason)), reason);
});
