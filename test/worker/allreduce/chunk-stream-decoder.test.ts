import test from 'ava';
import { isClusterError } from '../../../shared/errors.js';
import { createRng, RNG_STREAM } from '../../../shared/random.js';
import {
  type ChunkHead,
  encodeChunk,
  encodeChunkFrameHead,
  type WireChunk,
} from '../../../worker/allreduce/chunk-codec.js';
import { ChunkStreamDecoder } from '../../../worker/allreduce/chunk-stream-decoder.js';
import { joinPayload } from '../../../worker/allreduce/payload.js';
import { recordChunks, type SeenChunk } from './chunk-fixtures.js';

const MAX = 1 << 20;

function chunk(index: number, dataBytes: number): WireChunk {
  const rng = createRng(5, RNG_STREAM.test, index);
  return {
    generation: 2 ** 40 + index,
    round: 7 + index,
    step: index % 3,
    bucket: 1,
    chunk: 300 + index,
    offset: 2 ** 33 + index,
    dtype: index % 2 === 0 ? 'DTYPE_F32' : 'DTYPE_F16',
    data: Uint8Array.from({ length: dataBytes }, () => rng.int(256)),
  };
}

/** A gRPC frame: flag 0, big-endian length, message. */
function frame(message: Uint8Array): Buffer {
  const out = Buffer.alloc(5 + message.byteLength);
  out.writeUInt32BE(message.byteLength, 1);
  out.set(message, 5);
  return out;
}

/** What a test compares: the fields and the payload joined. */
function plain(c: SeenChunk | WireChunk) {
  const { byteLength: _, ...fields } = c as SeenChunk;
  const data = Array.isArray(c.data) ? joinPayload(c.data) : (c.data as Uint8Array);
  return { ...fields, data: Buffer.from(data).toString('hex') };
}

function decodeAll(body: Uint8Array, sliceBytes: (i: number) => number): SeenChunk[] {
  const seen = recordChunks();
  const decoder = new ChunkStreamDecoder(MAX, seen.listener);
  for (let pos = 0, i = 0; pos < body.length; i++) {
    const n = Math.max(1, sliceBytes(i));
    decoder.write(body.subarray(pos, pos + n));
    pos += n;
  }
  decoder.end();
  return seen.chunks;
}

test('ChunkStreamDecoder decodes a stream of chunks whatever the slice boundaries', (t) => {
  const chunks = [chunk(0, 4000), chunk(1, 0), chunk(2, 18), chunk(3, 70_001)];
  const body = Buffer.concat(chunks.map((c) => frame(encodeChunk(c))));
  const rng = createRng(9, RNG_STREAM.test);
  for (const sliceBytes of [() => 1, () => 7, () => 16_384, () => body.length, () => 1 + rng.int(5000)]) {
    const decoded = decodeAll(body, sliceBytes);
    t.deepEqual(decoded.map(plain), chunks.map(plain));
    t.deepEqual(
      decoded.map((c) => c.byteLength),
      chunks.map((c) => c.data.byteLength),
    );
  }
});

test('ChunkStreamDecoder passes the payload on as views of the slices it arrived in, as they arrive', (t) => {
  const c = chunk(0, 40_000);
  const body = frame(encodeChunk(c));
  const slices = [body.subarray(0, 10_000), Buffer.from(body.subarray(10_000))];
  const seen = recordChunks();
  const decoder = new ChunkStreamDecoder(MAX, seen.listener);
  decoder.write(slices[0]!);
  t.deepEqual(seen.chunks, [], 'not complete yet');
  decoder.write(slices[1]!);
  const [got] = seen.chunks;
  t.is(got!.data.length, 2);
  t.is(got!.data[0]!.buffer, body.buffer, 'first part is a view of the first slice');
  t.is(got!.data[1]!.buffer, slices[1]!.buffer, 'second part is a view of the second slice');
  t.deepEqual(Buffer.from(joinPayload(got!.data)), Buffer.from(c.data));
});

test('ChunkStreamDecoder reads the frame head that the zero-copy sender writes before its payload', (t) => {
  const c = chunk(1, 1001);
  const head: ChunkHead = { ...c };
  delete (head as Partial<WireChunk>).data;
  const body = Buffer.concat([encodeChunkFrameHead(head, c.data.byteLength), c.data]);
  t.deepEqual(body, frame(encodeChunk(c)), 'the same bytes as a whole encoded frame');
  t.deepEqual(decodeAll(body, () => 100).map(plain), [plain(c)]);
});

test('ChunkStreamDecoder accepts fields in any order before the payload and skips unknown ones anywhere', (t) => {
  const data = Uint8Array.of(1, 2, 3, 4);
  const message = Buffer.concat([
    Buffer.from([0x38, 1]), // dtype (7) = F16
    Buffer.from([0xa0, 0x01, 0x07]), // field 20, varint
    Buffer.from([0x08, 0x05]), // generation (1) = 5
    Buffer.from([0xad, 0x01, 9, 9, 9, 9]), // field 21, fixed32
    Buffer.from([0x42, 4, ...data]), // data (8)
    Buffer.from([0xb1, 0x01, 1, 2, 3, 4, 5, 6, 7, 8]), // field 22, fixed64
    Buffer.from([0xba, 0x01, 2, 0xff, 0xff]), // field 23, bytes
  ]);
  const [got] = decodeAll(frame(message), () => 3);
  t.is(got!.generation, 5);
  t.is(got!.dtype, 'DTYPE_F16');
  t.deepEqual([...joinPayload(got!.data)], [...data]);
});

test('ChunkStreamDecoder reports a message without a payload as an empty one', (t) => {
  // proto3 writers omit an empty bytes field.
  const [got] = decodeAll(frame(Buffer.from([0x08, 0x03, 0x28, 0x02])), () => 1);
  t.like(got, { generation: 3, chunk: 2, byteLength: 0 });
  t.deepEqual(got!.data, []);
});

const rejects = test.macro((t, body: Uint8Array, message: RegExp) => {
  const err = t.throws(() => decodeAll(body, () => 2));
  t.true(isClusterError(err, 'PROTOCOL'), String(err));
  t.regex(err!.message, message);
});

test('ChunkStreamDecoder rejects a compressed message', rejects, Buffer.from([1, 0, 0, 0, 0]), /compressed/);
test(
  'ChunkStreamDecoder rejects a message above its size limit',
  rejects,
  Buffer.from([0, 0, 0x20, 0, 0]),
  /2097152-byte message exceeds the 1048576-byte limit/,
);
test(
  'ChunkStreamDecoder rejects a field that runs past the end of its message',
  rejects,
  frame(Buffer.from([0x42, 9, 1, 2])),
  /field 8 runs past the end/,
);
test(
  'ChunkStreamDecoder rejects a message that ends inside a varint',
  rejects,
  frame(Buffer.from([0x08, 0x80])),
  /ends inside a field/,
);
test(
  'ChunkStreamDecoder rejects a known field after the payload',
  rejects,
  frame(Buffer.from([0x42, 1, 9, 0x08, 0x05])),
  /field 1 comes after the payload/,
);
test(
  'ChunkStreamDecoder rejects a message with two payloads',
  rejects,
  frame(Buffer.from([0x42, 1, 9, 0x42, 1, 9])),
  /two payloads/,
);
test(
  'ChunkStreamDecoder rejects a stream that ends inside a message',
  rejects,
  frame(encodeChunk(chunk(0, 10))).subarray(0, 12),
  /ended inside a message/,
);
