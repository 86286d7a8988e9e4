import test from 'ava';
import { createRpcClient, openServerStream } from '../../shared/rpc/client.js';
import { methodOf } from '../../shared/rpc/proto.js';
import type { ChunkMsg } from '../../worker/allreduce/transport.js';
import { type OpenRingRequest, peerProto, type WireChunk } from '../../worker/peer-service.js';
import { startScriptedPeer } from './allreduce/grpc-fixtures.js';

const openRing = methodOf<OpenRingRequest, WireChunk>(peerProto().service, 'OpenRing');

const f32 = new Float32Array([1.5, -2, 1e30, 7]);
const f16 = Uint8Array.of(0x00, 0x3c, 0x00, 0xc0, 0xff, 0x7b);
/** One contiguous float32 payload, a binary16 payload in three pieces, an empty one. */
const chunks: ChunkMsg[] = [
  {
    generation: 3,
    round: 2 ** 40,
    step: 1,
    bucket: 2,
    chunk: 5,
    offset: 2 ** 33,
    dtype: 'f32',
    bytes: new Uint8Array(f32.buffer),
  },
  {
    generation: 3,
    round: 1,
    step: 0,
    bucket: 0,
    chunk: 6,
    offset: 12,
    dtype: 'f16',
    bytes: [f16.subarray(0, 1), f16.subarray(1, 5), f16.subarray(5)],
  },
  {
    generation: 3,
    round: 1,
    step: 0,
    bucket: 0,
    chunk: 7,
    offset: 0,
    dtype: 'f32',
    bytes: new Uint8Array(0),
  },
];
const expected = [
  { ...chunks[0]!, dtype: 'DTYPE_F32', data: Buffer.from(f32.buffer).toString('hex') },
  { ...chunks[1]!, dtype: 'DTYPE_F16', data: Buffer.from(f16).toString('hex') },
  { ...chunks[2]!, dtype: 'DTYPE_F32', data: '' },
].map(({ bytes: _, ...rest }) => rest);

const writesChunks = test.macro(async (t, hideStream: boolean) => {
  let zeroCopy: boolean | undefined;
  const address = await startScriptedPeer(
    t,
    async (_request, sink, signal) => {
      zeroCopy = sink.zeroCopy;
      sink.accept();
      for (const c of chunks) await sink.write(c, signal);
    },
    { hideStream },
  );
  const client = createRpcClient(address);
  t.teardown(() => client.close());
  const received: WireChunk[] = [];
  const call = openServerStream(client, openRing, { generation: 3, fromRank: 1, layoutHash: 'L' }, (c) =>
    received.push(c),
  );
  await call.done;
  t.is(zeroCopy, !hideStream);
  t.deepEqual(
    received.map((c) => ({ ...c, data: Buffer.from(c.data).toString('hex') })),
    expected,
  );
});

test(
  'the OpenRing sink writes chunks straight to the HTTP/2 stream with the installed grpc-js, and a grpc-js client reads them',
  writesChunks,
  false,
);
test(
  'the OpenRing sink writes the same chunks through grpc-js when an interceptor hides the HTTP/2 stream',
  writesChunks,
  true,
);
