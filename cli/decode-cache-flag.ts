import { MB } from '../worker/data/decoded-image-cache.js';
import { intFlag } from './args.js';

/** 1 TiB: far above any host's memory, and a whole number of bytes well inside 2^53. */
const MAX_DECODE_CACHE_MB = 1024 * 1024;

/**
 * --decode-cache-mb (worker, and local, which checks it before starting workers) as bytes, or
 * undefined when not given. A light module: `local` need not load the worker to check the flag.
 */
export function parseDecodeCacheFlag(value: string | undefined): number | undefined {
  const mb = intFlag('decode-cache-mb', value, { min: 0, max: MAX_DECODE_CACHE_MB });
  return mb === undefined ? undefined : mb * MB;
}
