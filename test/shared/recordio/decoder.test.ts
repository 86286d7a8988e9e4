import test from 'ava';
import { RecordIOError } from '../../../shared/errors.js';
import { createRng, RNG_STREAM } from '../../../shared/random.js';
import { type DecodedRecord, RecordDecoder } from '../../../shared/recordio/decoder.js';
import { encodeLrec, encodeRecord, RECORDIO_MAGIC } from '../../../shared/recordio/record.js';
import { cutAt, syntheticFile } from '../../helpers/recordio-fixtures.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

function header(cflag: number, length: number, magic = RECORDIO_MAGIC): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(magic, 0);
  b.writeUInt32LE(encodeLrec(cflag, length), 4);
  return b;
}

/** Feeds the chunks in order and ends; returns the records. */
function decodeChunks(chunks: Buffer[], options: { baseOffset?: number; maxRecordBytes?: number } = {}) {
  const decoder = new RecordDecoder({ source: 'data/train.rec', ...options });
  const out: DecodedRecord[] = [];
  for (const chunk of chunks) decoder.write(chunk, out);
  decoder.end();
  return out;
}

function decodeError(bytes: Buffer, options = {}): RecordIOError {
  const decoder = new RecordDecoder({ source: 'data/train.rec', ...options });
  try {
    decoder.write(bytes);
    decoder.end();
  } catch (err) {
    if (err instanceof RecordIOError) return err;
    throw err;
  }
  throw new Error('expected a RecordIOError');
}

test('decoder joins the SPEC 3.1 two-part record and re-inserts the magic, at every chunk split', (t) => {
  const encoded = hex('0A23D7CE 00000020 0A23D7CE 04000060 11223344');
  for (let cut = 0; cut <= encoded.length; cut++) {
    const records = decodeChunks(cutAt(encoded, [cut]));
    t.is(records.length, 1);
    t.is(records[0]!.offset, 0);
    t.is(records[0]!.payload.toString('hex'), '0a23d7ce11223344', `cut at ${cut}`);
  }
});

test('decoder joins a three-part record with zero-length parts fed one byte at a time', (t) => {
  const payload = hex('0a23d7ce 0a23d7ce aabbccdd 0a23d7ce ee');
  const encoded = encodeRecord(payload);
  const records = decodeChunks(
    cutAt(
      encoded,
      Array.from({ length: encoded.length }, (_, i) => i),
    ),
  );
  t.deepEqual(
    records.map((r) => r.payload.toString('hex')),
    [payload.toString('hex')],
  );
});

test('decoder returns whole records inside a chunk as views of it, without copying', (t) => {
  const chunk = Buffer.concat([encodeRecord(hex('01020304')), encodeRecord(hex('0506'))]);
  const records = decodeChunks([chunk]);
  t.deepEqual(
    records.map((r) => [r.offset, r.payload.toString('hex')]),
    [
      [0, '01020304'],
      [12, '0506'],
    ],
  );
  for (const r of records) t.is(r.payload.buffer, chunk.buffer);
});

test('decoder reports file offsets from baseOffset across random chunkings of a synthetic stream', (t) => {
  const { bytes: file, payloads, offsets } = syntheticFile(3, 120, 3000, 4096);
  for (let trial = 0; trial < 5; trial++) {
    const rng = createRng(7, RNG_STREAM.test, trial);
    const cuts = Array.from({ length: 1 + rng.int(200) }, () => rng.int(file.length));
    const records = decodeChunks(cutAt(file, cuts), { baseOffset: 4096 });
    t.deepEqual(
      records.map((r) => r.offset),
      offsets,
    );
    t.true(records.every((r, i) => r.payload.equals(payloads[i]!)));
  }
});

test('decoder keeps no reference to a chunk after write(), so chunk buffers can be reused', (t) => {
  const { bytes, payloads } = syntheticFile(9, 60, 900);
  const decoder = new RecordDecoder({ source: 'reused.rec' });
  const reused = Buffer.alloc(64);
  let seen = 0;
  for (let at = 0; at < bytes.length; at += reused.length) {
    const n = bytes.copy(reused, 0, at, at + reused.length);
    for (const r of decoder.write(reused.subarray(0, n)))
      t.true(r.payload.equals(payloads[seen++]!), `record ${seen - 1}`);
    reused.fill(0xee); // what a reader reusing its buffer would do before the next read
  }
  decoder.end();
  t.is(seen, payloads.length);
});

test('decoder rejects a bad magic naming the file and byte offset, after returning the records before it', (t) => {
  const good = encodeRecord(hex('01020304'));
  const bytes = Buffer.concat([good, hex('deadbeef 00000000')]);
  const decoder = new RecordDecoder({ source: 'data/train.rec' });
  const out: DecodedRecord[] = [];
  const err = t.throws(() => decoder.write(bytes, out), { instanceOf: RecordIOError });
  t.is(err.message, 'data/train.rec at byte 12: bad magic 0xefbeadde, expected 0xced7230a');
  t.is(err.offset, 12);
  t.is(out.length, 1);
  // The decoder stays failed.
  t.throws(() => decoder.write(good), { is: err });
  t.throws(() => decoder.end(), { is: err });
});

test('decoder names the legacy dmlc-core magic', (t) => {
  const err = decodeError(header(0, 0, 0x3ed7230a));
  t.regex(err.message, /at byte 0: legacy dmlc-core magic 0x3ed7230a/);
});

test('decoder rejects a truncated header, body and padding at end()', (t) => {
  const record = encodeRecord(hex('0102030405')); // 8 + 5 + 3 pad
  const cases: [Buffer, RegExp][] = [
    [
      Buffer.concat([record, record.subarray(0, 5)]),
      /at byte 16: truncated record header: the data ends at byte 21, 5 of 8/,
    ],
    [record.subarray(0, 10), /at byte 0: truncated record body \(2 of 5 bytes\): the data ends at byte 10/],
    [record.subarray(0, 14), /at byte 0: truncated record padding: the data ends at byte 14/],
  ];
  for (const [bytes, message] of cases) t.regex(decodeError(bytes).message, message);
});

test('decoder rejects a multi-part record whose last part is missing', (t) => {
  const encoded = encodeRecord(hex('11111111 0a23d7ce 22222222'));
  const firstPart = encoded.subarray(0, 12);
  t.regex(
    decodeError(firstPart).message,
    /at byte 0: truncated multi-part record: the data ends at byte 12 before its last part/,
  );
  const middleCut = Buffer.concat([firstPart, header(3, 4)]);
  t.regex(
    decodeError(middleCut).message,
    /at byte 0: truncated record body \(0 of 4 bytes\) in the part at byte 12/,
  );
});

test('decoder rejects a record over maxRecordBytes, single or joined', (t) => {
  t.regex(
    decodeError(encodeRecord(Buffer.alloc(40)), { maxRecordBytes: 32 }).message,
    /at byte 0: record length 40 exceeds the limit of 32 bytes/,
  );
  const joined = encodeRecord(Buffer.concat([Buffer.alloc(20), hex('0a23d7ce'), Buffer.alloc(12)]));
  t.regex(
    decodeError(joined, { maxRecordBytes: 32 }).message,
    /at byte 0: record length 36 exceeds the limit of 32/,
  );
});

test('decoder rejects a bad cflag order and an invalid cflag', (t) => {
  const cases: [Buffer, RegExp][] = [
    [header(2, 0), /at byte 0: bad cflag sequence: cflag 2 \(middle part\) without a first part/],
    [header(3, 0), /at byte 0: bad cflag sequence: cflag 3 \(last part\) without a first part/],
    [
      Buffer.concat([header(1, 0), header(0, 0)]),
      /at byte 8: bad cflag sequence: cflag 0 where the multi-part record at byte 0 needs a middle \(2\) or last \(3\) part/,
    ],
    [Buffer.concat([header(1, 0), header(1, 0)]), /at byte 8: bad cflag sequence: cflag 1 where/],
    [header(5, 0), /at byte 0: invalid cflag 5 \(must be 0..3\)/],
  ];
  for (const [bytes, message] of cases) t.regex(decodeError(bytes).message, message);
});

test('decoder reports a bad magic inside a multi-part record with the record start', (t) => {
  const bytes = Buffer.concat([
    encodeRecord(hex('00000000')),
    header(1, 4),
    hex('01020304'),
    hex('00000000 00000000'),
  ]);
  t.regex(
    decodeError(bytes).message,
    /at byte 24: bad magic 0x00000000, expected 0xced7230a \(inside the multi-part record at byte 12\)/,
  );
});

test('decoder bytesNeeded says how much of the current part is missing', (t) => {
  const decoder = new RecordDecoder({ source: 'x.rec' });
  t.is(decoder.bytesNeeded, 8);
  decoder.write(header(1, 6).subarray(0, 3));
  t.is(decoder.bytesNeeded, 5);
  decoder.write(header(1, 6).subarray(3));
  t.is(decoder.pendingRecordOffset, 0);
  // 6 body bytes + 2 padding + the next part's 8-byte header.
  t.is(decoder.bytesNeeded, 16);
  decoder.write(hex('0102'));
  t.is(decoder.bytesNeeded, 14);
});

test('decoder rejects a length that swallows the next head with its padding, at every chunk split', (t) => {
  // A 6-byte record (2 pad bytes) before a whole one. Lengths 9..11 take 1..3 bytes of the next magic as
  // data and the rest as padding: the next head is lost unless the padded word is checked too.
  const next = encodeRecord(Buffer.from('next'));
  for (const length of [9, 10, 11]) {
    const bytes = Buffer.concat([header(0, length), Buffer.from('abcdef\0\0'), next]);
    for (let cut = 0; cut <= bytes.length; cut++) {
      const decoder = new RecordDecoder({ source: 'data/train.rec' });
      const out: DecodedRecord[] = [];
      const err = t.throws(() => {
        for (const chunk of cutAt(bytes, [cut])) decoder.write(chunk, out);
      });
      t.deepEqual(out, [], `length ${length}, cut at ${cut}`);
      t.is(
        err?.message,
        `data/train.rec at byte 0: damaged length: the record claims ${length} bytes, running over the record head at byte 16 (data never holds an aligned magic word: the writer escapes them)`,
      );
    }
  }
});
