import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { Registry } from 'prom-client';
import { createCoordinatorMetrics } from '../../../coordinator/metrics.js';
import { createCoordinatorStats } from '../../../coordinator/stats.js';
import { FakeClock } from '../../../shared/clock.js';
import { createWorkerMetrics } from '../../../worker/metrics.js';
import { runPromtool } from './helpers.js';

const root = new URL('../../../', import.meta.url).pathname;

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  targets: { refId: string; expr: string }[];
}

/** Every metric name either component exports (histograms with their _bucket/_sum/_count series). */
function exportedNames(): Set<string> {
  const coordinator = new Registry();
  const clock = new FakeClock();
  const membership = { generation: 0, phase: 'forming' as const, members: [] };
  createCoordinatorMetrics(coordinator, {
    stats: createCoordinatorStats(clock),
    membership: () => membership,
  });
  const worker = new Registry();
  createWorkerMetrics(worker, { clock });
  const names = new Set<string>();
  for (const m of [...coordinator.getMetricsAsArray(), ...worker.getMetricsAsArray()]) {
    for (const suffix of ['', '_bucket', '_sum', '_count']) names.add(m.name + suffix);
  }
  return names;
}

async function dashboardPanels(): Promise<Panel[]> {
  const dashboard = JSON.parse(await readFile(join(root, 'deploy/grafana-dashboard.json'), 'utf8'));
  return dashboard.panels as Panel[];
}

test('deploy/prometheus.yml passes promtool check config', async (t) => {
  const result = await runPromtool(['check', 'config', join(root, 'deploy/prometheus.yml')]);
  t.is(result.code, 0, result.output);
  const text = await readFile(join(root, 'deploy/prometheus.yml'), 'utf8');
  t.regex(text, /http_sd_configs:\s*\n\s*- url: http:\/\/COORDINATOR_HOST:9090\/sd/);
});

test('grafana dashboard has the panels the issue asks for, laid out on the 24-column grid without overlap', async (t) => {
  const panels = await dashboardPanels();
  const titles = panels.map((p) => p.title.toLowerCase()).join('\n');
  for (const want of [
    'throughput',
    'speedup',
    'efficiency',
    'step time',
    'bus bandwidth',
    'loss',
    'map',
    'workers',
    'restarts',
  ]) {
    t.true(titles.includes(want), `a panel about ${want}`);
  }
  t.is(new Set(panels.map((p) => p.id)).size, panels.length, 'panel ids are unique');
  const cells = new Set<string>();
  for (const p of panels) {
    t.true(p.gridPos.x >= 0 && p.gridPos.x + p.gridPos.w <= 24, `${p.title} fits the grid`);
    for (let x = p.gridPos.x; x < p.gridPos.x + p.gridPos.w; x++) {
      for (let y = p.gridPos.y; y < p.gridPos.y + p.gridPos.h; y++) {
        t.false(cells.has(`${x},${y}`), `${p.title} overlaps another panel at ${x},${y}`);
        cells.add(`${x},${y}`);
      }
    }
  }
});

test('grafana dashboard queries are valid PromQL over metrics the coordinator and workers export', async (t) => {
  const panels = await dashboardPanels();
  const exprs = panels.flatMap((p) => p.targets.map((target) => ({ title: p.title, expr: target.expr })));
  const names = exportedNames();
  for (const { title, expr } of exprs) {
    for (const used of expr.match(/ssd_cluster_[a-z_]+/g) ?? []) {
      t.true(names.has(used), `${title}: ${used} is exported`);
    }
  }
  // Each query as a recording rule: promtool parses every expression (Grafana's interval macro replaced).
  const dir = await mkdtemp(join(tmpdir(), 'dashboard-rules-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const rules = exprs.map((e, i) => ({
    record: `dashboard:query_${i}`,
    expr: e.expr.replaceAll('$__rate_interval', '1m'),
  }));
  const file = join(dir, 'rules.yml');
  await writeFile(file, JSON.stringify({ groups: [{ name: 'dashboard', rules }] }));
  const result = await runPromtool(['check', 'rules', file]);
  t.is(result.code, 0, result.output);
  t.regex(result.output, new RegExp(`SUCCESS: ${rules.length} rules found`));
});
