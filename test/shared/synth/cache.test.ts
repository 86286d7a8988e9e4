import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { createMemoryLogger } from '../../../shared/logging.js';
import { createLocalStorage } from '../../../shared/storage/local.js';
import { defaultCacheRoot, ensureSynthDataset, synthCacheDir } from '../../../shared/synth/cache.js';
import { compileSynthOptions, SYNTH_DEFAULTS } from '../../../shared/synth/synth-image.js';

test('synthCacheDir names one folder per synth configuration', (t) => {
  const a = synthCacheDir('/cache', SYNTH_DEFAULTS);
  t.regex(a, /^\/cache\/synth-[0-9a-f]{10}$/);
  t.is(synthCacheDir('/cache', { ...SYNTH_DEFAULTS }), a);
  t.not(synthCacheDir('/cache', { ...SYNTH_DEFAULTS, train: SYNTH_DEFAULTS.train + 1 }), a);
});

test('defaultCacheRoot is $SSD_CLUSTER_CACHE, else .cache/ssd-cluster under the working directory', (t) => {
  t.is(defaultCacheRoot({ SSD_CLUSTER_CACHE: '/var/cache/x' }, '/work'), '/var/cache/x');
  t.is(defaultCacheRoot({}, '/work'), '/work/.cache/ssd-cluster');
});

test('ensureSynthDataset writes a data set once, reuses a complete one, and rewrites one without classes.json', async (t) => {
  const cache = await fs.mkdtemp(path.join(os.tmpdir(), 'synth-cache-test-'));
  t.teardown(() => fs.rm(cache, { recursive: true, force: true }));
  const storage = createLocalStorage();
  t.teardown(() => storage.close());
  const logger = createMemoryLogger();
  const ctx = { storage, logger, signal: new AbortController().signal };
  const options = compileSynthOptions({ train: 2, validation: 1, imageSize: 32 });
  const dir = synthCacheDir(cache, options);
  const urls = await ensureSynthDataset(dir, options, ctx);
  const train = await storage.read(urls.train);
  t.true(train.length > 0);
  t.deepEqual(await ensureSynthDataset(dir, options, ctx), urls);
  await storage.delete(urls.classes); // as if a write had stopped before its last file
  await storage.write(urls.train, Buffer.from('partial'));
  await ensureSynthDataset(dir, options, ctx);
  t.true((await storage.read(urls.train)).equals(train), 'the same bytes written again');
  t.deepEqual(
    logger.entries.map((e) => e.msg).filter((m) => m.endsWith('the synthetic data set')),
    ['writing the synthetic data set', 'reusing the synthetic data set', 'writing the synthetic data set'],
  );
});
