import test from 'ava';
import { ClusterError, isClusterError } from '../../../shared/errors.js';
import { createRpcClient, openServerStream, unaryCall } from '../../../shared/rpc/client.js';
import { methodOf } from '../../../shared/rpc/proto.js';
import { RpcServer } from '../../../shared/rpc/server.js';
import { fp16ErrorBound } from '../../../worker/allreduce/fp16.js';
import type { GrpcRingTransport } from '../../../worker/allreduce/grpc-transport.js';
import { joinPayload } from '../../../worker/allreduce/payload.js';
import {
  type OpenRingRequest,
  type PingReply,
  type PingRequest,
  peerProto,
  peerServiceImplementation,
  type WireChunk,
} from '../../../worker/peer-service.js';
import { joinAll, startNodes } from './grpc-fixtures.js';
import { exactSum, firstMismatch, rankInputs, reduceRank, runRing, settleWithin } from './ring-fixtures.js';

const { service } = peerProto();
const openRing = methodOf<OpenRingRequest, WireChunk>(service, 'OpenRing');
const ping = methodOf<PingRequest, PingReply>(service, 'Ping');

function assertJoined(t: import('ava').ExecutionContext, results: PromiseSettledResult<void>[]) {
  for (const [rank, r] of results.entries())
    t.is(r.status, 'fulfilled', `rank ${rank}: ${String((r as PromiseRejectedResult).reason)}`);
}

test('three gRPC transports on loopback sum buffers over several rounds, with and without fp16', async (t) => {
  const nodes = await startNodes(t, 3);
  assertJoined(t, await joinAll(nodes, 1));
  const transports = nodes.map((n) => n.transport);
  const signal = AbortSignal.timeout(20_000);
  for (const round of [0, 1]) {
    const inputs = rankInputs(3, 300_001, round);
    const { buffers } = await runRing(transports, inputs, {
      signal,
      generation: 1,
      round,
      chunkBytes: 64 * 1024,
    });
    for (const b of buffers) t.is(firstMismatch(b, exactSum(inputs)), -1, `round ${round}`);
  }
  const inputs = rankInputs(3, 10_000, 9);
  const { buffers } = await runRing(transports, inputs, {
    signal,
    generation: 1,
    round: 2,
    compression: 'fp16',
  });
  const exact = exactSum(inputs);
  for (let i = 0; i < exact.length; i++) {
    const sumAbs = inputs.reduce((acc, x) => acc + Math.abs(x[i]!), 0);
    if (Math.abs(buffers[2]![i]! - exact[i]!) > fp16ErrorBound(3, sumAbs))
      t.fail(`element ${i} outside the bound`);
  }
  t.is(firstMismatch(buffers[0]!, buffers[2]!), -1);
  t.is(nodes[0]!.transport.staleRejected, 0);
});

test('a new generation re-opens the streams and refuses the old one with STALE_GENERATION', async (t) => {
  const nodes = await startNodes(t, 2);
  assertJoined(t, await joinAll(nodes, 1));
  assertJoined(t, await joinAll(nodes, 2));
  const inputs = rankInputs(2, 1000);
  const { buffers } = await runRing(
    nodes.map((n) => n.transport),
    inputs,
    { signal: AbortSignal.timeout(10_000), generation: 2 },
  );
  t.is(firstMismatch(buffers[1]!, exactSum(inputs)), -1);
  const client = createRpcClient(nodes[0]!.address);
  t.teardown(() => client.close());
  const stale = openServerStream(
    client,
    openRing,
    { generation: 1, fromRank: 1, layoutHash: 'layout-1' },
    () => {},
  );
  const err = await t.throwsAsync(stale.done);
  t.true(isClusterError(err, 'STALE_GENERATION'), String(err));
  t.regex(err!.message, /FAILED_PRECONDITION: generation 1 is over \(current generation 2\)/);
  const reply = await unaryCall(client, ping, { generation: 2 }, { deadlineMs: 5000 });
  t.deepEqual(reply, { generation: 2, rank: 0, size: 2, layoutHash: 'layout-1' });
});

test('a neighbour with another layout hash is refused with PROTOCOL', async (t) => {
  const nodes = await startNodes(t, 3, { connectTimeoutMs: 1000 });
  const results = await joinAll(nodes, 1, { layoutHash: (rank) => (rank === 1 ? 'layout-B' : 'layout-A') });
  const refused = results[2]!;
  t.is(refused.status, 'rejected');
  t.true(isClusterError((refused as PromiseRejectedResult).reason, 'PROTOCOL'));
  t.regex(
    String((refused as PromiseRejectedResult).reason),
    /layout hash layout-A of rank 2 differs from layout-B/,
  );
  t.true(results.every((r) => r.status === 'rejected'));
});

test('a rank that goes away fails its right neighbour with PEER_LOST and sends to it fail', async (t) => {
  const nodes = await startNodes(t, 3);
  assertJoined(t, await joinAll(nodes, 1));
  const transports = nodes.map((n) => n.transport);
  const coordinator = new AbortController();
  // Ranks 0 and 2 start a round; rank 1 never does, then leaves.
  const rank0 = reduceRank(transports, 0, new Float32Array(3000), {
    signal: coordinator.signal,
    generation: 1,
  });
  const rank2 = reduceRank(transports, 2, new Float32Array(3000), {
    signal: coordinator.signal,
    generation: 1,
  });
  await nodes[1]!.transport.close();
  await nodes[1]!.server.close();
  const [r2] = await settleWithin([rank2], 8000, 'rank 2 after its left neighbour left');
  t.is(r2!.status, 'rejected');
  t.true(
    isClusterError((r2 as PromiseRejectedResult).reason, 'PEER_LOST'),
    String((r2 as PromiseRejectedResult).reason),
  );
  t.regex(String((r2 as PromiseRejectedResult).reason), /left neighbour rank 1 at 127\.0\.0\.1:\d+/);
  // What the coordinator would do next: abort the round everywhere.
  coordinator.abort(new ClusterError('ABORTED', 'generation 1 is over'));
  const [r0] = await settleWithin([rank0], 5000, 'rank 0 after the abort');
  t.is(r0!.status, 'rejected');
  const send = transports[0]!.sendRight(
    {
      generation: 1,
      round: 5,
      step: 0,
      bucket: 0,
      chunk: 0,
      offset: 0,
      dtype: 'f32',
      bytes: new Uint8Array(4),
    },
    AbortSignal.timeout(5000),
  );
  const [sent] = await settleWithin([send], 6000, 'send to a closed neighbour');
  t.is(sent!.status, 'rejected');
  t.true(isClusterError((sent as PromiseRejectedResult).reason, 'PEER_LOST'));
});

test('chunks of an older generation arriving on a stream are counted and never delivered', async (t) => {
  // A hand-written left neighbour that first sends a leftover chunk of generation 3.
  const fake = new RpcServer();
  const chunk = (generation: number, fill: number) => ({
    generation,
    round: 0,
    step: 0,
    bucket: 0,
    chunk: 0,
    offset: 0,
    dtype: 'f32' as const,
    bytes: new Uint8Array(new Float32Array(4).fill(fill).buffer),
  });
  fake.addService(
    service,
    peerServiceImplementation({
      ping: () => ({ generation: 4, rank: 0, size: 2, layoutHash: 'L' }),
      async openRing(_req, sink, signal) {
        sink.accept();
        await sink.write(chunk(3, 666), signal);
        await sink.write(chunk(4, 1), signal);
        await new Promise((resolve) => signal.addEventListener('abort', resolve));
      },
    }),
  );
  t.teardown(() => fake.close());
  const port = await fake.listen('127.0.0.1:0');
  const [node] = await startNodes(t, 1);
  const transport: GrpcRingTransport = node!.transport;
  const joined = transport.join(
    { generation: 4, rank: 1, size: 2, leftAddress: `127.0.0.1:${port}`, layoutHash: 'L' },
    AbortSignal.timeout(5000),
  );
  // The test plays the right neighbour too: it opens rank 1's outgoing stream.
  const client = createRpcClient(node!.address);
  t.teardown(() => client.close());
  const right = openServerStream(client, openRing, { generation: 4, fromRank: 0, layoutHash: 'L' }, () => {});
  await right.accepted;
  await joined;
  const got = await transport.recvLeft(
    { generation: 4, round: 0, step: 0, bucket: 0, chunk: 0 },
    AbortSignal.timeout(5000),
  );
  t.deepEqual(new Float32Array(new Uint8Array(joinPayload(got.bytes)).buffer), new Float32Array(4).fill(1));
  t.is(transport.staleRejected, 1);
  right.cancel();
});
