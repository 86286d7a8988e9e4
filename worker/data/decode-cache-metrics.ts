/**
 * Prometheus series of the prepare thread's decode cache (decoded-image-cache.ts), read in collect()
 * from the counters the thread's answers carry (prepare-thread.ts decodeCacheStats).
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { DecodedImageCacheStats } from './decoded-image-cache.js';

const PREFIX = 'ssd_cluster_decode_cache';

export function registerDecodeCacheMetrics(registry: Registry, read: () => DecodedImageCacheStats): void {
  const registers = [registry];
  for (const [field, help] of [
    ['hits', 'Images of the JS resampling path served by the decode cache instead of a decode.'],
    ['misses', 'Images of the JS resampling path decoded because the decode cache did not hold them.'],
  ] as const) {
    new Counter({
      name: `${PREFIX}_${field}_total`,
      help,
      registers,
      collect() {
        // The totals are monotonic (prepare-thread.ts adds a stopped thread's counts to them).
        this.reset();
        this.inc(read()[field]);
      },
    });
  }
  for (const [name, field, help] of [
    [
      'bytes',
      'bytesHeld',
      'Bytes held by the decode cache (decoded pixels plus encoded copies), out of ssd_cluster_decode_cache_budget_bytes.',
    ],
    [
      'budget_bytes',
      'budgetBytes',
      'Budget of the decode cache (worker --decode-cache-mb); 0 when it is off.',
    ],
  ] as const) {
    new Gauge({
      name: `${PREFIX}_${name}`,
      help,
      registers,
      collect() {
        this.set(read()[field]);
      },
    });
  }
}
