import { setImmediate } from 'node:timers/promises';
import test from 'ava';
import { Coordinator } from '../../coordinator/coordinator.js';
import { packRows } from '../../coordinator/protocol.js';
import { startCoordinatorServer } from '../../coordinator/service.js';
import { isClusterError } from '../../shared/errors.js';
import { SSD_CLUSTER_VERSION } from '../../shared/version.js';
import { CoordinatorClient } from '../../worker/coordinator-client.js';
import { testHyperparameters, testJobSpec } from './fixtures.js';

const hp = testHyperparameters;
const spec = testJobSpec;

async function startCluster(t: import('ava').ExecutionContext, workers: number, minWorkers = workers) {
  const coordinator = new Coordinator({
    spec,
    hp,
    membership: {
      minWorkers,
      maxWorkers: workers,
      targetWorkers: workers,
      heartbeatTimeoutMs: 5000,
      formGraceMs: 1000,
    },
    clusterToken: 'secret',
    heartbeatIntervalMs: 500,
  });
  coordinator.start();
  const server = await startCoordinatorServer(coordinator, '127.0.0.1:0');
  t.teardown(async () => {
    await coordinator.close();
    await server.close();
  });
  const client = new CoordinatorClient({ address: `127.0.0.1:${server.port}`, coordinatorTimeoutMs: 2000 });
  t.teardown(() => client.close());
  return { coordinator, client };
}

function joinReq(peerPort: number) {
  return {
    clusterToken: 'secret',
    workerId: '',
    peerAddress: `:${peerPort}`,
    metricsAddress: '',
    layoutHash: 'h',
    backend: 'cpu',
    hostname: 'test',
    version: SSD_CLUSTER_VERSION,
  };
}

test('coordinator drives two workers through assignment, steps, epoch barriers and the final write over real gRPC', async (t) => {
  const { coordinator, client } = await startCluster(t, 2);
  const signal = AbortSignal.timeout(20_000);
  const [a, b] = await Promise.all([client.join(joinReq(5001), signal), client.join(joinReq(5002), signal)]);
  t.is(a.job.trainUrl, 'train.rec');
  const [asA, asB] = await Promise.all([
    client.getAssignment(a.workerId, 0, null, signal),
    client.getAssignment(b.workerId, 0, null, signal),
  ]);
  t.is(asA.worldSize, 2);
  t.deepEqual(new Set([asA.rank, asB.rank]), new Set([0, 1]));
  t.is(asA.ring[asA.rank], '127.0.0.1:5001');
  t.is(asA.ring[asB.rank], '127.0.0.1:5002');
  t.deepEqual(asA.start, { epoch: 0, position: 0, globalStep: 0 });
  const gen = asA.generation;
  for (const epoch of [0, 1]) {
    const progress = { epoch, position: 64, globalStep: 8 * (epoch + 1) };
    for (const w of [a, b]) {
      const ack = await client.reportStep(
        {
          workerId: w.workerId,
          generation: gen,
          progress,
          images: 32,
          crossEntropy: 1,
          smoothL1: 0.5,
          dataSeconds: 0.01,
          computeSeconds: 0.1,
          allreduceSeconds: 0.01,
          updateSeconds: 0.01,
          allreduceBytes: 1e6,
          badRecords: 0,
          learningRate: 0.001,
        },
        signal,
      );
      t.false(ack.stop);
    }
    // Rank a saw image 0 with one box detected exactly; rank b saw image 1 and missed its box.
    const gtA = packRows(new Float32Array([0, 0, 10, 10, 50, 50, 0]));
    const detA = packRows(new Float32Array([0, 0, 0.9, 10, 10, 50, 50]));
    const gtB = packRows(new Float32Array([1, 1, 20, 20, 40, 40, 0]));
    const report = (w: typeof a, gt: Buffer, det: Buffer) =>
      client.reportEpoch(
        {
          workerId: w.workerId,
          generation: gen,
          epoch,
          detections: det,
          groundTruth: gt,
          validationImages: 1,
          progress,
        },
        signal,
      );
    const [dA, dB] = await Promise.all([report(a, gtA, detA), report(b, gtB, Buffer.alloc(0))]);
    t.deepEqual(dA, dB);
    t.is(dA.validationMap, 0.5);
    t.is(dA.stop, epoch === 1);
  }
  const writer = asA.rank === 0 ? a : b;
  await client.reportDone({ workerId: writer.workerId, generation: gen, modelDir: '/tmp/model' }, signal);
  const summary = await coordinator.finished;
  t.is(summary.images, 128);
  t.is(summary.epochs, 2);
  t.is(summary.validationMap, 0.5);
  t.is(summary.workers, 2);
  const after = await client.getAssignment(a.workerId, gen, null, signal);
  t.true(after.finished);
});

test('coordinator refuses a join from another ssd-cluster version, naming both, and admits its own', async (t) => {
  const { coordinator, client } = await startCluster(t, 1);
  const signal = AbortSignal.timeout(10_000);
  const err = await t.throwsAsync(client.join({ ...joinReq(1), version: '0.0.9' }, signal));
  t.true(isClusterError(err, 'CONFIG'), String(err));
  t.regex(
    err?.message ?? '',
    new RegExp(
      `join refused: worker on test runs ssd-cluster 0\\.0\\.9 and the coordinator ssd-cluster ${SSD_CLUSTER_VERSION.replaceAll('.', '\\.')}`,
    ),
  );
  t.is(coordinator.membership.candidates.length + coordinator.membership.members.length, 0, 'nobody joined');
  const w = await client.join(joinReq(1), signal);
  t.is(w.coordinatorVersion, SSD_CLUSTER_VERSION);
});

test('coordinator refuses a join with the wrong cluster token and a step report from a stale generation', async (t) => {
  const { client } = await startCluster(t, 1);
  const signal = AbortSignal.timeout(10_000);
  await t.throwsAsync(client.join({ ...joinReq(1), clusterToken: 'wrong' }, signal), {
    message: /cluster token does not match/,
  });
  const w = await client.join(joinReq(1), signal);
  const as = await client.getAssignment(w.workerId, 0, null, signal);
  const report = {
    workerId: w.workerId,
    generation: as.generation + 7,
    progress: { epoch: 0, position: 4, globalStep: 1 },
    images: 4,
    crossEntropy: 0,
    smoothL1: 0,
    dataSeconds: 0,
    computeSeconds: 0,
    allreduceSeconds: 0,
    updateSeconds: 0,
    allreduceBytes: 0,
    badRecords: 0,
    learningRate: 0,
  };
  const err = await t.throwsAsync(client.reportStep(report, signal));
  t.is((err as { code?: string }).code, 'STALE_GENERATION');
});

/** Every worker reports both epochs of the test job (one step each) and passes both epoch barriers. */
async function trainToTheEnd(
  client: CoordinatorClient,
  ids: readonly string[],
  generation: number,
  signal: AbortSignal,
) {
  let progress = { epoch: 0, position: 0, globalStep: 0 };
  for (const epoch of [0, 1]) {
    progress = { epoch, position: 64, globalStep: 16 * (epoch + 1) };
    const timings = { dataSeconds: 0, computeSeconds: 0.1, allreduceSeconds: 0, updateSeconds: 0 };
    const counts = {
      images: 64,
      crossEntropy: 1,
      smoothL1: 0.5,
      allreduceBytes: 0,
      badRecords: 0,
      learningRate: 0.001,
    };
    for (const workerId of ids)
      await client.reportStep({ workerId, generation, progress, ...timings, ...counts }, signal);
    const empty = Buffer.alloc(0);
    const rows = { detections: empty, groundTruth: empty, validationImages: 0 };
    await Promise.all(
      ids.map((workerId) => client.reportEpoch({ workerId, generation, epoch, progress, ...rows }, signal)),
    );
  }
  // What a trainer reports after the last barrier: the start of the epoch after it.
  return { epoch: 2, position: 0, globalStep: progress.globalStep };
}

/** Two workers (peer ports `ports`) joined, assigned and trained past the last epoch barrier. */
async function twoWorkersAtTheEnd(
  t: import('ava').ExecutionContext,
  minWorkers: number,
  ports: [number, number],
) {
  const { coordinator, client } = await startCluster(t, 2, minWorkers);
  const signal = AbortSignal.timeout(10_000);
  const workers = [
    await client.join(joinReq(ports[0]), signal),
    await client.join(joinReq(ports[1]), signal),
  ];
  const assigned = await Promise.all(workers.map((w) => client.getAssignment(w.workerId, 0, null, signal)));
  const { generation } = assigned[0]!;
  const after = await trainToTheEnd(
    client,
    workers.map((w) => w.workerId),
    generation,
    signal,
  );
  const writer = workers[assigned.findIndex((a) => a.rank === 0)]!;
  const other = workers.find((w) => w !== writer)!;
  return { coordinator, client, signal, assigned, generation, after, writer, other };
}

test('a writer that could not write the model fails the job with its error, and the other workers hear of it', async (t) => {
  const { coordinator, client, signal, generation, after, writer, other } = await twoWorkersAtTheEnd(
    t,
    2,
    [5003, 5006],
  );
  // The other worker waits for its next assignment, as a worker whose trainer has finished does.
  const waiting = client.getAssignment(other.workerId, generation, after, signal);
  const done = { workerId: writer.workerId, generation, modelDir: '/tmp/model' };
  await client.reportDone({ ...done, workerId: 'w-not-the-writer', error: 'disk full' }, signal);
  const settled = coordinator.finished.then(
    () => 'settled',
    () => 'settled',
  );
  t.is(await Promise.race([settled, setImmediate('pending')]), 'pending', "only the writer's report counts");
  await client.reportDone({ ...done, error: '/tmp/model: write failed: a parent is a file' }, signal);
  const err = await t.throwsAsync(coordinator.finished);
  t.true(isClusterError(err, 'STORAGE'), String(err));
  const failure = `worker ${writer.workerId} could not write the model to /tmp/model: /tmp/model: write failed: a parent is a file`;
  t.is(err?.message, failure);
  const last = await waiting;
  t.true(last.finished);
  t.is(last.jobFailure, failure, 'a worker told the job failed exits with an error, not as after a success');
});

test('a survivor inherits the model write when the writer is lost after the last epoch barrier', async (t) => {
  const at = await twoWorkersAtTheEnd(t, 1, [5004, 5005]);
  const { coordinator, client, signal, generation, after: done, writer, other: survivor } = at;
  t.false(
    at.assigned.some((a) => a.writeModel),
    'nobody writes before training is over',
  );
  coordinator.leave({ workerId: writer.workerId, reason: 'killed while writing' });
  // The survivor's trainer is finished: it never reaches another epoch barrier, so only this says it writes.
  const next = await client.getAssignment(survivor.workerId, generation, done, signal);
  t.true(next.generation > generation);
  t.true(next.writeModel);
  await client.reportDone(
    { workerId: survivor.workerId, generation: next.generation, modelDir: '/tmp/model' },
    signal,
  );
  t.is((await coordinator.finished).epochs, 2);
});

test('a validation set without ground truth gives no mAP (null), as train and evaluate report it, not 0', async (t) => {
  const { coordinator, client } = await startCluster(t, 1);
  const signal = AbortSignal.timeout(10_000);
  const worker = await client.join(joinReq(5007), signal);
  const { generation } = await client.getAssignment(worker.workerId, 0, null, signal);
  await trainToTheEnd(client, [worker.workerId], generation, signal);
  await client.reportDone({ workerId: worker.workerId, generation, modelDir: '/tmp/model' }, signal);
  const summary = await coordinator.finished;
  t.is(summary.epochs, 2);
  t.is(summary.validationMap, null);
  t.is(coordinator.stats.validationMap, null);
});
