import type { ExecutionContext } from 'ava';
import test from 'ava';
import { Registry } from 'prom-client';
import { compileClusterSettings } from '../../cli/cluster-options.js';
import { Coordinator } from '../../coordinator/coordinator.js';
import {
  type CoordinatorMetricsSource,
  createCoordinatorMetrics,
  serveCoordinatorMetrics,
} from '../../coordinator/metrics.js';
import type { StepReportMsg } from '../../coordinator/protocol.js';
import { FakeClock } from '../../shared/clock.js';
import { SSD_CLUSTER_VERSION } from '../../shared/version.js';
import { promtoolCheckMetrics, seriesIn, seriesValue } from '../shared/metrics/helpers.js';

// The job as `coordinator` would build it from flags.
const { hp, spec } = await compileClusterSettings({
  train: 'train.rec',
  validation: 'validation.rec',
  'model-dir': '/tmp/model',
  'num-classes': '2',
  'num-training-samples': '64',
  'base-network': 'tiny',
  'image-shape': '64',
  'mini-batch-size': '16',
});

const PHASES = { dataSeconds: 0.05, computeSeconds: 0.3, allreduceSeconds: 0.1, updateSeconds: 0.05 };
const STEP_MS = 500;

/** A coordinator whose ring of `workers` has formed (joined from 127.0.0.1 with metrics on :9101, :9102...). */
function twoWorkerCoordinator(t: ExecutionContext, workers = 2) {
  const clock = new FakeClock(1_000_000);
  const coordinator = new Coordinator({
    spec,
    hp,
    membership: {
      minWorkers: workers,
      maxWorkers: workers + 1,
      targetWorkers: workers,
      heartbeatTimeoutMs: 5000,
      formGraceMs: 1000,
    },
    clusterToken: 'secret',
    heartbeatIntervalMs: 500,
    clock,
  });
  t.teardown(() => coordinator.close());
  const ids: string[] = [];
  for (let i = 0; i < workers; i++) {
    const joined = coordinator.join(
      {
        clusterToken: 'secret',
        workerId: '',
        peerAddress: `:${7100 + i}`,
        metricsAddress: `:${9101 + i}`,
        layoutHash: 'h',
        backend: 'cpu',
        hostname: 'test',
        version: SSD_CLUSTER_VERSION,
      },
      `ipv4:127.0.0.1:${40_000 + i}`,
    );
    ids.push(joined.workerId);
  }
  const source: CoordinatorMetricsSource = {
    stats: coordinator.stats,
    membership: () => coordinator.membership,
  };
  return { clock, coordinator, ids, source };
}

function report(workerId: string, globalStep: number, over: Partial<StepReportMsg> = {}): StepReportMsg {
  return {
    workerId,
    generation: 1,
    progress: { epoch: 0, position: globalStep * 16, globalStep },
    images: 8,
    crossEntropy: 2.5 - globalStep * 0.01,
    smoothL1: 1.1,
    ...PHASES,
    allreduceBytes: 4_000_000,
    badRecords: 0,
    learningRate: 0.004,
    ...over,
  };
}

/** Every worker reports `steps` lock-step steps, one every STEP_MS of fake time, and each step commits. */
function runSteps(c: ReturnType<typeof twoWorkerCoordinator>, steps: number, from = 1) {
  for (let s = from; s < from + steps; s++) {
    c.clock.advance(STEP_MS);
    for (const id of c.ids) c.coordinator.stats.onStep(report(id, s));
    c.coordinator.stats.onCommit(report(c.ids[0]!, s).progress!);
  }
}

test('coordinator metrics pass promtool check metrics for a running two-worker job', async (t) => {
  const c = twoWorkerCoordinator(t);
  const registry = new Registry();
  createCoordinatorMetrics(registry, c.source, { clock: c.clock });
  runSteps(c, 20);
  c.coordinator.stats.onCommit({ epoch: 0, position: 320, globalStep: 20 });
  c.coordinator.stats.onEpoch(0, 0.41);
  c.coordinator.stats.onRestart();
  const text = await registry.metrics();
  const check = await promtoolCheckMetrics(text);
  t.is(check.code, 0, check.output);
  t.is(check.output, '');
  for (const name of [
    'ssd_cluster_workers',
    'ssd_cluster_generation',
    'ssd_cluster_epoch',
    'ssd_cluster_step',
    'ssd_cluster_learning_rate',
    'ssd_cluster_images_total',
    'ssd_cluster_images_per_second',
    'ssd_cluster_step_seconds_bucket',
    'ssd_cluster_allreduce_bytes_total',
    'ssd_cluster_allreduce_bus_bandwidth_bytes_per_second',
    'ssd_cluster_speedup',
    'ssd_cluster_scaling_efficiency',
    'ssd_cluster_train_loss',
    'ssd_cluster_validation_map',
    'ssd_cluster_checkpoint_last_success_timestamp_seconds',
    'ssd_cluster_restarts_total',
    'ssd_cluster_stalls_total',
    'ssd_cluster_bad_records_total',
    'process_cpu_seconds_total',
  ]) {
    t.true(seriesIn(text, name).size > 0, `${name} is exported`);
  }
});

test('coordinator metrics read membership, committed progress, mAP and restarts at scrape time', async (t) => {
  const c = twoWorkerCoordinator(t);
  const registry = new Registry();
  createCoordinatorMetrics(registry, c.source, { clock: c.clock, defaultMetrics: false });
  t.is(await seriesValue(registry, 'ssd_cluster_workers'), 2);
  t.is(await seriesValue(registry, 'ssd_cluster_generation'), c.coordinator.generation);
  t.is(await seriesValue(registry, 'ssd_cluster_job_phase', { phase: 'running' }), 1);
  t.is(await seriesValue(registry, 'ssd_cluster_job_phase', { phase: 'forming' }), 0);
  t.true(Number.isNaN(await seriesValue(registry, 'ssd_cluster_validation_map')));
  c.coordinator.stats.onCommit({ epoch: 1, position: 32, globalStep: 6 });
  c.coordinator.stats.onEpoch(0, 0.375);
  c.coordinator.stats.onRestart();
  c.coordinator.stats.onRestart();
  t.is(await seriesValue(registry, 'ssd_cluster_epoch'), 1);
  t.is(await seriesValue(registry, 'ssd_cluster_step'), 6);
  t.is(await seriesValue(registry, 'ssd_cluster_validation_map'), 0.375);
  t.is(await seriesValue(registry, 'ssd_cluster_restarts_total'), 2);
  c.coordinator.leave({ workerId: c.ids[1]!, reason: 'test' });
  t.is(await seriesValue(registry, 'ssd_cluster_workers'), 1, 'the ring shrank');
});

test('coordinator metrics count every rank report and observe each phase in the step histogram', async (t) => {
  const c = twoWorkerCoordinator(t);
  const registry = new Registry();
  createCoordinatorMetrics(registry, c.source, { clock: c.clock, defaultMetrics: false });
  runSteps(c, 5);
  c.coordinator.stats.onStep(report(c.ids[0]!, 6, { badRecords: 2, images: 6 }));
  // Images and bad records count once a step commits (committed-images.ts): step 6 has one rank's report of two.
  t.is(await seriesValue(registry, 'ssd_cluster_images_total'), 5 * 2 * 8);
  t.is(await seriesValue(registry, 'ssd_cluster_allreduce_bytes_total'), 11 * 4_000_000);
  t.is(await seriesValue(registry, 'ssd_cluster_bad_records_total'), 0, 'step 6 has not committed');
  t.is(await seriesValue(registry, 'ssd_cluster_learning_rate'), 0.004);
  t.is(await seriesValue(registry, 'ssd_cluster_train_loss', { loss: 'cross_entropy' }), 2.5 - 6 * 0.01);
  t.is(await seriesValue(registry, 'ssd_cluster_train_loss', { loss: 'smooth_l1' }), 1.1);
  const text = await registry.metrics();
  for (const phase of ['data', 'compute', 'allreduce', 'update']) {
    t.is(seriesIn(text, 'ssd_cluster_step_seconds_count').get(`{phase="${phase}"}`), 11);
  }
  const computeBuckets = seriesIn(text, 'ssd_cluster_step_seconds_bucket');
  t.is(computeBuckets.get('{le="0.25",phase="compute"}'), 0, 'compute took 0.3 s');
  t.is(computeBuckets.get('{le="0.5",phase="compute"}'), 11);
  c.coordinator.stats.onStep(report(c.ids[1]!, 6, { badRecords: 1, images: 7 }));
  c.coordinator.stats.onCommit(report(c.ids[0]!, 6).progress!);
  t.is(await seriesValue(registry, 'ssd_cluster_images_total'), 5 * 2 * 8 + 6 + 7);
  t.is(await seriesValue(registry, 'ssd_cluster_bad_records_total'), 3, 'both ranks of step 6, once');
  t.is(c.coordinator.stats.badRecords, 3);
});

test('coordinator speedup and efficiency come from cluster throughput over compute-only step times', async (t) => {
  const c = twoWorkerCoordinator(t);
  const registry = new Registry();
  createCoordinatorMetrics(registry, c.source, { clock: c.clock, defaultMetrics: false });
  t.true(Number.isNaN(await seriesValue(registry, 'ssd_cluster_speedup')), 'NaN before any step');
  runSteps(c, 40);
  const step = PHASES.dataSeconds + PHASES.computeSeconds + PHASES.allreduceSeconds + PHASES.updateSeconds;
  const computeOnly = step - PHASES.allreduceSeconds;
  const cluster = (await seriesValue(registry, 'ssd_cluster_images_per_second'))!;
  const single = (await seriesValue(registry, 'ssd_cluster_single_worker_images_per_second'))!;
  const speedup = (await seriesValue(registry, 'ssd_cluster_speedup'))!;
  t.true(Math.abs(cluster - (2 * 8) / step) < 1e-9, `cluster ${cluster}`);
  t.true(Math.abs(single - 8 / computeOnly) < 1e-9, `single ${single}`);
  t.true(Math.abs(speedup - (2 * computeOnly) / step) < 1e-9, `speedup ${speedup}`);
  t.true(Math.abs((await seriesValue(registry, 'ssd_cluster_scaling_efficiency'))! - speedup / 2) < 1e-12);
  const busbw = (await seriesValue(registry, 'ssd_cluster_allreduce_bus_bandwidth_bytes_per_second'))!;
  t.true(Math.abs(busbw - 4_000_000 / PHASES.allreduceSeconds) < 1e-3, 'busbw = algbw for 2 ranks');
});

test('coordinator metrics read stalls and the last checkpoint time from the stats', async (t) => {
  const c = twoWorkerCoordinator(t);
  const registry = new Registry();
  createCoordinatorMetrics(registry, c.source, { clock: c.clock, defaultMetrics: false });
  t.is(await seriesValue(registry, 'ssd_cluster_stalls_total'), 0);
  t.is(await seriesValue(registry, 'ssd_cluster_checkpoint_last_success_timestamp_seconds'), 0);
  c.coordinator.stats.stalls = 3;
  c.coordinator.stats.lastCheckpointMs = 1_700_000_000_500;
  t.is(await seriesValue(registry, 'ssd_cluster_stalls_total'), 3);
  t.is(await seriesValue(registry, 'ssd_cluster_checkpoint_last_success_timestamp_seconds'), 1_700_000_000.5);
});

test('coordinator metrics count ring members by last heartbeat phase: silent ones idle, unknown ones other', async (t) => {
  const c = twoWorkerCoordinator(t);
  const registry = new Registry();
  createCoordinatorMetrics(registry, c.source, { clock: c.clock, defaultMetrics: false });
  const inPhase = (phase: string) => seriesValue(registry, 'ssd_cluster_workers_in_phase', { phase });
  const beat = (id: string, phase: string) =>
    c.coordinator.heartbeat({
      workerId: id,
      generation: 1,
      position: { epoch: 0, step: 1, phase, bucket: 0 },
    });
  beat(c.ids[0]!, 'allreduce');
  t.is(await inPhase('allreduce'), 1);
  t.is(await inPhase('idle'), 1, 'no heartbeat yet');
  beat(c.ids[1]!, 'dancing');
  t.is(await inPhase('other'), 1);
  t.is(await inPhase('idle'), 0);
  c.coordinator.leave({ workerId: c.ids[1]!, reason: 'test' });
  t.is(await inPhase('other'), 0, 'a worker that left is not counted');
  t.is(await inPhase('allreduce'), 1);
});

test('coordinator metrics close() stops counting step reports and can be called twice', async (t) => {
  const c = twoWorkerCoordinator(t);
  const registry = new Registry();
  const metrics = createCoordinatorMetrics(registry, c.source, { clock: c.clock, defaultMetrics: false });
  const listeners = c.coordinator.stats.stepListeners.length;
  runSteps(c, 1);
  metrics.close();
  metrics.close();
  runSteps(c, 3, 2);
  t.is(await seriesValue(registry, 'ssd_cluster_images_total'), 16);
  t.is(c.coordinator.stats.stepListeners.length, listeners - 1);
});

test('serveCoordinatorMetrics serves /metrics and the joined workers metrics endpoints on /sd', async (t) => {
  const c = twoWorkerCoordinator(t);
  const endpoint = await serveCoordinatorMetrics(c.source, { host: '127.0.0.1', port: 0, clock: c.clock });
  t.teardown(() => endpoint.close());
  runSteps(c, 2);
  const text = await (await fetch(`http://127.0.0.1:${endpoint.port}/metrics`)).text();
  t.is(seriesIn(text, 'ssd_cluster_images_total').get(''), 32);
  const sd = (await (await fetch(`http://127.0.0.1:${endpoint.port}/sd`)).json()) as {
    targets: string[];
    labels: Record<string, string>;
  }[];
  t.deepEqual(
    sd.map((g) => [g.targets, g.labels.__meta_ssd_cluster_rank, g.labels.__meta_ssd_cluster_worker_id]),
    [
      [['127.0.0.1:9101'], '0', c.ids[0]],
      [['127.0.0.1:9102'], '1', c.ids[1]],
    ],
  );
  await endpoint.close();
  await endpoint.close();
  runSteps(c, 1, 3);
  t.is(await seriesValue(endpoint.registry, 'ssd_cluster_images_total'), 32, 'closed: no longer counting');
});
