import test from 'ava';
import { RecordDecoder } from '../../../shared/recordio/decoder.js';
import {
  encodeRecord,
  findAlignedMagics,
  findRecordHead,
  lrecCflag,
  lrecLength,
  MAGIC_BYTES,
  RECORDIO_MAX_LENGTH,
  recordHeadProblem,
} from '../../../shared/recordio/record.js';
import { syntheticPayloads } from '../../helpers/recordio-fixtures.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const M = '0a23d7ce';

/** The parts of an encoded record as [cflag, length, data hex]. */
function parts(encoded: Buffer): [number, number, string][] {
  const out: [number, number, string][] = [];
  let pos = 0;
  while (pos < encoded.length) {
    const lrec = encoded.readUInt32LE(pos + 4);
    const length = lrecLength(lrec);
    out.push([lrecCflag(lrec), length, encoded.subarray(pos + 8, pos + 8 + length).toString('hex')]);
    pos += 8 + ((length + 3) & ~3);
  }
  return out;
}

function decodeOne(encoded: Buffer): Buffer {
  const decoder = new RecordDecoder({ source: 'mem.rec' });
  const records = decoder.write(encoded);
  decoder.end();
  if (records.length !== 1) throw new Error(`expected one record, got ${records.length}`);
  return records[0]!.payload;
}

test('encodeRecord matches the SPEC 3.1 synthetic vector', (t) => {
  const encoded = encodeRecord(hex(`${M} 11223344`));
  t.is(encoded.toString('hex'), `${M}00000020${M}0400006011223344`);
});

test('encodeRecord writes a payload without the magic as one cflag-0 part with zero padding', (t) => {
  for (const size of [0, 1, 2, 3, 4, 5, 7, 8]) {
    const payload = Buffer.alloc(size, 0xab);
    const encoded = encodeRecord(payload);
    t.is(encoded.length, 8 + Math.ceil(size / 4) * 4, `size ${size}`);
    t.deepEqual(parts(encoded), [[0, size, payload.toString('hex')]]);
    t.true(
      encoded.subarray(8 + size).every((b) => b === 0),
      `padding of size ${size} is zero`,
    );
  }
});

test('encodeRecord splits on a magic at the end of the payload, leaving an empty last part', (t) => {
  const encoded = encodeRecord(hex(`aabbccdd ${M}`));
  t.deepEqual(parts(encoded), [
    [1, 4, 'aabbccdd'],
    [3, 0, ''],
  ]);
});

test('encodeRecord emits zero-length parts for several magics in a row', (t) => {
  const encoded = encodeRecord(hex(`${M} ${M} ${M} 01`));
  t.deepEqual(parts(encoded), [
    [1, 0, ''],
    [2, 0, ''],
    [2, 0, ''],
    [3, 1, '01'],
  ]);
  t.is(encoded.length, 4 * 8 + 4);
});

test('encodeRecord ignores unaligned magics and a magic in the unaligned tail', (t) => {
  const unaligned = hex(`00 ${M} 000000`);
  t.deepEqual(parts(encodeRecord(unaligned)), [[0, 8, unaligned.toString('hex')]]);
  // len & ~3 = 4: the aligned word at 4 is not complete, so it is not scanned.
  const tail = hex(`11223344 0a23d7`);
  t.deepEqual(findAlignedMagics(tail), []);
});

test('encodeRecord rejects a payload longer than 2^29 - 1 bytes', (t) => {
  const huge = new Uint8Array(1);
  Object.defineProperty(huge, 'length', { value: RECORDIO_MAX_LENGTH + 1 });
  t.throws(() => encodeRecord(huge), { message: /536870912 bytes exceeds the RecordIO limit of 536870911/ });
});

test('encoded records with planted magics decode back to the same payloads', (t) => {
  const payloads = syntheticPayloads(11, 300);
  let split = 0;
  for (const payload of payloads) {
    const encoded = encodeRecord(payload);
    if (findAlignedMagics(payload).length > 0) split++;
    t.true(decodeOne(encoded).equals(payload));
    t.is(encoded.length % 4, 0);
  }
  t.true(split > 50, `only ${split} payloads were split`);
});

test('findRecordHead skips unaligned magics and continuation parts', (t) => {
  const buf = Buffer.concat([hex(`00 ${M} 000000`), encodeRecord(hex(`${M} 11223344`))]);
  // The first part (cflag 1) at 8 is a head; the cflag-3 part at 16 is not.
  t.is(findRecordHead(buf, 0), 8);
  t.is(findRecordHead(buf, 0, 9), -1);
  // Alignment is by file offset: with buf[0] at file offset 3, the magic at index 1 is aligned (and
  // the word after it, 0x0a000000, reads as cflag 0).
  t.is(findRecordHead(buf, 3), 1);
  t.is(recordHeadProblem(buf, 16), 'a continuation part (cflag 3)');
  t.is(recordHeadProblem(buf, 0), 'bad magic 0xd7230a00');
  t.is(recordHeadProblem(buf, 8), null);
  t.true(MAGIC_BYTES.equals(hex(M)));
});
