import { EventEmitter, on } from 'node:events';
import fs from 'node:fs/promises';
import type { IncomingHttpHeaders, IncomingMessage, Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { S3Credentials } from '../../shared/storage/s3.js';

/**
 * A real S3-compatible server (s3rver 3.7) on 127.0.0.1 with an ephemeral port, a temp directory and
 * one pre-created bucket, for tests that go through the real @aws-sdk/client-s3.
 *
 * s3rver knows one access key id, S3RVER (secret S3RVER); it rejects other key ids but does not check
 * SigV4 signatures. Pass `credentials` explicitly (or `env` to a child process): nothing here touches
 * process.env.
 */
export interface S3TestServer {
  /** 'http://127.0.0.1:PORT' */
  endpoint: string;
  bucket: string;
  credentials: S3Credentials;
  /** The same endpoint and keys as AWS_* variables: for createStorage({ env }) or a child process. */
  env: NodeJS.ProcessEnv;
  /** Every HTTP request the server received, in arrival order (method, path?query, headers). */
  requests: S3Request[];
  /** Resolves with the first request (already received or still to come) that matches. */
  waitForRequest(matches: (request: S3Request) => boolean, signal?: AbortSignal): Promise<S3Request>;
  close(): Promise<void>;
}

export interface S3Request {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
}

/** The part of s3rver's (untyped, CommonJS) API used here. */
interface S3rverInstance {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
  httpServer?: Server;
}
type S3rverClass = new (options: Record<string, unknown>) => S3rverInstance;

const require = createRequire(import.meta.url);
const S3rver = require('s3rver') as S3rverClass;

/**
 * s3rver encrypts ListObjectsV2 continuation tokens with single DES, which OpenSSL 3 (Node 17+) only
 * offers in its legacy provider, so every truncated listing fails with InternalError. Triple DES with
 * three equal keys is single DES, bit for bit, and is still in the default provider: route s3rver's
 * 'des' through it. Only this (otherwise failing) algorithm name is touched, in test processes only.
 */
function patchSingleDesForS3rver(): void {
  const crypto = require('node:crypto') as typeof import('node:crypto');
  const tripled = (key: unknown) => Buffer.concat([key as Buffer, key as Buffer, key as Buffer]);
  const { createCipheriv, createDecipheriv } = crypto;
  const patched = crypto as unknown as Record<'createCipheriv' | 'createDecipheriv', unknown>;
  patched.createCipheriv = (algorithm: string, key: Buffer, iv: Buffer, ...rest: []) =>
    algorithm === 'des'
      ? createCipheriv('des-ede3-cbc', tripled(key), iv)
      : createCipheriv(algorithm, key, iv, ...rest);
  patched.createDecipheriv = (algorithm: string, key: Buffer, iv: Buffer, ...rest: []) =>
    algorithm === 'des'
      ? createDecipheriv('des-ede3-cbc', tripled(key), iv)
      : createDecipheriv(algorithm, key, iv, ...rest);
}
patchSingleDesForS3rver();

export async function startS3Server(
  t?: { teardown(fn: () => Promise<void>): void },
  { bucket = 'test-bucket' } = {},
): Promise<S3TestServer> {
  const directory = await fs.mkdtemp(path.join(os.tmpdir(), 's3rver-'));
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory,
    configureBuckets: [{ name: bucket }],
  });
  let port: number;
  try {
    ({ port } = await server.run());
  } catch (err) {
    await fs.rm(directory, { recursive: true, force: true });
    throw err;
  }
  const requests: S3Request[] = [];
  const arrivals = new EventEmitter();
  server.httpServer?.on('request', ({ method = '', url = '', headers }: IncomingMessage) => {
    const request = { method, url, headers };
    requests.push(request);
    arrivals.emit('request', request);
  });
  async function waitForRequest(matches: (request: S3Request) => boolean, signal?: AbortSignal) {
    const seen = requests.find(matches);
    if (seen) return seen;
    for await (const [request] of on(arrivals, 'request', { signal })) {
      if (matches(request)) return request as S3Request;
    }
    throw new Error('unreachable: the request stream never ends');
  }
  const endpoint = `http://127.0.0.1:${port}`;
  const credentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      // Clients keep connections alive; drop them so close() does not wait for their idle timeout.
      server.httpServer?.closeAllConnections();
      await server.close();
      await fs.rm(directory, { recursive: true, force: true });
    })();
    return closing;
  };
  t?.teardown(close);
  return {
    endpoint,
    bucket,
    credentials,
    env: {
      AWS_ENDPOINT_URL_S3: endpoint,
      AWS_ACCESS_KEY_ID: credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
      AWS_REGION: 'us-east-1',
    },
    requests,
    waitForRequest,
    close,
  };
}
