import test from 'ava';
import { Registry } from 'prom-client';
import {
  LINT_FAILING_DEFAULT_METRICS,
  registerProcessMetrics,
} from '../../../shared/metrics/process-metrics.js';
import { promtoolCheckMetrics } from './helpers.js';

test('process metrics pass promtool and keep the per-type handle gauges in place of the _total gauges', async (t) => {
  const registry = new Registry();
  registerProcessMetrics(registry);
  const text = await registry.metrics();
  const check = await promtoolCheckMetrics(text);
  t.is(check.code, 0, check.output);
  t.is(check.output, '');
  for (const name of LINT_FAILING_DEFAULT_METRICS) t.is(registry.getSingleMetric(name), undefined);
  t.truthy(registry.getSingleMetric('nodejs_active_handles'));
  t.regex(text, /^process_cpu_seconds_total \d/m);
});

test('promtool itself rejects the gauges that registerProcessMetrics removes', async (t) => {
  const text =
    '# HELP nodejs_active_handles_total Handles.\n# TYPE nodejs_active_handles_total gauge\nnodejs_active_handles_total 3\n';
  const check = await promtoolCheckMetrics(text);
  t.not(check.code, 0);
  t.regex(check.output, /non-counter metrics should not have "_total" suffix/);
});
