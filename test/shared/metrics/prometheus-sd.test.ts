import { readFile } from 'node:fs/promises';
import test from 'ava';
import { serveCoordinatorMetrics } from '../../../coordinator/metrics.js';
import { createCoordinatorStats } from '../../../coordinator/stats.js';
import { systemClock } from '../../../shared/clock.js';
import { serveWorkerMetrics } from '../../../worker/metrics.js';
import { startPrometheus, waitFor } from './prometheus-server.js';

const phases = { data: 0.01, compute: 0.05, allreduce: 0.02, update: 0.01 };

test('a real Prometheus with deploy/prometheus.yml scrapes the coordinator and finds the workers through /sd', async (t) => {
  const workers = await Promise.all([0, 1].map(() => serveWorkerMetrics({ host: '127.0.0.1', port: 0 })));
  t.teardown(() => Promise.all(workers.map((w) => w.close())));
  workers.forEach((w, rank) => {
    w.metrics.onAssignment({ generation: 1, rank, worldSize: 2 });
    // Rank r has done 3 + 2r steps of 8 images.
    for (let s = 0; s < 3 + 2 * rank; s++) {
      w.metrics.onStep({
        images: 8,
        phases,
        allreduceBytes: 1e6,
        losses: { crossEntropy: 2, smoothL1: 1 },
        lr: 0.01,
      });
    }
  });
  const members = workers.map((w, rank) => ({
    workerId: `w-${rank}`,
    metricsAddress: w.address,
    peerAddress: '',
  }));
  const source = {
    stats: createCoordinatorStats(systemClock),
    membership: () => ({ generation: 1, phase: 'running' as const, members, candidates: [] }),
  };
  const coordinator = await serveCoordinatorMetrics(source, { host: '127.0.0.1', port: 0 });
  t.teardown(() => coordinator.close());

  // The shipped config, pointed at this coordinator and made quick.
  const config = (await readFile(new URL('../../../deploy/prometheus.yml', import.meta.url), 'utf8'))
    .replaceAll('COORDINATOR_HOST:9090', coordinator.address)
    .replace(/scrape_interval: \d+s/, 'scrape_interval: 1s')
    .replace(/scrape_timeout: \d+s/, 'scrape_timeout: 1s')
    .replace(/refresh_interval: \d+s/, 'refresh_interval: 1s');
  const prometheus = await startPrometheus(config);
  t.teardown(() => prometheus.close());

  const images = await waitFor('both workers scraped', async () => {
    const result = await prometheus.query('ssd_cluster_images_total{job="ssd-cluster-workers"}');
    return result.length === 2 ? result : undefined;
  });
  t.deepEqual(images.map((s) => [s.metric.rank, s.metric.instance, Number(s.value[1])]).sort(), [
    ['0', workers[0]!.address, 24],
    ['1', workers[1]!.address, 40],
  ]);
  const alive = await waitFor('the coordinator scraped', async () => {
    const [sample] = await prometheus.query('ssd_cluster_workers{job="ssd-cluster-coordinator"}');
    return sample;
  });
  t.is(Number(alive.value[1]), 2);
  const discovered = (await prometheus.activeTargets())
    .filter((target) => target.labels.job === 'ssd-cluster-workers')
    .map((target) => [target.discoveredLabels.__meta_ssd_cluster_rank, target.labels.instance])
    .sort();
  t.deepEqual(discovered, [
    ['0', workers[0]!.address],
    ['1', workers[1]!.address],
  ]);
});
