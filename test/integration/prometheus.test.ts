import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import test from 'ava';
import { CLI_ENTRY } from '../../coordinator/launcher.js';
import { deadline } from '../../shared/abort.js';
import { synthFixture, tinySsdFlags } from '../helpers/synth-fixture.js';
import { freePort, startPrometheus, waitFor } from '../shared/metrics/prometheus-server.js';

// A real `local --workers 2` job, a real Prometheus running deploy/prometheus.yml: the coordinator is
// scraped statically, both workers are found through its /sd, and their series answer a query.
const data = synthFixture(test, { train: 64, validation: 4 });

test('a real Prometheus discovers and scrapes both workers of a running local --workers 2 job', async (t) => {
  const metricsPort = await freePort();
  // Many epochs: the job runs until the test has its answer. It leads its own process group (its
  // workers inherit it), so one SIGTERM to the group stops the launcher and the workers together.
  const job = spawn(
    process.execPath,
    [
      CLI_ENTRY,
      'local',
      ...['--workers', '2', '--port', '0', '--metrics-port', String(metricsPort)],
      ...tinySsdFlags(data),
      ...['--mini-batch-size', '2', '--epochs', '1000', '--optimizer', 'sgd'],
      ...['--train', data.train, '--model-dir', data.path('model')],
      ...['--run-dir', data.path('run'), '--backend', 'wasm', '--log-level', 'warn'],
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], detached: true },
  );
  let stderr = '';
  job.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const exited = once(job, 'exit');
  const signalGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-job.pid!, signal);
    } catch {} // ESRCH: the whole group has already exited
  };
  t.teardown(async () => {
    if (job.exitCode === null && job.signalCode === null) signalGroup('SIGKILL');
    await exited;
    signalGroup('SIGKILL');
  });

  const config = (await readFile(new URL('../../deploy/prometheus.yml', import.meta.url), 'utf8'))
    .replaceAll('COORDINATOR_HOST:9090', `127.0.0.1:${metricsPort}`)
    .replace(/scrape_interval: \d+s/, 'scrape_interval: 1s')
    .replace(/scrape_timeout: \d+s/, 'scrape_timeout: 1s')
    .replace(/refresh_interval: \d+s/, 'refresh_interval: 1s');
  const prometheus = await startPrometheus(config);
  t.teardown(() => prometheus.close());

  const ranks = await waitFor(
    'both workers to be scraped with steps done',
    async () => {
      if (job.exitCode !== null) throw new Error(`local exited ${job.exitCode}: ${stderr.slice(-2000)}`);
      const result = await prometheus.query('ssd_cluster_images_total{job="ssd-cluster-workers"} > 0');
      return result.length === 2 ? result.map((s) => s.metric.rank).sort() : undefined;
    },
    90_000,
  );
  t.deepEqual(ranks, ['0', '1']);
  const [workers] = await prometheus.query('ssd_cluster_workers{job="ssd-cluster-coordinator"}');
  t.is(Number(workers?.value[1]), 2);
  const sd = (await prometheus.activeTargets()).filter(
    (target) => target.labels.job === 'ssd-cluster-workers',
  );
  t.deepEqual(sd.map((target) => target.health).sort(), ['up', 'up']);

  signalGroup('SIGTERM');
  const limit = deadline(undefined, 30_000);
  t.teardown(() => limit.clear());
  const [code] = await Promise.race([
    exited,
    once(limit.signal, 'abort').then(() => {
      throw new Error(`local did not stop within 30 s of SIGTERM: ${stderr.slice(-2000)}`);
    }),
  ]);
  t.is(code, 130, 'local reports the stop by signal');
});
