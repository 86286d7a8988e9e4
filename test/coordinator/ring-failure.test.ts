import net from 'node:net';
import test from 'ava';
import { Coordinator } from '../../coordinator/coordinator.js';
import { type PortProbe, probePeerPort, RingFailureChecks } from '../../coordinator/ring-failure.js';
import { startCoordinatorServer } from '../../coordinator/service.js';
import { deferred } from '../../shared/abort.js';
import { createMemoryLogger, noopLogger } from '../../shared/logging.js';
import { SSD_CLUSTER_VERSION } from '../../shared/version.js';
import { CoordinatorClient } from '../../worker/coordinator-client.js';
import { within } from '../helpers/deadline-checks.js';
import { testHyperparameters, testJobSpec } from './fixtures.js';

async function listening(t: import('ava').ExecutionContext): Promise<number> {
  const server = net.createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  return (server.address() as net.AddressInfo).port;
}

/** A port that was just free: nothing listens on it. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

test('probePeerPort: open for a listening port, refused for a closed one, unknown without a port or once aborted', async (t) => {
  const signal = AbortSignal.timeout(10_000);
  t.is(await probePeerPort(`127.0.0.1:${await listening(t)}`, signal), 'open');
  t.is(await probePeerPort(`127.0.0.1:${await closedPort()}`, signal), 'refused');
  t.is(await probePeerPort('127.0.0.1', signal), 'unknown');
  t.is(await probePeerPort(`127.0.0.1:${await listening(t)}`, AbortSignal.abort()), 'unknown');
});

test('a reported ring failure drops only members whose port refused, never the reporter, once per generation', async (t) => {
  const probed: string[] = [];
  const answers: Record<string, PortProbe> = { 'a:1': 'open', 'b:1': 'refused', 'c:1': 'unknown' };
  const checks = new RingFailureChecks(noopLogger, async (address) => {
    probed.push(address);
    return answers[address]!;
  });
  const report = {
    generation: 7,
    members: ['a', 'b', 'c', 'd'].map((id) => ({ workerId: id, peerAddress: `${id}:1` })),
    reporter: 'd',
    reason: 'ring receiver closed its stream',
    signal: AbortSignal.timeout(10_000),
  };
  const gone = [...(await checks.check(report)), ...(await checks.check(report))].map(
    (r) => `${r.workerId}: ${r.why}`,
  );
  t.deepEqual(probed, ['a:1', 'b:1', 'c:1']);
  t.deepEqual(gone, [
    'b: its peer port b:1 refused a connection after d reported: ring receiver closed its stream',
  ]);
});

/** A coordinator that can only drop a dead member by a report (its heartbeat timeout is far away), and a client. */
async function reportingCluster(t: import('ava').ExecutionContext, maxWorkers: number) {
  const logger = createMemoryLogger();
  const coordinator = new Coordinator({
    spec: { ...testJobSpec, validationUrl: '' },
    hp: testHyperparameters,
    // A heartbeat timeout far beyond the test's deadline: only the report can drop the dead members.
    membership: {
      minWorkers: 1,
      maxWorkers,
      targetWorkers: maxWorkers,
      heartbeatTimeoutMs: 600_000,
      formGraceMs: 1000,
    },
    clusterToken: '',
    heartbeatIntervalMs: 500,
    logger,
  });
  const server = await startCoordinatorServer(coordinator, '127.0.0.1:0');
  t.teardown(async () => {
    await coordinator.close();
    await server.close();
  });
  const client = new CoordinatorClient({ address: `127.0.0.1:${server.port}`, coordinatorTimeoutMs: 5000 });
  t.teardown(() => client.close());
  const signal = AbortSignal.timeout(20_000);
  const join = (port: number) =>
    client.join(
      {
        clusterToken: '',
        workerId: '',
        peerAddress: `:${port}`,
        metricsAddress: '',
        layoutHash: '',
        backend: 'cpu',
        hostname: 'test',
        version: SSD_CLUSTER_VERSION,
      },
      signal,
    );
  return { logger, client, signal, join };
}

test('a worker that reports its ring failed gets a new ring without the dead member long before the heartbeat timeout', async (t) => {
  const { logger, client, signal, join } = await reportingCluster(t, 2);
  const alive = await join(await listening(t));
  const dead = await join(await closedPort());
  const [first] = await Promise.all([
    client.getAssignment(alive.workerId, 0, null, signal),
    client.getAssignment(dead.workerId, 0, null, signal),
  ]);
  t.is(first.worldSize, 2);
  const next = await within(
    client.getAssignment(alive.workerId, first.generation, null, signal, 'ring receiver closed its stream'),
    10_000,
  );
  t.true(next.generation > first.generation);
  t.is(next.worldSize, 1);
  const lost = logger.entries.find((e) => e.msg === 'membership lost');
  t.is(lost?.fields.workerId, dead.workerId);
  t.regex(
    String(lost?.fields.reason),
    /refused a connection after .* reported: ring receiver closed its stream/,
  );
});

test('two members that died together are both dropped by one report (a ring with one of them would wait for it)', async (t) => {
  const { logger, client, signal, join } = await reportingCluster(t, 3);
  const alive = await join(await listening(t));
  const dead = [await join(await closedPort()), await join(await closedPort())];
  const [first] = await Promise.all(
    [alive, ...dead].map((w) => client.getAssignment(w.workerId, 0, null, signal)),
  );
  t.is(first!.worldSize, 3);
  // The next ring's assignment barrier waits for every member: a dead one left in it never asks.
  const next = await within(
    client.getAssignment(alive.workerId, first!.generation, null, signal, 'ring sender lost its stream'),
    10_000,
  );
  t.is(next.worldSize, 1);
  const lost = logger.entries.filter((e) => e.msg === 'membership lost').map((e) => e.fields.workerId);
  t.deepEqual(lost, [dead[0]!.workerId, dead[1]!.workerId]);
});

test('probing a ring of 16 on one signal prints no MaxListenersExceededWarning', async (t) => {
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
  process.on('warning', onWarning);
  t.teardown(() => process.off('warning', onWarning));
  const port = await listening(t);
  const refused = await new RingFailureChecks(noopLogger).check({
    generation: 1,
    members: Array.from({ length: 17 }, (_, i) => ({ workerId: `w${i}`, peerAddress: `127.0.0.1:${port}` })),
    reporter: 'w0',
    reason: 'ring receiver closed its stream',
    signal: new AbortController().signal,
  });
  const gone = refused.map((r) => r.workerId);
  await new Promise((resolve) => setImmediate(resolve)); // process warnings are emitted on a later tick
  t.deepEqual(gone, [], 'every port is open');
  t.deepEqual(
    warnings.filter((w) => w.startsWith('MaxListenersExceededWarning')),
    [],
  );
});

test('a member whose port refuses the probe but which still sends heartbeats is kept (a firewall, not a death)', async (t) => {
  const { logger, client, signal, join } = await reportingCluster(t, 2);
  const kept = deferred<void>();
  const warn = logger.warn;
  logger.warn = (msg, fields) => {
    warn(msg, fields);
    if (msg.startsWith('a ring member refused the probe but still sends heartbeats')) kept.resolve();
  };
  const reporter = await join(await listening(t));
  const firewalled = await join(await closedPort());
  const [first] = await Promise.all([
    client.getAssignment(reporter.workerId, 0, null, signal),
    client.getAssignment(firewalled.workerId, 0, null, signal),
  ]);
  const beating = setInterval(() => {
    void client
      .heartbeat(
        firewalled.workerId,
        first.generation,
        { epoch: 0, step: 0, phase: 'allreduce', bucket: 0 },
        signal,
      )
      .catch(() => {});
  }, 100);
  t.teardown(() => clearInterval(beating));
  void client
    .getAssignment(reporter.workerId, first.generation, null, signal, 'ring receiver closed its stream')
    .catch(() => {});
  await within(kept.promise, 10_000);
  t.false(
    logger.entries.some((e) => e.msg === 'membership lost'),
    'nobody was dropped',
  );
});
