import fs from 'node:fs/promises';
import test from 'ava';
import { RecordIOError } from '../../../shared/errors.js';
import { RecordDecoder } from '../../../shared/recordio/decoder.js';
import {
  encodeImageRecord,
  IR_HEADER_BYTES,
  parseImageRecord,
} from '../../../shared/recordio/image-record.js';
import { DOG, DOG_REC, dogListLabels } from '../../helpers/recordio-fixtures.js';

const ctx = { source: 'x.rec', offset: 64 };

test('parseImageRecord reads the IRHeader, 19 labels and the JPEG of every dog record', async (t) => {
  const decoder = new RecordDecoder({ source: DOG_REC });
  const records = decoder.write(await fs.readFile(DOG_REC));
  decoder.end();
  const lst = await dogListLabels();
  t.is(records.length, 4);
  records.forEach((r, i) => {
    t.is(r.payload.length, DOG.payloadBytes);
    const rec = parseImageRecord(r.payload, { source: DOG_REC, offset: r.offset });
    t.is(rec.flag, DOG.labelCount);
    t.is(rec.label, 0);
    t.is(rec.id, i);
    t.is(rec.id2, 0);
    t.deepEqual(Array.from(rec.labels!), lst[i]);
    t.is(rec.image.length, DOG.imageBytes);
    t.is(rec.image.subarray(0, 2).toString('hex'), 'ffd8');
    t.is(rec.image.subarray(-2).toString('hex'), 'ffd9');
  });
});

test('encodeImageRecord stores a scalar label with flag 0, as MXNet pack()', (t) => {
  const payload = encodeImageRecord({ label: 7.5, id: 3, image: Buffer.from('img') });
  t.is(payload.length, IR_HEADER_BYTES + 3);
  const rec = parseImageRecord(payload, ctx);
  t.like(rec, { flag: 0, label: 7.5, labels: null, id: 3, id2: 0 });
  t.is(rec.image.toString(), 'img');
});

test('encodeImageRecord stores a label array with flag = length and header label 0', (t) => {
  const payload = encodeImageRecord({
    label: [2, 5, 1, 0.25, 0.5, 0.75, 1],
    id: 2 ** 40 + 5,
    id2: 9,
    image: new Uint8Array([1, 2]),
  });
  const rec = parseImageRecord(payload, ctx);
  t.like(rec, { flag: 7, label: 0, id: 2 ** 40 + 5, id2: 9 });
  t.deepEqual(Array.from(rec.labels!), [2, 5, 1, 0.25, 0.5, 0.75, 1]);
  t.deepEqual([...rec.image], [1, 2]);
});

test('parseImageRecord copies labels that are not 4-byte aligned', (t) => {
  const payload = encodeImageRecord({ label: [1, 2, 3], id: 0, image: new Uint8Array(0) });
  const shifted = Buffer.alloc(payload.length + 1).subarray(1);
  payload.copy(shifted);
  t.deepEqual(Array.from(parseImageRecord(shifted, ctx).labels!), [1, 2, 3]);
});

test('parseImageRecord errors name the file, offset and field', (t) => {
  const short = t.throws(() => parseImageRecord(Buffer.alloc(20), ctx), { instanceOf: RecordIOError });
  t.is(short.message, 'x.rec at byte 64: record payload of 20 bytes is shorter than the 24-byte IRHeader');
  const payload = encodeImageRecord({ label: [1, 2], id: 0, image: new Uint8Array(0) });
  payload.writeUInt32LE(3, 0);
  t.throws(() => parseImageRecord(payload, ctx), {
    message: 'x.rec at byte 64: IRHeader flag 3 needs 12 label bytes but the payload has 8 after the header',
  });
  const big = encodeImageRecord({ label: 0, id: 0, image: new Uint8Array(0) });
  big.writeBigUInt64LE(2n ** 60n, 8);
  t.throws(() => parseImageRecord(big, ctx), {
    message: /IRHeader id 1152921504606846976 is larger than 2\^53 - 1/,
  });
});

test('encodeImageRecord rejects ids that are not non-negative integers', (t) => {
  t.throws(() => encodeImageRecord({ label: 0, id: -1, image: new Uint8Array(0) }), {
    message: /id must be a non-negative integer, got -1/,
  });
  t.throws(() => encodeImageRecord({ label: 0, id: 0, id2: 0.5, image: new Uint8Array(0) }), {
    message: /id2 must be/,
  });
});
