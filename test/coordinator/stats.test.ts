import test from 'ava';
import { Registry } from 'prom-client';
import { Coordinator } from '../../coordinator/coordinator.js';
import { withScaling } from '../../coordinator/main.js';
import { createCoordinatorMetrics } from '../../coordinator/metrics.js';
import type { StepReportMsg } from '../../coordinator/protocol.js';
import { createCoordinatorStats } from '../../coordinator/stats.js';
import { FakeClock } from '../../shared/clock.js';
import { SSD_CLUSTER_VERSION } from '../../shared/version.js';
import { seriesValue } from '../shared/metrics/helpers.js';
import { testHyperparameters, testJobSpec } from './fixtures.js';

const SUMMARY = {
  images: 0,
  seconds: 0,
  imagesPerSecond: 0,
  workers: 2,
  epochs: 1,
  validationMap: null,
  modelDir: '/tmp/model',
};

/** Stats and the coordinator's metrics on one fake clock, for a ring of `workers` members. */
function statsWithMetrics(workers: number) {
  const clock = new FakeClock(5_000_000);
  const stats = createCoordinatorStats(clock);
  stats.onGeneration(7, workers);
  const members = Array.from({ length: workers }, (_, i) => ({ workerId: `w${i}`, metricsAddress: '' }));
  const registry = new Registry();
  const metrics = createCoordinatorMetrics(
    registry,
    { stats, membership: () => ({ generation: 7, members, phase: 'running' as const }) },
    { clock, defaultMetrics: false },
  );
  return { clock, stats, registry, metrics };
}

/** Rank r's step s: uneven phases, so the median and the window both matter. */
function report(rank: number, step: number): StepReportMsg {
  return {
    workerId: `w${rank}`,
    generation: 7,
    progress: { epoch: 0, position: step * 16, globalStep: step },
    images: 8,
    crossEntropy: 2,
    smoothL1: 1,
    dataSeconds: 0.02 + 0.01 * rank,
    computeSeconds: 0.3 + 0.05 * ((step * (rank + 1)) % 3),
    allreduceSeconds: 0.08 + 0.02 * (step % 2),
    updateSeconds: 0.04,
    allreduceBytes: 1_000_000,
    badRecords: 0,
    learningRate: 0.001,
  };
}

test('stats give the speedup and efficiency a scrape right after the last step reads', async (t) => {
  const c = statsWithMetrics(2);
  t.teardown(() => c.metrics.close());
  for (let step = 1; step <= 30; step++) {
    c.clock.advance(450 + 10 * (step % 4));
    c.stats.onStep(report(0, step));
    c.clock.advance(15);
    c.stats.onStep(report(1, step));
  }
  const estimate = c.stats.scalingAtLastStep();
  t.is(estimate.speedup, (await seriesValue(c.registry, 'ssd_cluster_speedup'))!);
  t.is(estimate.efficiency, (await seriesValue(c.registry, 'ssd_cluster_scaling_efficiency'))!);
  t.true(estimate.speedup > 1 && estimate.speedup < 2, `speedup ${estimate.speedup}`);
  // The final validation and shutdown: the gauges decay, the summary keeps the end-of-training value.
  c.clock.advance(20_000);
  t.true((await seriesValue(c.registry, 'ssd_cluster_speedup'))! < estimate.speedup);
  const summary = withScaling({ ...SUMMARY }, c.stats);
  t.is(summary.speedup, estimate.speedup);
  t.is(summary.scalingEfficiency, estimate.efficiency);
  t.is(summary.modelDir, SUMMARY.modelDir, 'the other fields are kept');
});

test('stats divide the speedup by the ring size of the latest generation', async (t) => {
  const c = statsWithMetrics(3);
  t.teardown(() => c.metrics.close());
  for (let step = 1; step <= 10; step++) {
    c.clock.advance(500);
    for (const rank of [0, 1, 2]) c.stats.onStep(report(rank, step));
  }
  const three = c.stats.scalingAtLastStep();
  t.is(three.efficiency, three.speedup / 3);
  c.stats.onGeneration(8, 2);
  t.is(c.stats.scalingAtLastStep().efficiency, three.speedup / 2);
});

test('summary has null speedup and efficiency when no step was reported', (t) => {
  const stats = createCoordinatorStats(new FakeClock(0));
  stats.onGeneration(1, 2);
  t.true(Number.isNaN(stats.scalingAtLastStep().speedup));
  const summary = withScaling({ ...SUMMARY }, stats);
  t.is(summary.speedup, null);
  t.is(summary.scalingEfficiency, null);
  t.is(JSON.parse(JSON.stringify(summary)).speedup, null, 'the JSON line says null, not NaN');
});

/** A coordinator (no server) of two workers, and a StepReport of `step` (global batch 8, epoch 64). */
async function twoWorkerJob(t: import('ava').ExecutionContext) {
  const coordinator = new Coordinator({
    spec: testJobSpec,
    hp: testHyperparameters,
    membership: {
      minWorkers: 1,
      maxWorkers: 2,
      targetWorkers: 2,
      heartbeatTimeoutMs: 5000,
      formGraceMs: 1000,
    },
    clusterToken: 'secret',
    heartbeatIntervalMs: 500,
    clock: new FakeClock(1_000_000),
  });
  t.teardown(() => coordinator.close());
  const join = (port: number) =>
    coordinator.join(
      { ...{ clusterToken: 'secret', workerId: '', peerAddress: `:${port}`, metricsAddress: '' }, ...JOIN },
      'ipv4:127.0.0.1:40000',
    ).workerId;
  const ids = [join(7201), join(7202)];
  const signal = AbortSignal.timeout(5000);
  const first = await Promise.all(
    ids.map((workerId) =>
      coordinator.getAssignment({ workerId, knownGeneration: 0, completed: null }, signal),
    ),
  );
  const step = (workerId: string, globalStep: number, images: number): StepReportMsg => ({
    ...report(0, globalStep),
    workerId,
    generation: coordinator.generation,
    progress: { epoch: 0, position: 8 * globalStep, globalStep },
    images,
  });
  return { coordinator, ids, generation: first[0]!.generation, step, signal };
}

const JOIN = { layoutHash: 'h', backend: 'cpu', hostname: 'test', version: SSD_CLUSTER_VERSION };

test('images_total counts a killed rank’s last step once, as the surviving ring commits it', async (t) => {
  const c = await twoWorkerJob(t);
  const registry = new Registry();
  const metrics = createCoordinatorMetrics(
    registry,
    { stats: c.coordinator.stats, membership: () => c.coordinator.membership },
    { defaultMetrics: false },
  );
  t.teardown(() => metrics.close());
  const [a, b] = c.ids as [string, string];
  for (const s of [1, 2]) for (const id of [a, b]) c.coordinator.reportStep(c.step(id, s, 4));
  // b is killed after step 3's all-reduce, before reporting it; a reported it, then lost its ring.
  c.coordinator.reportStep(c.step(a, 3, 4));
  c.coordinator.leave({ workerId: b, reason: 'killed' });
  const completed = { epoch: 0, position: 24, globalStep: 3 };
  const alone = await c.coordinator.getAssignment(
    { workerId: a, knownGeneration: c.generation, completed },
    c.signal,
  );
  t.deepEqual(alone.start, completed, 'the new ring starts after step 3');
  t.is(c.coordinator.stats.imagesTotal, 24, 'b trained its slice of step 3 into the model');
  for (let s = 4; s <= 8; s++) c.coordinator.reportStep(c.step(a, s, 8));
  t.is(c.coordinator.stats.imagesTotal, 64, 'the epoch, every image once');
  t.is(await seriesValue(registry, 'ssd_cluster_images_total'), 64);
});
