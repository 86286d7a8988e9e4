import { createServer } from 'node:net';
import test from 'ava';
import { deferred } from '../../../shared/abort.js';
import { ClusterError, isClusterError } from '../../../shared/errors.js';
import { methodOf } from '../../../shared/rpc/proto.js';
import { ChunkStreamDecoder } from '../../../worker/allreduce/chunk-stream-decoder.js';
import { joinPayload } from '../../../worker/allreduce/payload.js';
import { openRingStream, PeerSessions } from '../../../worker/allreduce/ring-stream-client.js';
import type { ChunkMsg } from '../../../worker/allreduce/transport.js';
import {
  type OpenRingRequest,
  type PeerHandler,
  peerProto,
  type WireChunk,
} from '../../../worker/peer-service.js';
import { recordChunks } from './chunk-fixtures.js';
import { startScriptedPeer } from './grpc-fixtures.js';

const method = methodOf<OpenRingRequest, WireChunk>(peerProto().service, 'OpenRing');
const request = {
  path: method.path,
  message: method.requestSerialize({ generation: 4, fromRank: 1, layoutHash: 'L' }),
};

function sessions(t: import('ava').ExecutionContext): PeerSessions {
  const s = new PeerSessions(1 << 20);
  t.teardown(() => s.close());
  return s;
}

function open(t: import('ava').ExecutionContext, address: string, maxMessageBytes = 1 << 20) {
  const seen = recordChunks();
  const decoder = new ChunkStreamDecoder(maxMessageBytes, seen.listener);
  return { ...openRingStream(sessions(t).get(address), request, decoder), received: seen.chunks };
}

const chunk = (index: number, values: number): ChunkMsg => ({
  generation: 4,
  round: 0,
  step: 0,
  bucket: 0,
  chunk: index,
  offset: index * values,
  dtype: 'f32',
  bytes: new Uint8Array(Float32Array.from({ length: values }, (_, i) => index * values + i).buffer),
});

test('openRingStream delivers every chunk and resolves when the sender ends the stream with OK', async (t) => {
  let seen: OpenRingRequest | undefined;
  const address = await startScriptedPeer(t, async (req, sink, signal) => {
    seen = req;
    sink.accept();
    for (let i = 0; i < 5; i++) await sink.write(chunk(i, 30_000), signal);
  });
  const call = open(t, address);
  await call.accepted;
  await call.done;
  const { received } = call;
  t.deepEqual(seen, { generation: 4, fromRank: 1, layoutHash: 'L' });
  t.deepEqual(
    received.map((c) => c.chunk),
    [0, 1, 2, 3, 4],
  );
  for (const c of received) {
    const values = new Float32Array(new Uint8Array(joinPayload(c.data)).buffer);
    t.is(values.length, 30_000);
    t.is(values[17], c.offset + 17, `chunk ${c.chunk}`);
  }
});

test('openRingStream rejects with the error code a refusing server sent', async (t) => {
  const address = await startScriptedPeer(t, async () => {
    throw new ClusterError('STALE_GENERATION', 'generation 4 is over (current generation 5)');
  });
  const call = open(t, address);
  const err = await t.throwsAsync(call.done);
  t.true(isClusterError(err, 'STALE_GENERATION'), String(err));
  t.regex(
    err!.message,
    /OpenRing failed with FAILED_PRECONDITION: generation 4 is over \(current generation 5\)/,
  );
  await t.throwsAsync(call.accepted);
});

test('openRingStream reports a server that does not listen as PEER_LOST', async (t) => {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as { port: number };
  await new Promise((resolve) => probe.close(resolve));
  const err = await t.throwsAsync(open(t, `127.0.0.1:${port}`).accepted);
  t.true(isClusterError(err, 'PEER_LOST'), String(err));
});

/** A sender that accepts and then waits for the receiver to go; resolves its signal's abort. */
function waitingPeer(t: import('ava').ExecutionContext, first?: ChunkMsg) {
  const stopped = deferred<void>();
  const handler: PeerHandler['openRing'] = async (_req, sink, signal) => {
    sink.accept();
    // The receiver may cancel before the write completes.
    if (first) await sink.write(first, signal).catch(() => {});
    await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
    stopped.resolve();
  };
  return { address: startScriptedPeer(t, handler), stopped: stopped.promise };
}

test('cancel ends the call on the sender and rejects done with the reason', async (t) => {
  const peer = waitingPeer(t);
  const call = open(t, await peer.address);
  await call.accepted;
  const reason = new ClusterError('ABORTED', 'generation 4 is over');
  call.cancel(reason);
  t.is(await t.throwsAsync(call.done), reason);
  await peer.stopped;
});

test('a message above the decoder limit cancels the call with a PROTOCOL error', async (t) => {
  const peer = waitingPeer(t, chunk(0, 1000));
  const call = open(t, await peer.address, 1000);
  const err = await t.throwsAsync(call.done);
  t.true(isClusterError(err, 'PROTOCOL'), String(err));
  t.regex(err!.message, /exceeds the 1000-byte limit/);
  await peer.stopped;
});
