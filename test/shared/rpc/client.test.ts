import { Metadata } from '@grpc/grpc-js';
import test from 'ava';
import { deferred } from '../../../shared/abort.js';
import { ClusterError, isClusterError } from '../../../shared/errors.js';
import { unaryCall, waitForReady } from '../../../shared/rpc/client.js';
import { type Chunk, openFixtureStream, pingMethod, startFixture } from './peer-fixture.js';

test('unaryCall rejects with the abort reason and cancels the call on the server', async (t) => {
  const cancelled = deferred<void>();
  const { client } = await startFixture(t, {
    Ping: (call) => call.once('cancelled', () => cancelled.resolve()), // never answers
  });
  const controller = new AbortController();
  const pending = unaryCall(client, pingMethod, { generation: 0 }, { signal: controller.signal });
  await waitForReady(client, AbortSignal.timeout(5000));
  controller.abort(new ClusterError('ABORTED', 'shutting down'));
  await t.throwsAsync(pending, { message: 'shutting down' });
  await cancelled.promise;
  t.pass();
});

test('unaryCall past its deadline fails with TIMEOUT naming the method', async (t) => {
  const { client } = await startFixture(t, { Ping: () => {} });
  const err = await t.throwsAsync(unaryCall(client, pingMethod, { generation: 0 }, { deadlineMs: 100 }));
  t.true(isClusterError(err, 'TIMEOUT'));
  t.regex(err!.message, /Peer\/Ping failed with DEADLINE_EXCEEDED/);
});

test('openServerStream hands every message over in order and resolves done on OK', async (t) => {
  const { client } = await startFixture(t, {
    OpenRing: (call) => {
      call.sendMetadata(new Metadata());
      for (let step = 0; step < 50; step++) call.write({ step, data: new Uint8Array(1000).fill(step) });
      call.end();
    },
  });
  const got: Chunk[] = [];
  const stream = openFixtureStream(client, (m) => got.push(m));
  await stream.accepted;
  await stream.done;
  t.deepEqual(
    got.map((m) => m.step),
    Array.from({ length: 50 }, (_, i) => i),
  );
  t.true(got.every((m) => m.data.length === 1000 && m.data[999] === m.step));
});

test('an exception in onMessage cancels the stream and rejects done with it', async (t) => {
  const cancelled = deferred<void>();
  const { client } = await startFixture(t, {
    OpenRing: (call) => {
      call.once('cancelled', () => cancelled.resolve());
      call.write({ step: 1, data: new Uint8Array(4) });
    },
  });
  const stream = openFixtureStream(client, () => {
    throw new ClusterError('PROTOCOL', 'bad chunk');
  });
  await t.throwsAsync(stream.done, { message: 'bad chunk' });
  await cancelled.promise;
});

test('openServerStream cancels when its signal aborts', async (t) => {
  const { client } = await startFixture(t, { OpenRing: (call) => call.sendMetadata(new Metadata()) });
  const controller = new AbortController();
  const stream = openFixtureStream(client, () => {}, {
    signal: controller.signal,
  });
  await stream.accepted;
  controller.abort(new ClusterError('ABORTED', 'generation over'));
  await t.throwsAsync(stream.done, { message: 'generation over' });
});

test('waitForReady rejects when its signal aborts before the server exists', async (t) => {
  const { client, server } = await startFixture(t, {});
  await server.close();
  const controller = new AbortController();
  const waiting = waitForReady(client, controller.signal);
  queueMicrotask(() => controller.abort(new ClusterError('ABORTED', 'gave up')));
  await t.throwsAsync(waiting, { message: 'gave up' });
});
