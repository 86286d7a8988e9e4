import type { MethodDefinition } from '@grpc/grpc-js';
import test from 'ava';
import { loadProto } from '../../../shared/rpc/proto.js';
import {
  decodeChunk,
  encodeChunk,
  MAX_CHUNK_OVERHEAD_BYTES,
  type WireChunk,
} from '../../../worker/allreduce/chunk-codec.js';

const generic = loadProto('peer.proto').service('ssdcluster.peer.v1.Peer').OpenRing as MethodDefinition<
  unknown,
  WireChunk
>;

function chunk(over: Partial<WireChunk> = {}): WireChunk {
  return {
    generation: 2 ** 40 + 3,
    round: 129,
    step: 5,
    bucket: 2,
    chunk: 300,
    offset: 2 ** 33 + 1,
    dtype: 'DTYPE_F16',
    data: Uint8Array.from({ length: 1001 }, (_, i) => i % 251),
    ...over,
  };
}

test('encodeChunk and decodeChunk round-trip every field, including values above 2^32', (t) => {
  const c = chunk();
  const back = decodeChunk(encodeChunk(c));
  t.deepEqual({ ...back, data: Buffer.from(back.data) }, { ...c, data: Buffer.from(c.data) });
});

test('the payload starts 8-byte aligned in the gRPC frame whatever the header values', (t) => {
  for (const generation of [0, 1, 200, 70_000, 2 ** 35]) {
    for (const length of [0, 4, 100, 200, 1 << 20]) {
      const encoded = encodeChunk(chunk({ generation, data: new Uint8Array(length) }));
      const frame = Buffer.concat([Buffer.alloc(5), encoded]);
      const decoded = decodeChunk(frame.subarray(5));
      t.is(decoded.data.byteOffset % 8, 0, `generation ${generation} length ${length}`);
      t.is(decoded.data.byteLength, length);
    }
  }
});

test('chunk-codec is wire-compatible with proto-loader in both directions', (t) => {
  const c = chunk({ dtype: 'DTYPE_F32', data: new Uint8Array(new Float32Array([1.5, -2, 3.25]).buffer) });
  const viaLoader = generic.responseDeserialize(encodeChunk(c));
  t.is(viaLoader.generation, c.generation);
  t.is(viaLoader.offset, c.offset);
  t.is(viaLoader.dtype, 'DTYPE_F32');
  t.deepEqual(Buffer.from(viaLoader.data), Buffer.from(c.data));
  const fromLoader = decodeChunk(generic.responseSerialize(c));
  t.is(fromLoader.chunk, 300);
  t.is(fromLoader.round, 129);
  t.deepEqual(Buffer.from(fromLoader.data), Buffer.from(c.data));
});

test('decodeChunk skips unknown fields and rejects truncated input', (t) => {
  const known = encodeChunk(chunk({ data: Uint8Array.of(1, 2) }));
  // field 20 (varint) and field 21 (fixed32) in front of a valid message
  const withUnknown = Buffer.concat([Buffer.from([0xa0, 0x01, 0x07, 0xad, 0x01, 1, 2, 3, 4]), known]);
  t.deepEqual([...decodeChunk(withUnknown).data], [1, 2]);
  t.throws(() => decodeChunk(known.subarray(0, known.length - 1)), { message: /truncated bytes field/ });
  t.throws(() => decodeChunk(Uint8Array.of(0x08, 0x80)), { message: /truncated varint/ });
});

test('encodeChunk writes into a large enough buffer and allocates when the buffer is too small', (t) => {
  const c = chunk({ data: new Uint8Array(100).fill(7) });
  const target = Buffer.alloc(100 + MAX_CHUNK_OVERHEAD_BYTES);
  const encoded = encodeChunk(c, target);
  t.is(encoded.buffer, target.buffer, 'no new allocation');
  t.deepEqual(Buffer.from(encoded), Buffer.from(encodeChunk(c)));
  const small = Buffer.alloc(50);
  t.not(encodeChunk(c, small).buffer, small.buffer);
});
