import type { ServerUnaryCall, sendUnaryData } from '@grpc/grpc-js';
import test from 'ava';
import { coordinatorProto, type JoinRequestMsg, type PositionMsg } from '../../coordinator/protocol.js';
import { isClusterError } from '../../shared/errors.js';
import { RpcServer } from '../../shared/rpc/server.js';
import { SSD_CLUSTER_VERSION } from '../../shared/version.js';
import { CoordinatorClient } from '../../worker/coordinator-client.js';
import { collectGarbageLater, within } from '../helpers/deadline-checks.js';

/** A coordinator that accepts every call and never answers; counts the calls it was sent. */
async function startSilentCoordinator(t: import('ava').ExecutionContext) {
  const { service } = coordinatorProto();
  const calls: string[] = [];
  const hang =
    (name: string) => (_call: ServerUnaryCall<unknown, unknown>, _done: sendUnaryData<unknown>) => {
      calls.push(name);
    };
  const server = new RpcServer({ closeGraceMs: 100 });
  server.addService(service, Object.fromEntries(Object.keys(service).map((name) => [name, hang(name)])));
  const port = await server.listen('127.0.0.1:0');
  t.teardown(() => server.close());
  return { address: `127.0.0.1:${port}`, calls };
}

test('coordinator client times out unanswered heartbeats, retries and gives up with COORDINATOR_LOST, even after a GC', async (t) => {
  const coordinator = await startSilentCoordinator(t);
  const client = new CoordinatorClient({
    address: coordinator.address,
    callTimeoutMs: 150,
    coordinatorTimeoutMs: 500,
  });
  t.teardown(() => client.close());
  const position: PositionMsg = { epoch: 0, step: 0, phase: 'compute', bucket: 0 };
  const heartbeat = client.heartbeat('w1', 1, position, new AbortController().signal);
  await collectGarbageLater();
  const err = await t.throwsAsync(within(heartbeat, 10_000));
  t.true(isClusterError(err, 'COORDINATOR_LOST'), String(err));
  t.is(
    err?.message.replace(/for \d+ s/, 'for N s'),
    `Heartbeat: no answer from the coordinator at ${coordinator.address} for N s (--coordinator-timeout 0.5)`,
  );
  t.true(coordinator.calls.filter((c) => c === 'Heartbeat').length >= 2, 'each timed-out call was retried');
});

test('coordinator client stops waiting for an unanswered join as soon as its caller aborts', async (t) => {
  const coordinator = await startSilentCoordinator(t);
  const client = new CoordinatorClient({ address: coordinator.address, callTimeoutMs: 60_000 });
  t.teardown(() => client.close());
  const stop = new AbortController();
  const request: JoinRequestMsg = {
    clusterToken: '',
    workerId: '',
    peerAddress: ':1',
    metricsAddress: '',
    layoutHash: '',
    backend: 'cpu',
    hostname: 'test',
    version: SSD_CLUSTER_VERSION,
  };
  const joining = client.join(request, stop.signal);
  const reason = new Error('worker stopping');
  stop.abort(reason);
  t.is(await t.throwsAsync(within(joining, 5000)), reason);
});
