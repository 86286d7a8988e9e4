import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { createRng, RNG_STREAM } from '../../../shared/random.js';

/** `sizeBytes` deterministic pseudo-random bytes: no period, so a misplaced part or chunk shows. */
export function randomBytes(sizeBytes: number, seed = 1): Buffer {
  const rng = createRng(seed, RNG_STREAM.test, sizeBytes);
  const bytes = Buffer.alloc(sizeBytes);
  let i = 0;
  for (; i + 4 <= sizeBytes; i += 4) bytes.writeUInt32LE(rng.nextUint32(), i);
  for (; i < sizeBytes; i++) bytes[i] = rng.int(256);
  return bytes;
}

/** Every chunk of a stream, in order. */
export async function collectChunks(chunks: AsyncIterable<Uint8Array>): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const chunk of chunks) out.push(Buffer.from(chunk));
  return out;
}

/** `bytes` as an async iterable of `chunkBytes` slices (a streamed request body). */
export async function* inChunks(bytes: Uint8Array, chunkBytes: number): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < bytes.length; at += chunkBytes) yield bytes.subarray(at, at + chunkBytes);
}

/** A fresh temp directory, removed when the test ends. */
export async function tempDir(t: ExecutionContext, prefix = 'storage-'): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  return dir;
}
