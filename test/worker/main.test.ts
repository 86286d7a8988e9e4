import type { ServerUnaryCall, sendUnaryData } from '@grpc/grpc-js';
import test from 'ava';
import {
  coordinatorProto,
  type JobSpecMsg,
  type JoinRequestMsg,
  type LeaveRequestMsg,
} from '../../coordinator/protocol.js';
import { ConfigError } from '../../shared/errors.js';
import { noopLogger } from '../../shared/logging.js';
import { RpcServer } from '../../shared/rpc/server.js';
import { SSD_CLUSTER_VERSION } from '../../shared/version.js';
import { runWorker } from '../../worker/main.js';

/**
 * A coordinator that admits every join with `job`, answering as ssd-cluster `version`, and records Leave.
 * 0.0.9 stands for one that does not check versions.
 */
async function startFakeCoordinator(
  t: import('ava').ExecutionContext,
  version: string,
  job?: Partial<JobSpecMsg>,
) {
  const { service } = coordinatorProto();
  const joins: JoinRequestMsg[] = [];
  const left: LeaveRequestMsg[] = [];
  const server = new RpcServer({ closeGraceMs: 100 });
  server.addService(service, {
    Join(call: ServerUnaryCall<JoinRequestMsg, unknown>, done: sendUnaryData<unknown>) {
      joins.push(call.request);
      done(null, {
        workerId: 'w-1',
        heartbeatIntervalMs: 1000,
        generation: 0,
        coordinatorVersion: version,
        job,
      });
    },
    Leave(call: ServerUnaryCall<LeaveRequestMsg, unknown>, done: sendUnaryData<unknown>) {
      left.push(call.request);
      done(null, {});
    },
  });
  const port = await server.listen('127.0.0.1:0');
  t.teardown(() => server.close());
  return { address: `127.0.0.1:${port}`, joins, left };
}

function startWorker(address: string) {
  return runWorker({
    coordinator: address,
    backend: 'cpu',
    clusterToken: '',
    coordinatorTimeoutMs: 5000,
    logger: noopLogger,
    env: {},
    metrics: () => {},
    signal: AbortSignal.timeout(20_000),
  });
}

test('a worker refuses a coordinator of another ssd-cluster version, naming both, and leaves at once', async (t) => {
  const coordinator = await startFakeCoordinator(t, '0.0.9');
  const running = startWorker(coordinator.address);
  const err = await t.throwsAsync(running, { instanceOf: ConfigError });
  t.regex(
    err?.message ?? '',
    new RegExp(
      `--coordinator ${coordinator.address}: worker on .+ runs ssd-cluster ${SSD_CLUSTER_VERSION.replaceAll('.', '\\.')} and the coordinator ssd-cluster 0\\.0\\.9`,
    ),
  );
  t.is(coordinator.joins[0]?.version, SSD_CLUSTER_VERSION, "the join carried the worker's version");
  t.deepEqual(
    coordinator.left.map((l) => l.workerId),
    ['w-1'],
  );
});

test('a worker that fails after joining leaves at once with the cause as its reason', async (t) => {
  const coordinator = await startFakeCoordinator(t, SSD_CLUSTER_VERSION, {
    hyperparameters: { num_classes: 'two' },
  });
  const err = await t.throwsAsync(startWorker(coordinator.address), { instanceOf: ConfigError });
  t.regex(err?.message ?? '', /num_classes/);
  t.is(coordinator.left.length, 1, 'one Leave');
  t.is(coordinator.left[0]?.workerId, 'w-1');
  t.is(coordinator.left[0]?.reason, `failed: ${err?.message}`);
});
