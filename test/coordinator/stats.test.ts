import test from 'ava';
import { Registry } from 'prom-client';
import { withScaling } from '../../coordinator/main.js';
import { createCoordinatorMetrics } from '../../coordinator/metrics.js';
import type { StepReportMsg } from '../../coordinator/protocol.js';
import { createCoordinatorStats } from '../../coordinator/stats.js';
import { FakeClock } from '../../shared/clock.js';
import { seriesValue } from '../shared/metrics/helpers.js';

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
