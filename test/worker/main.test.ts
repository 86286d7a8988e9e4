import type { ServerUnaryCall, sendUnaryData } from '@grpc/grpc-js';
import test from 'ava';
import { coordinatorProto, type JoinRequestMsg } from '../../coordinator/protocol.js';
import { ConfigError } from '../../shared/errors.js';
import { noopLogger } from '../../shared/logging.js';
import { RpcServer } from '../../shared/rpc/server.js';
import { SSD_CLUSTER_VERSION } from '../../shared/version.js';
import { runWorker } from '../../worker/main.js';

/** A coordinator of version 0.0.9 (one that does not check versions): admits every join, records Leave. */
async function startOtherVersionCoordinator(t: import('ava').ExecutionContext) {
  const { service } = coordinatorProto();
  const joins: JoinRequestMsg[] = [];
  const left: string[] = [];
  const server = new RpcServer({ closeGraceMs: 100 });
  server.addService(service, {
    Join(call: ServerUnaryCall<JoinRequestMsg, unknown>, done: sendUnaryData<unknown>) {
      joins.push(call.request);
      done(null, {
        workerId: 'w-old',
        heartbeatIntervalMs: 1000,
        generation: 0,
        coordinatorVersion: '0.0.9',
      });
    },
    Leave(call: ServerUnaryCall<{ workerId: string }, unknown>, done: sendUnaryData<unknown>) {
      left.push(call.request.workerId);
      done(null, {});
    },
  });
  const port = await server.listen('127.0.0.1:0');
  t.teardown(() => server.close());
  return { address: `127.0.0.1:${port}`, joins, left };
}

test('a worker refuses a coordinator of another ssd-cluster version, naming both, and leaves at once', async (t) => {
  const coordinator = await startOtherVersionCoordinator(t);
  const running = runWorker({
    coordinator: coordinator.address,
    backend: 'cpu',
    clusterToken: '',
    coordinatorTimeoutMs: 5000,
    logger: noopLogger,
    env: {},
    metrics: () => {},
    signal: AbortSignal.timeout(20_000),
  });
  const err = await t.throwsAsync(running, { instanceOf: ConfigError });
  t.regex(
    err?.message ?? '',
    new RegExp(
      `--coordinator ${coordinator.address}: worker on .+ runs ssd-cluster ${SSD_CLUSTER_VERSION.replaceAll('.', '\\.')} and the coordinator ssd-cluster 0\\.0\\.9`,
    ),
  );
  t.is(coordinator.joins[0]?.version, SSD_CLUSTER_VERSION, "the join carried the worker's version");
  t.deepEqual(coordinator.left, ['w-old']);
});
