import test from 'ava';
import { Registry } from 'prom-client';
import { FakeClock } from '../../shared/clock.js';
import { createWorkerMetrics, serveWorkerMetrics, type WorkerStep } from '../../worker/metrics.js';
import { promtoolCheckMetrics, seriesIn, seriesValue } from '../shared/metrics/helpers.js';

const phases = { data: 0.02, compute: 0.5, allreduce: 0.2, update: 0.03 };
const stepSeconds = phases.data + phases.compute + phases.allreduce + phases.update;

function step(globalStep: number): WorkerStep {
  return {
    images: 8,
    phases,
    allreduceBytes: 12_000_000,
    losses: { crossEntropy: 3 - globalStep / 100, smoothL1: 1.5 },
    lr: 0.004,
    epoch: 0,
    globalStep,
  };
}

function setup(options: { rank?: number } = {}) {
  const clock = new FakeClock(50_000);
  const registry = new Registry();
  const metrics = createWorkerMetrics(registry, { clock, ...options });
  const run = (from: number, count: number) => {
    for (let s = from; s < from + count; s++) {
      clock.advance(1000 * stepSeconds);
      metrics.onStep(step(s));
    }
  };
  return { clock, registry, metrics, run };
}

test('worker metrics pass promtool check metrics after a few steps, a bad record, an epoch and a checkpoint', async (t) => {
  const { registry, metrics, run } = setup();
  metrics.onAssignment({ generation: 2, rank: 1, worldSize: 3 });
  run(1, 12);
  metrics.onBadRecord();
  metrics.onEpoch({ epoch: 0, validationMap: 0.31 });
  metrics.onCheckpoint(1_700_000_000_000);
  const text = await registry.metrics();
  const check = await promtoolCheckMetrics(text);
  t.is(check.code, 0, check.output);
  t.is(check.output, '');
  t.is(seriesIn(text, 'process_cpu_seconds_total').size, 1, 'default process metrics are there');
});

test('worker metrics label every series with the rank once assigned, and relabel on a new ring', async (t) => {
  const { registry, metrics, run } = setup();
  t.is(await seriesValue(registry, 'ssd_cluster_rank'), -1);
  t.false((await registry.metrics()).includes('rank="'), 'no rank label before the first ring');
  metrics.onAssignment({ generation: 1, rank: 2, worldSize: 3 });
  run(1, 1);
  let text = await registry.metrics();
  t.is(seriesIn(text, 'ssd_cluster_images_total').get('{rank="2"}'), 8);
  t.is(seriesIn(text, 'process_cpu_seconds_total').size, 1);
  t.regex(text, /^process_cpu_seconds_total\{rank="2"\}/m);
  metrics.onAssignment({ generation: 2, rank: 0, worldSize: 2 });
  text = await registry.metrics();
  t.is(seriesIn(text, 'ssd_cluster_rank').get('{rank="0"}'), 0);
  t.is(seriesIn(text, 'ssd_cluster_world_size').get('{rank="0"}'), 2);
  t.is(seriesIn(text, 'ssd_cluster_generation').get('{rank="0"}'), 2);
});

test('worker metrics take a rank given up front', async (t) => {
  const { registry } = setup({ rank: 4 });
  t.regex(await registry.metrics(), /^ssd_cluster_rank\{rank="4"\} 4$/m);
});

test('worker metrics follow the steps: counters, phases, losses, learning rate, rates and progress', async (t) => {
  const { registry, metrics, run } = setup();
  metrics.onAssignment({ generation: 1, rank: 0, worldSize: 4 });
  run(1, 10);
  metrics.onBadRecord(3);
  const value = (name: string, labels?: Record<string, string>) => seriesValue(registry, name, labels);
  t.is(await value('ssd_cluster_images_total'), 80);
  t.is(await value('ssd_cluster_allreduce_bytes_total'), 120_000_000);
  t.is(await value('ssd_cluster_bad_records_total'), 3);
  t.is(await value('ssd_cluster_step'), 10);
  t.is(await value('ssd_cluster_train_loss', { loss: 'cross_entropy' }), 3 - 10 / 100);
  t.is(await value('ssd_cluster_learning_rate'), 0.004);
  t.true(Math.abs((await value('ssd_cluster_images_per_second'))! - 8 / stepSeconds) < 1e-9);
  const busbw = (await value('ssd_cluster_allreduce_bus_bandwidth_bytes_per_second'))!;
  t.true(Math.abs(busbw - ((12_000_000 / phases.allreduce) * 2 * 3) / 4) < 1e-3, `busbw ${busbw}`);
  const text = await registry.metrics();
  t.is(seriesIn(text, 'ssd_cluster_step_seconds_count').get('{rank="0",phase="allreduce"}'), 10);
  t.is(seriesIn(text, 'ssd_cluster_step_seconds_sum').get('{rank="0",phase="compute"}'), 10 * phases.compute);
});

test('worker metrics report NaN mAP until an epoch has one, and the checkpoint time in seconds', async (t) => {
  const { registry, metrics } = setup();
  t.true(Number.isNaN(await seriesValue(registry, 'ssd_cluster_validation_map')));
  metrics.onEpoch({ epoch: 2, validationMap: 0.5 });
  t.is(await seriesValue(registry, 'ssd_cluster_validation_map'), 0.5);
  t.is(await seriesValue(registry, 'ssd_cluster_epoch'), 2);
  metrics.onEpoch({ epoch: 3, validationMap: null });
  t.true(Number.isNaN(await seriesValue(registry, 'ssd_cluster_validation_map')));
  metrics.onCheckpoint(1_700_000_123_000);
  t.is(await seriesValue(registry, 'ssd_cluster_checkpoint_last_success_timestamp_seconds'), 1_700_000_123);
});

test('serveWorkerMetrics serves /metrics on an ephemeral port, no /sd, and closes twice', async (t) => {
  const endpoint = await serveWorkerMetrics({ host: '127.0.0.1', port: 0 });
  t.teardown(() => endpoint.close());
  endpoint.metrics.onAssignment({ generation: 1, rank: 0, worldSize: 1 });
  const res = await fetch(`http://127.0.0.1:${endpoint.port}/metrics`);
  t.is(res.status, 200);
  t.regex(await res.text(), /^ssd_cluster_world_size\{rank="0"\} 1$/m);
  t.is((await fetch(`http://127.0.0.1:${endpoint.port}/sd`)).status, 404);
  t.is(endpoint.address, `127.0.0.1:${endpoint.port}`);
  await endpoint.close();
  await endpoint.close();
});
