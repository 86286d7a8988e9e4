import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRng, RNG_STREAM } from '../../shared/random.js';
import { encodeRecord, MAGIC_BYTES } from '../../shared/recordio/record.js';
import { createStorage } from '../../shared/storage/open-storage.js';
import { startS3Server } from './s3-server.js';

/**
 * Fixtures for RecordIO tests: the real im2rec file from shared/testdata (see its ORIGIN.md) and
 * deterministic synthetic payloads. shared/ sits beside the repository (here and in CI).
 */
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const testdata = path.resolve(repoRoot, '..', 'shared', 'testdata', 'recordio');

export const DOG_REC = path.join(testdata, 'gluoncv_dog_val.rec');
export const DOG_IDX = path.join(testdata, 'gluoncv_dog_val.idx');
/** The im2rec input list: `index \t labels... \t path`, an independent source for the label values. */
export const DOG_LST = path.join(testdata, 'gluoncv_dog_val.lst');
if (!existsSync(DOG_REC))
  throw new Error(`test data missing: ${DOG_REC} (shared/ must sit beside the repository)`);

/** What ORIGIN.md says the dog file holds. */
export const DOG = {
  sizeBytes: 655_472,
  offsets: [0, 163_868, 327_736, 491_604],
  payloadBytes: 163_859,
  imageBytes: 163_759,
  width: 768,
  height: 576,
  labelCount: 19,
} as const;

/** The label floats of each .lst line, rounded to float32 as im2rec stores them. */
export async function dogListLabels(): Promise<number[][]> {
  const text = await fs.readFile(DOG_LST, 'utf8');
  return text
    .trim()
    .split('\n')
    .map((line) =>
      line
        .split('\t')
        .slice(1, -1)
        .map((v) => Math.fround(Number(v))),
    );
}

/** A fresh temp directory, removed at teardown. */
export async function tempDir(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'recordio-test-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * `count` deterministic payloads of varied sizes (0..maxBytes), some with the magic word planted at
 * aligned offsets (start, middle, end, several in a row) and some at unaligned ones, so the escaping
 * rules get exercised.
 */
export function syntheticPayloads(seed: number, count: number, maxBytes = 3000): Buffer[] {
  return Array.from({ length: count }, (_, i) => {
    const rng = createRng(seed, RNG_STREAM.test, i);
    const size = rng.int(maxBytes + 1);
    const payload = Buffer.alloc(size);
    for (let k = 0; k < size; k++) payload[k] = rng.int(256);
    const plants = size >= 4 ? rng.int(4) : 0;
    for (let p = 0; p < plants; p++) {
      const aligned = rng.chance(0.8);
      const at = aligned ? 4 * rng.int(Math.floor(size / 4)) : rng.int(size - 3);
      MAGIC_BYTES.copy(payload, at);
      if (rng.chance(0.3) && at + 8 <= size) MAGIC_BYTES.copy(payload, at + 4);
    }
    return payload;
  });
}

/** A RecordIO file of `syntheticPayloads`, with each record's offset (counted from `baseOffset`). */
export function syntheticFile(seed: number, count: number, maxBytes = 3000, baseOffset = 0) {
  const payloads = syntheticPayloads(seed, count, maxBytes);
  const encoded = payloads.map((p) => encodeRecord(p));
  const offsets: number[] = [];
  let at = baseOffset;
  for (const e of encoded) {
    offsets.push(at);
    at += e.length;
  }
  return { bytes: Buffer.concat(encoded), payloads, offsets };
}

/** Splits `bytes` into chunks at the given cut points (sorted, deduplicated, inside the buffer). */
export function cutAt(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.filter((c) => c > 0 && c < bytes.length))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const c of [...points, bytes.length]) {
    chunks.push(Buffer.from(bytes.subarray(from, c)));
    from = c;
  }
  return chunks;
}

/**
 * The dog .rec and .idx uploaded to a fresh s3rver, for CLI tests that pass `--s3-endpoint`. `env`
 * carries s3rver's keys (and no endpoint) for the CLI's injected environment.
 */
export async function dogOnS3(t: { teardown(fn: () => Promise<void>): void }) {
  const server = await startS3Server(t);
  const { AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION } = server.env;
  const storage = createStorage({ s3Endpoint: server.endpoint, s3Credentials: server.credentials });
  try {
    const url = `s3://${server.bucket}/dog.rec`;
    await storage.write(url, await fs.readFile(DOG_REC));
    await storage.write(`s3://${server.bucket}/dog.idx`, await fs.readFile(DOG_IDX));
    return { endpoint: server.endpoint, url, env: { AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION } };
  } finally {
    await storage.close();
  }
}
