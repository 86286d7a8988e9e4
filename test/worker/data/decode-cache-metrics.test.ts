import test from 'ava';
import { Registry } from 'prom-client';
import { registerDecodeCacheMetrics } from '../../../worker/data/decode-cache-metrics.js';
import type { DecodedImageCacheStats } from '../../../worker/data/decoded-image-cache.js';

async function valuesOf(registry: Registry): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const metric of await registry.getMetricsAsJSON()) out[metric.name] = metric.values[0]!.value;
  return out;
}

test('the decode cache series show the counters and bytes read at each scrape', async (t) => {
  const registry = new Registry();
  let stats: DecodedImageCacheStats = { budgetBytes: 1000, bytesHeld: 0, entries: 0, hits: 0, misses: 0 };
  registerDecodeCacheMetrics(registry, () => stats);
  t.deepEqual(await valuesOf(registry), {
    ssd_cluster_decode_cache_hits_total: 0,
    ssd_cluster_decode_cache_misses_total: 0,
    ssd_cluster_decode_cache_bytes: 0,
    ssd_cluster_decode_cache_budget_bytes: 1000,
  });
  stats = { budgetBytes: 1000, bytesHeld: 640, entries: 4, hits: 12, misses: 4 };
  t.deepEqual(await valuesOf(registry), {
    ssd_cluster_decode_cache_hits_total: 12,
    ssd_cluster_decode_cache_misses_total: 4,
    ssd_cluster_decode_cache_bytes: 640,
    ssd_cluster_decode_cache_budget_bytes: 1000,
  });
  t.regex(await registry.metrics(), /# TYPE ssd_cluster_decode_cache_hits_total counter/);
});
