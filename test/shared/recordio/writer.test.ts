import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { ClusterError, ConfigError, StorageError } from '../../../shared/errors.js';
import type { DecodedRecord } from '../../../shared/recordio/decoder.js';
import { parseIndexFile } from '../../../shared/recordio/index-file.js';
import { openRecordIO } from '../../../shared/recordio/reader.js';
import { encodeRecord } from '../../../shared/recordio/record.js';
import { openRecordIOWriter } from '../../../shared/recordio/writer.js';
import { createLocalStorage, TEMP_MARKER } from '../../../shared/storage/local.js';
import { createStorage } from '../../../shared/storage/open-storage.js';
import type { Storage } from '../../../shared/storage/storage.js';
import { syntheticPayloads, tempDir } from '../../helpers/recordio-fixtures.js';
import { startS3Server } from '../../helpers/s3-server.js';

async function collect(records: AsyncIterable<DecodedRecord>): Promise<DecodedRecord[]> {
  const out: DecodedRecord[] = [];
  for await (const r of records) out.push(r);
  return out;
}

async function readBack(url: string, storage: Storage) {
  const source = await openRecordIO(url, { storage });
  try {
    return { index: source.index, records: await collect(source.scan()) };
  } finally {
    await source.close();
  }
}

const temporaries = async (dir: string) => (await fs.readdir(dir)).filter((f) => f.includes(TEMP_MARKER));

test('the writer round-trips payloads with escaped magics, byte-identical to encodeRecord, with a matching .idx', async (t) => {
  const dir = await tempDir(t);
  const url = path.join(dir, 'nested', 'train.rec');
  const storage = createLocalStorage();
  const payloads = syntheticPayloads(31, 250, 2000);
  const writer = await openRecordIOWriter(url, { storage, bufferBytes: 10_000 });
  t.teardown(() => writer.abort());
  for (const [i, p] of payloads.entries()) await writer.append(i, p);
  t.is(writer.recordCount, 250);
  await writer.close();
  const bytes = await fs.readFile(url);
  t.true(bytes.equals(Buffer.concat(payloads.map((p) => encodeRecord(p)))));
  t.is(writer.sizeBytes, bytes.length);
  const { index, records } = await readBack(url, storage);
  t.deepEqual(
    index!.map((e) => [e.key, e.offset]),
    records.map((r, i) => [i, r.offset]),
  );
  t.true(records.every((r, i) => r.payload.equals(payloads[i]!)));
  t.deepEqual(await temporaries(path.dirname(url)), []);
});

test('the writer publishes nothing before close(), then renames the pair into place', async (t) => {
  const dir = await tempDir(t);
  const url = path.join(dir, 'val.rec');
  await fs.writeFile(url, 'old rec');
  await fs.writeFile(path.join(dir, 'val.idx'), 'old idx');
  const writer = await openRecordIOWriter(url, { storage: createLocalStorage(), bufferBytes: 1 });
  t.teardown(() => writer.abort());
  await writer.append('a', Buffer.from('alpha'));
  await writer.append('b', Buffer.from('beta'));
  t.is(await fs.readFile(url, 'utf8'), 'old rec');
  t.is(await fs.readFile(path.join(dir, 'val.idx'), 'utf8'), 'old idx');
  t.is((await temporaries(dir)).length, 1, 'the .rec streams to one temporary file');
  await writer.close();
  await writer.close(); // idempotent
  t.is(await fs.readFile(path.join(dir, 'val.idx'), 'utf8'), 'a\t0\nb\t16\n');
  t.deepEqual(await temporaries(dir), []);
  await writer.abort(); // a no-op after close: the files stay
  t.is((await fs.stat(url)).size, 16 + 12);
});

test('abort() removes the temporaries and leaves existing files untouched', async (t) => {
  const dir = await tempDir(t);
  const url = path.join(dir, 'val.rec');
  await fs.writeFile(url, 'old rec');
  const writer = await openRecordIOWriter(url, { storage: createLocalStorage(), bufferBytes: 1 });
  await writer.append(0, Buffer.from('payload'));
  await writer.abort();
  t.deepEqual((await fs.readdir(dir)).sort(), ['val.rec']);
  t.is(await fs.readFile(url, 'utf8'), 'old rec');
  await t.throwsAsync(writer.append(1, Buffer.from('x')), { message: /append after the writer was aborted/ });
  await t.throwsAsync(writer.close(), { message: /close after abort/ });
});

test('a failure while publishing leaves neither the pair nor temporaries behind', async (t) => {
  const dir = await tempDir(t);
  const url = path.join(dir, 'blocked.rec');
  const writer = await openRecordIOWriter(url, { storage: createLocalStorage() });
  await writer.append(0, Buffer.from('payload'));
  await fs.mkdir(url); // a directory where the .rec should go: rename fails
  await fs.writeFile(path.join(url, 'keep'), '');
  const err = await t.throwsAsync(writer.close(), { instanceOf: StorageError });
  t.regex(err.message, /blocked\.rec: writing the RecordIO pair failed/);
  t.deepEqual((await fs.readdir(dir)).sort(), ['blocked.rec']);
});

test('the writer rejects duplicate keys, keys an .idx cannot hold, and names that do not end in .rec', async (t) => {
  const dir = await tempDir(t);
  const writer = await openRecordIOWriter(path.join(dir, 'k.rec'), { storage: createLocalStorage() });
  t.teardown(() => writer.abort());
  await writer.append(1, Buffer.alloc(4));
  await t.throwsAsync(writer.append('1', Buffer.alloc(4)), {
    instanceOf: ClusterError,
    message: /duplicate key "1"/,
  });
  await t.throwsAsync(writer.append('a\tb', Buffer.alloc(4)), { message: /without tabs/ });
  t.is(writer.recordCount, 1);
  await t.throwsAsync(openRecordIOWriter(path.join(dir, 'k.idx'), { storage: createLocalStorage() }), {
    instanceOf: ConfigError,
    message: /k\.idx: a RecordIO output must be named PREFIX\.rec/,
  });
});

test('the writer uploads the pair to S3 (s3rver) at close and reads back through the reader', async (t) => {
  const server = await startS3Server(t);
  const storage = createStorage({ s3Endpoint: server.endpoint, s3Credentials: server.credentials });
  t.teardown(() => storage.close());
  const url = `s3://${server.bucket}/sets/train.rec`;
  const payloads = syntheticPayloads(41, 40, 5000);
  const writer = await openRecordIOWriter(url, { storage });
  t.teardown(() => writer.abort());
  for (const [i, p] of payloads.entries()) await writer.append(100 + i, p);
  t.is(await storage.stat(url), undefined, 'nothing is uploaded before close()');
  await writer.close();
  const idx = parseIndexFile(
    (await storage.read(`s3://${server.bucket}/sets/train.idx`)).toString(),
    'train.idx',
  );
  t.deepEqual(
    idx.map((e) => e.key),
    payloads.map((_, i) => 100 + i),
  );
  const { records } = await readBack(url, storage);
  t.true(records.every((r, i) => r.payload.equals(payloads[i]!)));
});
