import fs from 'node:fs/promises';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { RecordIOError } from '../../../shared/errors.js';
import type { CorruptData } from '../../../shared/recordio/range-scan.js';
import { openRecordIO, type RecordIOSource } from '../../../shared/recordio/reader.js';
import { CFLAG, lrecCflag, lrecLength, RECORD_HEADER_BYTES } from '../../../shared/recordio/record.js';
import { openRecordIOWriter } from '../../../shared/recordio/writer.js';
import { createLocalStorage } from '../../../shared/storage/local.js';
import { createMemoryStorage } from '../../../shared/storage/memory.js';
import type { ByteRange, Storage } from '../../../shared/storage/storage.js';
import { syntheticPayloads, tempDir } from '../../helpers/recordio-fixtures.js';

type Teardown = { teardown(fn: () => Promise<void>): void };

interface Written {
  bytes: Buffer;
  offsets: number[];
}

/** 24 records of up to 250 bytes (some split around planted magic words), through the real writer. */
async function writeFile(t: Teardown): Promise<Written> {
  const dir = await tempDir(t);
  const url = path.join(dir, 'data.rec');
  const writer = await openRecordIOWriter(url, { storage: createLocalStorage() });
  const offsets: number[] = [];
  for (const [key, payload] of syntheticPayloads(38, 24, 250).entries()) {
    offsets.push(writer.sizeBytes);
    await writer.append(key, payload);
  }
  await writer.close();
  return { bytes: await fs.readFile(url), offsets };
}

/**
 * A copy with one flipped byte in the length bits of the record at `offsets[victim]` (bits 8..15 of its
 * first lrec), so that the length points past the record but stays inside the file.
 */
function damageLength(file: Written, victim: number): Buffer {
  const bytes = Buffer.from(file.bytes);
  const at = file.offsets[victim]!;
  bytes[at + 5] = bytes[at + 5]! ^ 0x04; // +-1024 bytes; payloads are under 256, so this adds 1024
  const end = at + RECORD_HEADER_BYTES + lrecLength(bytes.readUInt32LE(at + 4));
  if (end <= (file.offsets[victim + 1] ?? bytes.length) || end >= bytes.length)
    throw new Error(`damage of record ${victim} does not point past it inside the file`);
  return bytes;
}

async function source(t: Teardown, bytes: Buffer, storage: Storage): Promise<RecordIOSource> {
  t.teardown(() => storage.close());
  await storage.write('data.rec', bytes);
  const opened = await openRecordIO('data.rec', { storage });
  t.teardown(() => opened.close());
  return opened;
}

/** Record offsets and corrupt reports of one scan, in the order the scan gave them. */
async function scanWithSkips(s: RecordIOSource, range?: ByteRange): Promise<{ seen: string[] }> {
  const seen: string[] = [];
  const onCorrupt = (c: CorruptData) => seen.push(`${c.isRecord ? 'corrupt record' : 'garbage'}@${c.offset}`);
  for await (const r of s.scan({ range, onCorrupt })) seen.push(`record@${r.offset}`);
  return { seen };
}

function expected(file: Written, victim: number): string[] {
  return file.offsets.map((o, i) => `${i === victim ? 'corrupt record' : 'record'}@${o}`);
}

test('a damaged length in a .rec without .idx costs only its own record: the scan resynchronises after its magic', async (t) => {
  const file = await writeFile(t);
  for (const victim of [0, 3, 10, 17]) {
    const s = await source(t, damageLength(file, victim), createMemoryStorage({ chunkBytes: 61 }));
    const { seen } = await scanWithSkips(s);
    t.deepEqual(seen, expected(file, victim), `victim ${victim}`);
    // Without onCorrupt the scan fails at the damaged record, not after it.
    const err = await t.throwsAsync(
      (async () => {
        for await (const _ of s.scan()) {
        }
      })(),
      { instanceOf: RecordIOError },
    );
    t.is(err.offset, file.offsets[victim]!, `victim ${victim}: ${err.message}`);
    t.regex(err.message, /length/);
  }
});

/** The first record from `from` on whose (first) part has cflag `cflag`. */
function recordWithCflag(file: Written, from: number, cflag: number): number {
  const i = file.offsets.findIndex(
    (o, i) => i >= from && lrecCflag(file.bytes.readUInt32LE(o + 4)) === cflag,
  );
  if (i < 0) throw new Error(`no record with cflag ${cflag} after record ${from}`);
  return i;
}

/**
 * Scans `bytes` split into 2 or 4 byte ranges at cuts all over [from, to], with small chunks and with
 * one chunk for the whole file; every split must give `want` (records and corrupt spots, each once).
 */
async function checkSplits(t: ExecutionContext, bytes: Buffer, from: number, to: number, want: string[]) {
  const splits: number[][] = [];
  for (let cut = from; cut <= to; cut += 4) splits.push([cut]);
  for (let cut = from; cut <= to; cut += 36) splits.push([cut, cut + 9, cut + 200]);
  for (const chunkBytes of [53, 1 << 20]) {
    const s = await source(t, bytes, createMemoryStorage({ chunkBytes }));
    for (const cuts of splits) {
      const points = [0, ...cuts, bytes.length];
      const ranges = points.slice(1).map((end, i) => ({ start: points[i]!, end }));
      const parts = await Promise.all(ranges.map((range) => scanWithSkips(s, range)));
      t.deepEqual(
        parts.flatMap((p) => p.seen),
        want,
        `chunks of ${chunkBytes}, cuts ${cuts.join(', ')}`,
      );
    }
  }
}

test('byte-range scans split around a damaged length read every intact record exactly once', async (t) => {
  const file = await writeFile(t);
  // A whole record and the first part of a split one.
  for (const victim of [recordWithCflag(file, 5, CFLAG.whole), recordWithCflag(file, 5, CFLAG.first)]) {
    const bytes = damageLength(file, victim);
    const at = file.offsets[victim]!;
    const to = at + RECORD_HEADER_BYTES + lrecLength(bytes.readUInt32LE(at + 4)) + 12;
    await checkSplits(t, bytes, file.offsets[victim - 1]! - 8, to, expected(file, victim));
  }
});

test('a damaged magic still counts as a record; bytes that frame no record are garbage', async (t) => {
  const file = await writeFile(t);
  const damagedMagic = Buffer.from(file.bytes);
  damagedMagic.writeUInt32LE(0xdeadbeef, file.offsets[4]!);
  const s = await source(t, damagedMagic, createMemoryStorage({ chunkBytes: 40 }));
  t.deepEqual((await scanWithSkips(s)).seen, expected(file, 4));
  await checkSplits(t, damagedMagic, file.offsets[3]!, file.offsets[6]!, expected(file, 4));

  const at = file.offsets[9]!;
  const junk = Buffer.concat([file.bytes.subarray(0, at), Buffer.alloc(12, 0x5a), file.bytes.subarray(at)]);
  const want = [
    ...file.offsets.slice(0, 9).map((o) => `record@${o}`),
    `garbage@${at}`,
    ...file.offsets.slice(9).map((o) => `record@${o + 12}`),
  ];
  await checkSplits(t, junk, file.offsets[8]!, at + 40, want);
});
