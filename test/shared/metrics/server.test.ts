import type { ExecutionContext } from 'ava';
import test from 'ava';
import { Counter, Gauge, Registry } from 'prom-client';
import { isClusterError } from '../../../shared/errors.js';
import { createMemoryLogger } from '../../../shared/logging.js';
import type { TargetGroup } from '../../../shared/metrics/http-sd.js';
import { type MetricsServerOptions, startMetricsServer } from '../../../shared/metrics/server.js';

async function serve(t: ExecutionContext, o: Partial<MetricsServerOptions> = {}) {
  const registry = o.registry ?? new Registry();
  const server = await startMetricsServer({ registry, host: '127.0.0.1', port: 0, ...o });
  t.teardown(() => server.close());
  const url = (path: string) => `http://127.0.0.1:${server.port}${path}`;
  return { registry, server, url };
}

test('metrics server serves the registry on GET /metrics with its content type', async (t) => {
  const registry = new Registry();
  new Counter({ name: 'demo_events_total', help: 'Demo.', registers: [registry] }).inc(3);
  const { url } = await serve(t, { registry });
  const res = await fetch(url('/metrics'));
  t.is(res.status, 200);
  t.is(res.headers.get('content-type'), registry.contentType);
  t.regex(await res.text(), /^demo_events_total 3$/m);
});

test('metrics server serves HTTP service discovery on GET /sd as the JSON the callback returns now', async (t) => {
  let groups: TargetGroup[] = [];
  const { url } = await serve(t, { sd: () => groups });
  t.deepEqual(await (await fetch(url('/sd'))).json(), []);
  groups = [{ targets: ['127.0.0.1:9101'], labels: { job: 'w', __meta_ssd_cluster_rank: '0' } }];
  const res = await fetch(url('/sd'));
  t.is(res.headers.get('content-type'), 'application/json');
  t.deepEqual(await res.json(), groups);
});

test('metrics server answers 404 for other paths and for /sd without discovery, 405 for POST', async (t) => {
  const { url } = await serve(t);
  t.is((await fetch(url('/'))).status, 404);
  t.is((await fetch(url('/sd'))).status, 404);
  const post = await fetch(url('/metrics'), { method: 'POST', body: 'x' });
  t.is(post.status, 405);
  t.is(post.headers.get('allow'), 'GET, HEAD');
  t.is((await fetch(url('/metrics?debug=1'))).status, 200, 'a query string does not change the path');
});

test('metrics server answers 500 and logs when a collector throws', async (t) => {
  const registry = new Registry();
  new Gauge({
    name: 'broken_value',
    help: 'Throws.',
    registers: [registry],
    collect() {
      throw new Error('stats are gone');
    },
  });
  const logger = createMemoryLogger();
  const { url } = await serve(t, { registry, logger });
  const res = await fetch(url('/metrics'));
  t.is(res.status, 500);
  t.regex(await res.text(), /collecting \/metrics failed: stats are gone/);
  t.is(logger.entries[0]?.msg, 'metrics collection failed');
});

test('metrics server close() is idempotent, ends keep-alive connections and frees the port', async (t) => {
  const { server, url } = await serve(t);
  t.is((await fetch(url('/metrics'))).status, 200);
  await Promise.all([server.close(), server.close()]);
  await server.close();
  await t.throwsAsync(fetch(url('/metrics')));
  const again = await startMetricsServer({ registry: new Registry(), host: '127.0.0.1', port: server.port });
  t.teardown(() => again.close());
  t.is(again.port, server.port);
});

test('metrics server refuses a port in use with an error that names host and port', async (t) => {
  const { server } = await serve(t);
  const err = await t.throwsAsync(
    startMetricsServer({ registry: new Registry(), host: '127.0.0.1', port: server.port }),
  );
  t.true(isClusterError(err, 'CONFIG'));
  t.regex(err!.message, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${server.port}: .*EADDRINUSE`));
});
