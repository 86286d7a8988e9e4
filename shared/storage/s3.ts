import { setMaxListeners } from 'node:events';
import { addAbortSignal, Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { ConfigError, StorageError } from '../errors.js';
import { s3ErrorCode, toS3StorageError } from './s3-errors.js';
import {
  type ByteRange,
  checkRange,
  compareUrls,
  type ObjectInfo,
  type ReadOptions,
  type Storage,
  type WriteOptions,
} from './storage.js';
import { formatS3Url, parseS3Url, type S3Location } from './url.js';

/**
 * Storage over S3 and S3-compatible stores (MinIO, s3rver, ...) with @aws-sdk/client-s3.
 *
 * Writes: a Uint8Array up to one part goes up in a single PutObject; anything larger, and every
 * async-iterable body, goes through lib-storage's Upload (multipart, `partSizeBytes` parts,
 * `queueSize` in flight). Either way the object only appears when the PUT or the
 * CompleteMultipartUpload succeeds, so readers never see half an object; a failed or aborted
 * multipart upload is aborted on the server (leavePartsOnError: false).
 */
export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface S3StorageOptions {
  /** Endpoint of an S3-compatible store (`--s3-endpoint`); else AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL. */
  endpoint?: string;
  /** Else AWS_REGION, AWS_DEFAULT_REGION, 'us-east-1'. */
  region?: string;
  /** Explicit credentials; else AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (/ AWS_SESSION_TOKEN) in `env`; else the SDK's chain. */
  credentials?: S3Credentials;
  /** Where endpoint, region and static keys are looked up; defaults to process.env. */
  env?: NodeJS.ProcessEnv;
  /** Multipart part size and the largest single-PUT body (default 8 MiB; S3's minimum part is 5 MiB). */
  partSizeBytes?: number;
  /** Parts uploaded concurrently (default 4). */
  queueSize?: number;
  /** ListObjectsV2 page size (default 1000, the S3 maximum). */
  listPageSize?: number;
}

const DEFAULT_PART_SIZE_BYTES = 8 * 1024 * 1024;
const DEFAULT_QUEUE_SIZE = 4;
const DEFAULT_LIST_PAGE_SIZE = 1000;

/**
 * The S3Client configuration for `options`; reads only `options.env`. The SDK itself also reads
 * AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, AWS_REGION and ~/.aws/config from process.env; resolving the
 * endpoint here as well lets us turn on path-style addressing (custom stores rarely have wildcard DNS
 * for virtual-host buckets) and relax checksums for them.
 */
export function resolveS3ClientConfig(options: S3StorageOptions = {}): S3ClientConfig {
  const env = options.env ?? process.env;
  const endpointSource = options.endpoint
    ? '--s3-endpoint'
    : env.AWS_ENDPOINT_URL_S3
      ? 'AWS_ENDPOINT_URL_S3'
      : env.AWS_ENDPOINT_URL
        ? 'AWS_ENDPOINT_URL'
        : undefined;
  const endpoint = options.endpoint || env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined;
  if (endpoint !== undefined && !/^https?:\/\/[^/]/.test(endpoint)) {
    throw new ConfigError([`${endpointSource}: expected an http:// or https:// URL, got '${endpoint}'`]);
  }
  const config: S3ClientConfig = {
    region: options.region || env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1',
    // A bucket in another region answers 301; follow it instead of failing (AWS only).
    followRegionRedirects: true,
  };
  const credentials = options.credentials ?? credentialsFromEnv(env);
  if (credentials) config.credentials = { ...credentials };
  if (endpoint !== undefined) {
    config.endpoint = endpoint;
    config.forcePathStyle = true;
    // Many S3-compatible stores predate flexible checksums (aws-chunked bodies with CRC trailers):
    // send and check a checksum only where an operation requires one.
    config.requestChecksumCalculation = 'WHEN_REQUIRED';
    config.responseChecksumValidation = 'WHEN_REQUIRED';
  }
  return config;
}

/**
 * Static keys from `env`, the first link of the SDK's own chain; reading them here means an injected
 * env (a CLI test, a child's environment) works without touching process.env. Without them the SDK's
 * chain carries on (shared config/profile, SSO, web identity, container and instance roles).
 */
function credentialsFromEnv(env: NodeJS.ProcessEnv): S3Credentials | undefined {
  const { AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey } = env;
  if (!accessKeyId || !secretAccessKey) return undefined;
  return env.AWS_SESSION_TOKEN
    ? { accessKeyId, secretAccessKey, sessionToken: env.AWS_SESSION_TOKEN }
    : { accessKeyId, secretAccessKey };
}

export function createS3Storage(options: S3StorageOptions = {}): Storage {
  return new S3Storage(options);
}

class S3Storage implements Storage {
  private readonly client: S3Client;
  private readonly partSizeBytes: number;
  private readonly queueSize: number;
  private readonly listPageSize: number;
  private closed = false;

  constructor(options: S3StorageOptions) {
    this.client = new S3Client(resolveS3ClientConfig(options));
    this.partSizeBytes = options.partSizeBytes ?? DEFAULT_PART_SIZE_BYTES;
    this.queueSize = options.queueSize ?? DEFAULT_QUEUE_SIZE;
    this.listPageSize = options.listPageSize ?? DEFAULT_LIST_PAGE_SIZE;
  }

  async read(url: string, { range, signal }: ReadOptions = {}): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const chunk of this.readStream(url, { range, signal })) chunks.push(chunk);
    return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
  }

  async *readStream(url: string, { range, signal }: ReadOptions = {}): AsyncGenerator<Buffer> {
    const { bucket, key } = this.begin(url, signal);
    const body = await this.openBody(url, { bucket, key }, range, signal);
    if (!body) return;
    try {
      for await (const chunk of body) yield chunk as Buffer;
    } catch (err) {
      throw toS3StorageError(url, bucket, 'read', err, signal);
    } finally {
      body.destroy();
    }
  }

  async write(url: string, body: Uint8Array | AsyncIterable<Uint8Array>, options: WriteOptions = {}) {
    const location = this.begin(url, options.signal);
    try {
      if (body instanceof Uint8Array && body.length <= this.partSizeBytes) {
        await this.putObject(location, body, options);
      } else {
        await this.uploadMultipart(location, body, options);
      }
    } catch (err) {
      throw toS3StorageError(url, location.bucket, 'write', err, options.signal);
    }
  }

  async stat(url: string, { signal }: { signal?: AbortSignal } = {}): Promise<ObjectInfo | undefined> {
    const { bucket, key } = this.begin(url, signal);
    try {
      const head = new HeadObjectCommand({ Bucket: bucket, Key: key });
      const out = await this.client.send(head, { abortSignal: signal });
      return { url, sizeBytes: out.ContentLength ?? 0, mtimeMs: out.LastModified?.getTime() ?? 0 };
    } catch (err) {
      // HEAD has no body, so a missing bucket also shows up as a plain 404 (NotFound).
      const code = s3ErrorCode(err);
      if (!signal?.aborted && (code === 'NotFound' || code === 'NoSuchKey')) return undefined;
      throw toS3StorageError(url, bucket, 'stat', err, signal);
    }
  }

  async list(prefix: string, { signal }: { signal?: AbortSignal } = {}): Promise<ObjectInfo[]> {
    const { bucket, key } = this.begin(prefix, signal, { isPrefix: true });
    const found: ObjectInfo[] = [];
    let token: string | undefined;
    try {
      do {
        const page = { Bucket: bucket, Prefix: key, ContinuationToken: token, MaxKeys: this.listPageSize };
        const out = await this.client.send(new ListObjectsV2Command(page), { abortSignal: signal });
        for (const { Key, Size, LastModified } of out.Contents ?? []) {
          if (Key === undefined) continue;
          found.push({
            url: formatS3Url(bucket, Key),
            sizeBytes: Size ?? 0,
            mtimeMs: LastModified?.getTime() ?? 0,
          });
        }
        token = out.IsTruncated ? out.NextContinuationToken : undefined;
      } while (token !== undefined);
    } catch (err) {
      throw toS3StorageError(prefix, bucket, 'list', err, signal);
    }
    return found.sort(compareUrls);
  }

  async delete(url: string, { signal }: { signal?: AbortSignal } = {}): Promise<void> {
    const { bucket, key } = this.begin(url, signal);
    try {
      // S3 answers 204 whether or not the key existed.
      await this.client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: signal });
    } catch (err) {
      if (s3ErrorCode(err) !== 'NoSuchKey' || signal?.aborted) {
        throw toS3StorageError(url, bucket, 'delete', err, signal);
      }
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.client.destroy();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Checks state and signal, and parses the URL; only `list` may name a bare bucket. */
  private begin(url: string, signal: AbortSignal | undefined, { isPrefix = false } = {}): S3Location {
    if (this.closed) throw new StorageError(url, 'storage is closed');
    signal?.throwIfAborted();
    if (signal) allowConcurrentCalls(signal);
    const location = parseS3Url(url);
    if (!isPrefix && location.key === '') throw new StorageError(url, 'names a bucket, not an object');
    return location;
  }

  /** The body of a GET, or undefined when the range is empty or starts at or past the end. */
  private async openBody(url: string, { bucket, key }: S3Location, range?: ByteRange, signal?: AbortSignal) {
    checkRange(url, range);
    if (range && range.start === range.end) {
      if (await this.stat(url, { signal })) return undefined;
      throw new StorageError(url, 'read failed: no such object', { code: 'NOT_FOUND' });
    }
    try {
      const Range = range && `bytes=${range.start}-${range.end - 1}`;
      const out = await this.client.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range }), {
        abortSignal: signal,
      });
      if (!(out.Body instanceof Readable))
        throw new StorageError(url, 'read failed: response body is not a stream');
      return abortable(out.Body, signal);
    } catch (err) {
      // 416: the range starts at or past the end of an object that exists.
      if (!signal?.aborted && s3ErrorCode(err) === 'InvalidRange') return undefined;
      throw toS3StorageError(url, bucket, 'read', err, signal);
    }
  }

  private async putObject(
    { bucket, key }: S3Location,
    body: Uint8Array,
    { signal, contentType }: WriteOptions,
  ) {
    const put = {
      Bucket: bucket,
      Key: key,
      Body: body,
      ContentLength: body.length,
      ContentType: contentType,
    };
    await this.client.send(new PutObjectCommand(put), { abortSignal: signal });
  }

  /** lib-storage's Upload takes an AbortController, not a signal: forward ours into one. */
  private async uploadMultipart(
    { bucket, key }: S3Location,
    body: Uint8Array | AsyncIterable<Uint8Array>,
    { signal, contentType }: WriteOptions,
  ): Promise<void> {
    const controller = new AbortController();
    const onAbort = () => controller.abort(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const stream = body instanceof Uint8Array ? body : abortable(Readable.from(body), signal);
      await new Upload({
        client: this.client,
        params: { Bucket: bucket, Key: key, Body: stream, ContentType: contentType },
        partSize: this.partSizeBytes,
        queueSize: this.queueSize,
        leavePartsOnError: false,
        abortController: controller,
      }).done();
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }
}

/**
 * The SDK adds abort listeners to the signal of every request in flight (its retry race and HTTP
 * handler; a read stream one more) and removes them when the request settles. A dozen concurrent
 * calls on one signal (a worker's ranged reads under its epoch signal) are normal use, not a leak,
 * so Node's MaxListenersExceededWarning at 11 listeners does not apply: lift the cap. (Not
 * getMaxListeners first: on Node 20 it throws for an AbortSignal whose cap is 0.)
 */
function allowConcurrentCalls(signal: AbortSignal): void {
  setMaxListeners(0, signal);
}

/** Destroys `stream` when `signal` aborts: a GET stops downloading, an upload stops pulling its body. */
function abortable(stream: Readable, signal: AbortSignal | undefined): Readable {
  return signal ? addAbortSignal(signal, stream) : stream;
}
