import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { ClusterError, RecordIOError } from '../../../shared/errors.js';
import { createRng, RNG_STREAM } from '../../../shared/random.js';
import type { DecodedRecord } from '../../../shared/recordio/decoder.js';
import { parseImageRecord } from '../../../shared/recordio/image-record.js';
import { openRecordIO, type RecordIOSource, type ScanOptions } from '../../../shared/recordio/reader.js';
import { encodeRecord, RECORDIO_MAX_LENGTH } from '../../../shared/recordio/record.js';
import { createLocalStorage } from '../../../shared/storage/local.js';
import { createMemoryStorage } from '../../../shared/storage/memory.js';
import { createStorage } from '../../../shared/storage/open-storage.js';
import type { ByteRange, Storage } from '../../../shared/storage/storage.js';
import { DOG, DOG_IDX, DOG_REC, syntheticFile, tempDir } from '../../helpers/recordio-fixtures.js';
import { startS3Server } from '../../helpers/s3-server.js';

type Teardown = { teardown(fn: () => Promise<void>): void };

async function collect(records: AsyncIterable<DecodedRecord>): Promise<DecodedRecord[]> {
  const out: DecodedRecord[] = [];
  for await (const r of records) out.push({ offset: r.offset, payload: Buffer.from(r.payload) });
  return out;
}

async function open(
  t: Teardown,
  url: string,
  storage: Storage = createLocalStorage(),
): Promise<RecordIOSource> {
  const source = await openRecordIO(url, { storage });
  t.teardown(() => source.close());
  return source;
}

/** The dog .rec beside an .idx with the given text, in a temp dir. */
async function dogWithIndex(t: Teardown, idxText: string): Promise<string> {
  const dir = await tempDir(t);
  await fs.copyFile(DOG_REC, path.join(dir, 'dog.rec'));
  await fs.writeFile(path.join(dir, 'dog.idx'), idxText);
  return path.join(dir, 'dog.rec');
}

test('openRecordIO reads the dog file as ORIGIN.md describes: 4 records, .idx offsets, ids', async (t) => {
  const source = await open(t, DOG_REC);
  t.is(source.sizeBytes, DOG.sizeBytes);
  t.is(source.indexUrl, DOG_IDX);
  t.deepEqual(
    source.index!.map((e) => [e.key, e.offset]),
    DOG.offsets.map((o, i) => [i, o]),
  );
  const records = await collect(source.scan());
  t.deepEqual(
    records.map((r) => r.offset),
    [...DOG.offsets],
  );
  for (const [i, r] of records.entries()) {
    t.is(r.payload.length, DOG.payloadBytes);
    t.is(parseImageRecord(r.payload, { source: DOG_REC, offset: r.offset }).id, i);
    const byKey = await source.readByKey(i);
    t.is(byKey.offset, r.offset);
    t.true(byKey.payload.equals(r.payload));
  }
  t.true((await source.readAt(DOG.offsets[3])).payload.equals(records[3]!.payload));
});

test('readAt rejects offsets that are not record starts, naming the file and offset', async (t) => {
  const source = await open(t, DOG_REC);
  const cases: [number, string][] = [
    [12, `${DOG_REC} at byte 12: offset 12 is not a record start: bad magic 0x00000000`],
    [6, `${DOG_REC} at byte 6: offset 6 is not a record start: not a multiple of 4`],
    [
      DOG.sizeBytes,
      `${DOG_REC} at byte 655472: offset 655472 is not a record start: past the end (655472 bytes)`,
    ],
  ];
  for (const [offset, message] of cases) {
    const err = await t.throwsAsync(source.readAt(offset), { instanceOf: RecordIOError });
    t.is(err.message, message);
  }
});

test('readByKey rejects an .idx offset that is not a record start, naming the .idx line', async (t) => {
  const rec = await dogWithIndex(t, '0\t0\n1\t12\n');
  const source = await open(t, rec);
  t.is((await source.readByKey(0)).payload.length, DOG.payloadBytes);
  const err = await t.throwsAsync(source.readByKey(1), { instanceOf: RecordIOError });
  const idx = rec.replace(/\.rec$/, '.idx');
  t.is(
    err.message,
    `${rec} at byte 12: .idx offset 12 (${idx} line 2, key 1) is not a record start: bad magic 0x00000000`,
  );
  await t.throwsAsync(source.readByKey(7), { message: `${idx}: no key 7` });
});

test('openRecordIO rejects .idx offsets past the end or unaligned, naming the line', async (t) => {
  const past = await dogWithIndex(t, '0\t0\n1\t999999\n');
  await t.throwsAsync(openRecordIO(past, { storage: createLocalStorage() }), {
    message:
      /at byte 999999: .*dog\.idx line 2 \(key 1\): offset is past the end of the file \(655472 bytes\): the \.rec is truncated .* move the \.idx away to read the \.rec without it/,
  });
  const odd = await dogWithIndex(t, '0\t6\n');
  await t.throwsAsync(openRecordIO(odd, { storage: createLocalStorage() }), {
    message: /at byte 6: .*dog\.idx line 1 \(key 0\): offset is not a record start \(not a multiple of 4\)/,
  });
});

test('a .rec without an .idx scans sequentially and cannot be read by key', async (t) => {
  const dir = await tempDir(t);
  const rec = path.join(dir, 'plain.rec');
  await fs.copyFile(DOG_REC, rec);
  const source = await open(t, rec);
  t.is(source.index, null);
  t.is((await collect(source.scan())).length, 4);
  const err = await t.throwsAsync(source.readByKey(0), { instanceOf: ClusterError });
  t.is(err.code, 'NOT_FOUND');
});

test('openRecordIO names a missing file', async (t) => {
  const err = await t.throwsAsync(openRecordIO('/nonexistent/x.rec', { storage: createLocalStorage() }), {
    instanceOf: ClusterError,
  });
  t.is(err.code, 'NOT_FOUND');
  t.regex(err.message, /\/nonexistent\/x\.rec: no such RecordIO file/);
});

/** Random split points (some unaligned) turned into adjacent ranges covering [0, size + slack). */
function randomRanges(seed: number, size: number): ByteRange[] {
  const rng = createRng(seed, RNG_STREAM.test, size);
  const cuts = Array.from({ length: 1 + rng.int(12) }, () => rng.int(size));
  const points = [0, ...[...new Set(cuts)].sort((a, b) => a - b).filter((c) => c > 0), size + rng.int(5)];
  return points.slice(1).map((end, i) => ({ start: points[i]!, end }));
}

test('byte-range scans over random split points partition the file: every record exactly once', async (t) => {
  const file = syntheticFile(21, 150, 600);
  const dir = await tempDir(t);
  const storages: [string, Storage, string, ScanOptions][] = [
    ['memory (chunks of 97 bytes)', createMemoryStorage({ chunkBytes: 97 }), 'mem/data.rec', {}],
    ['local (chunks of 4 KiB)', createLocalStorage({ chunkBytes: 4096 }), path.join(dir, 'data.rec'), {}],
    [
      'local (two reused buffers of 4 KiB + 12)',
      createLocalStorage({ reusedChunkBytes: 4108 }),
      path.join(dir, 'reused.rec'),
      { reuseBuffers: true },
    ],
  ];
  for (const [name, storage, url, options] of storages) {
    await storage.write(url, file.bytes);
    const source = await open(t, url, storage);
    for (let trial = 0; trial < 12; trial++) {
      const ranges = randomRanges(trial, file.bytes.length);
      // collect copies each payload before asking for the next record, as reuseBuffers requires.
      const parts = await Promise.all(ranges.map((range) => collect(source.scan({ range, ...options }))));
      for (const [i, records] of parts.entries()) {
        const inside = records.every((r) => r.offset >= ranges[i]!.start && r.offset < ranges[i]!.end);
        t.true(inside, `${name}: range ${i} stays inside its bounds`);
      }
      const all = parts.flat();
      t.deepEqual(
        all.map((r) => r.offset),
        file.offsets,
        `${name}, trial ${trial}`,
      );
      t.true(all.every((r, i) => r.payload.equals(file.payloads[i]!)));
    }
  }
});

test('a range that ends before garbage reports it, so the next range cannot skip it silently', async (t) => {
  const a = encodeRecord(Buffer.from('first record'));
  const b = encodeRecord(Buffer.from('second record'));
  const storage = createMemoryStorage({ chunkBytes: 16 });
  await storage.write('bad.rec', Buffer.concat([a, Buffer.from('garbage!'), b]));
  const source = await open(t, 'bad.rec', storage);
  await t.throwsAsync(collect(source.scan({ range: { start: 0, end: a.length } })), {
    message: `bad.rec at byte ${a.length}: bad magic 0x62726167, expected 0xced7230a`,
  });
  await t.throwsAsync(collect(source.scan()), { message: /at byte 20: bad magic/ });
  // The range holding only the garbage resynchronises to the second record.
  const later = await collect(source.scan({ range: { start: a.length, end: 1000 } }));
  t.deepEqual(
    later.map((r) => r.payload.toString()),
    ['second record'],
  );
});

test('readAt of a record whose length is damaged reads about the record, not the 512 MiB it claims', async (t) => {
  // 20 records of 300 KB: more than the first read when there is no .idx.
  const records = Array.from({ length: 20 }, (_, i) => encodeRecord(Buffer.alloc(300_000, i + 1)));
  const offsets = records.map((_, i) => i * records[0]!.length);
  const bytes = Buffer.concat(records);
  const at = offsets[1]!;
  bytes.writeUInt32LE(RECORDIO_MAX_LENGTH, at + 4); // cflag 0, every length bit set
  const memory = createMemoryStorage();
  let bytesRead = 0;
  const storage: Storage = {
    ...memory,
    read: async (url, options) => {
      const chunk = await memory.read(url, options);
      if (url.endsWith('.rec')) bytesRead += chunk.length;
      return chunk;
    },
  };
  await storage.write('d.rec', bytes);
  for (const withIndex of [true, false]) {
    if (withIndex) await storage.write('d.idx', Buffer.from(offsets.map((o, i) => `${i}\t${o}\n`).join('')));
    else await storage.delete('d.idx');
    const source = await open(t, 'd.rec', storage);
    t.is(source.index !== null, withIndex);
    bytesRead = 0;
    await t.throwsAsync(source.readAt(at), { message: /damaged length: the record claims 536870911 bytes/ });
    // Before, the read after the first asked for everything the length claims: the rest of the file.
    const rest = bytes.length - at;
    t.true(
      bytesRead < rest / 2,
      `${withIndex ? 'with' : 'without'} .idx: read ${bytesRead} of ${rest} bytes`,
    );
    t.true((await source.readAt(offsets[2]!)).payload.equals(Buffer.alloc(300_000, 3)));
  }
});

test('scan reports a truncated file with the record offset, after yielding the whole records', async (t) => {
  const file = syntheticFile(5, 20, 600);
  const storage = createMemoryStorage({ chunkBytes: 64 });
  await storage.write('cut.rec', file.bytes.subarray(0, file.bytes.length - 3));
  const source = await open(t, 'cut.rec', storage);
  const seen: number[] = [];
  const err = await t.throwsAsync(
    (async () => {
      for await (const r of source.scan()) seen.push(r.offset);
    })(),
    { instanceOf: RecordIOError },
  );
  t.deepEqual(seen, file.offsets.slice(0, -1));
  t.regex(err.message, new RegExp(`^cut\\.rec at byte ${file.offsets.at(-1)}: truncated record`));
});

test('scan stops with the signal reason when aborted', async (t) => {
  const source = await open(t, DOG_REC);
  const controller = new AbortController();
  const reason = new ClusterError('ABORTED', 'stop now');
  let n = 0;
  await t.throwsAsync(
    (async () => {
      for await (const _ of source.scan({ signal: controller.signal })) {
        n++;
        controller.abort(reason);
      }
    })(),
    { is: reason },
  );
  t.true(n >= 1);
});

test('openRecordIO reads the dog file and its .idx from S3 (s3rver), by key and by range', async (t) => {
  const server = await startS3Server(t);
  const storage = createStorage({ s3Endpoint: server.endpoint, s3Credentials: server.credentials });
  t.teardown(() => storage.close());
  const url = `s3://${server.bucket}/data/dog.rec`;
  await storage.write(url, await fs.readFile(DOG_REC));
  await storage.write(`s3://${server.bucket}/data/dog.idx`, await fs.readFile(DOG_IDX));
  const source = await open(t, url, storage);
  t.is(source.indexUrl, `s3://${server.bucket}/data/dog.idx`);
  t.deepEqual(
    (await collect(source.scan())).map((r) => r.offset),
    [...DOG.offsets],
  );
  const middle = await collect(source.scan({ range: { start: 100, end: DOG.offsets[3] } }));
  t.deepEqual(
    middle.map((r) => r.offset),
    DOG.offsets.slice(1, 3),
  );
  const third = await source.readByKey(3);
  t.is(parseImageRecord(third.payload, { source: url, offset: third.offset }).id, 3);
});
