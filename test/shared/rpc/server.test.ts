import { once } from 'node:events';
import { Metadata } from '@grpc/grpc-js';
import test from 'ava';
import { deferred } from '../../../shared/abort.js';
import { ClusterError, isClusterError } from '../../../shared/errors.js';
import { openServerStream, unaryCall } from '../../../shared/rpc/client.js';
import { callSignal, failStream, RpcServer, unaryHandler } from '../../../shared/rpc/server.js';
import { openFixtureStream, openMethod, pingMethod, startFixture } from './peer-fixture.js';

test('listen binds port 0 to a real port and serves a unary call', async (t) => {
  const { port, client, server } = await startFixture(t, {
    Ping: unaryHandler(async (req: { generation: number }) => ({
      generation: req.generation + 1,
      rank: 3,
      size: 4,
      layoutHash: 'h',
    })),
  });
  t.true(port > 0);
  t.is(server.port, port);
  const reply = await unaryCall(client, pingMethod, { generation: 41 }, { deadlineMs: 5000 });
  t.deepEqual(reply, { generation: 42, rank: 3, size: 4, layoutHash: 'h' });
});

test('unaryHandler sends a thrown ClusterError with its code to the client', async (t) => {
  const { client } = await startFixture(t, {
    Ping: unaryHandler(() => {
      throw new ClusterError('STALE_GENERATION', 'generation 1 is over');
    }),
  });
  const err = await t.throwsAsync(unaryCall(client, pingMethod, { generation: 1 }));
  t.true(isClusterError(err, 'STALE_GENERATION'));
  t.regex(err!.message, /Ping failed with FAILED_PRECONDITION: generation 1 is over/);
});

test('failStream ends a server stream with the status of the error', async (t) => {
  const { client } = await startFixture(t, {
    OpenRing: (call) => failStream(call, new ClusterError('PROTOCOL', 'layout hash differs')),
  });
  const stream = openServerStream(
    client,
    openMethod,
    { generation: 0, fromRank: 1, layoutHash: 'x' },
    () => {},
  );
  const err = await t.throwsAsync(stream.done);
  t.true(isClusterError(err, 'PROTOCOL'));
  t.regex(err!.message, /layout hash differs/);
});

test('callSignal aborts when the client cancels the call', async (t) => {
  const signalSeen = deferred<AbortSignal>();
  const { client } = await startFixture(t, {
    OpenRing: (call) => {
      signalSeen.resolve(callSignal(call));
      call.sendMetadata(new Metadata());
    },
  });
  const stream = openFixtureStream(client);
  await stream.accepted;
  stream.cancel();
  await t.throwsAsync(stream.done);
  const serverSignal = await signalSeen.promise;
  if (!serverSignal.aborted) await once(serverSignal, 'abort', { signal: AbortSignal.timeout(5000) });
  t.true(isClusterError(serverSignal.reason, 'ABORTED'));
});

test('close is idempotent and forces shutdown of a stream that never ends after the grace period', async (t) => {
  const { server, client } = await startFixture(
    t,
    { OpenRing: (call) => call.sendMetadata(new Metadata()) },
    { closeGraceMs: 100 },
  );
  const stream = openFixtureStream(client);
  await stream.accepted;
  const started = performance.now();
  await Promise.all([server.close(), server.close()]);
  t.true(performance.now() - started < 3000, 'close returned within the grace period plus slack');
  await t.throwsAsync(stream.done);
  await t.throwsAsync(server.listen('127.0.0.1:0'), { message: /server is closed/ });
});

test('an RpcServer works with await using', async (t) => {
  let port = 0;
  {
    await using server = new RpcServer();
    port = await server.listen('127.0.0.1:0');
    t.true(port > 0);
  }
  // The port is free again once the server is disposed.
  const again = new RpcServer();
  t.teardown(() => again.close());
  t.is(await again.listen(`127.0.0.1:${port}`), port);
});
