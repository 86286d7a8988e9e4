import { createHash } from 'node:crypto';
import path from 'node:path';
import type { Logger } from '../logging.js';
import type { Storage } from '../storage/storage.js';
import { joinUrl } from '../storage/url.js';
import type { SynthOptions } from './synth-image.js';
import { type SynthDatasetUrls, synthDatasetUrls, writeSynthDataset } from './write-synth.js';

/**
 * Where `local` (with no --train) and `bench learn` keep generated data sets and runs:
 * $SSD_CLUSTER_CACHE, else .cache/ssd-cluster under the current directory.
 */
export function defaultCacheRoot(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): string {
  return env.SSD_CLUSTER_CACHE || path.join(cwd, '.cache', 'ssd-cluster');
}

/** A folder per synth configuration, so a changed default never reuses stale data. */
export function synthCacheDir(cache: string, options: Readonly<SynthOptions>): string {
  const digest = createHash('sha256').update(JSON.stringify(options)).digest('hex').slice(0, 10);
  return joinUrl(cache, `synth-${digest}`);
}

/** Writes the data set unless a complete one is there (classes.json is written last, so it marks completion). */
export async function ensureSynthDataset(
  dir: string,
  options: Readonly<SynthOptions>,
  ctx: { storage: Storage; logger: Logger; signal: AbortSignal },
): Promise<SynthDatasetUrls> {
  const urls = synthDatasetUrls(dir);
  if ((await ctx.storage.stat(urls.classes, { signal: ctx.signal })) !== undefined) {
    ctx.logger.info('reusing the synthetic data set', { dir });
    return urls;
  }
  ctx.logger.info('writing the synthetic data set', { dir });
  return writeSynthDataset(dir, options, ctx);
}
