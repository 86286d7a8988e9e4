import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { isClusterError } from '../../../shared/errors.js';
import { DEFAULT_DECODE_CACHE_MB } from '../../../worker/data/decoded-image-cache.js';
import { type PrepareOptions, prepareSample } from '../../../worker/data/prepare.js';
import {
  closePrepareThread,
  collectThreadAnswers,
  configurePrepareThread,
  decodeCacheStats,
  prepareOnThread,
} from '../../../worker/data/prepare-thread.js';
import { encodeRgb, rectangleRgb, rectangleSample } from './fixtures.js';

// The thread is shared by the process, and one test stops it: one test at a time.
const SIZE = 24;

async function jpegSample(index: number) {
  const pixels = rectangleRgb(40, 30, [{ x: 6, y: 4, width: 20, height: 14 }], [240, 30, 60], [20, 90, 200]);
  const base = await rectangleSample(40, 30, { x: 6, y: 4, width: 20, height: 14 }, index);
  return { ...base, image: await encodeRgb(pixels, 40, 30, 'jpeg'), source: `set.rec@${index * 4096}` };
}

const opts = (train: boolean, epoch = 3): PrepareOptions => ({ imageShape: SIZE, train, seed: 7, epoch });

test.serial('prepareOnThread gives what prepareSample gives, for training and validation', async (t) => {
  for (const train of [true, false]) {
    for (const index of [0, 1, 2, 5]) {
      const sample = await jpegSample(index);
      const here = await prepareSample(sample, opts(train));
      const there = await prepareOnThread(sample, opts(train));
      t.deepEqual(there, here, `train ${train}, sample ${index}`);
    }
  }
});

test.serial(
  'prepareOnThread writes the pixels into the given slot and leaves the sample intact',
  async (t) => {
    const sample = await jpegSample(4);
    const image = Buffer.from(sample.image);
    const batch = new Float32Array(3 * SIZE * SIZE * 3);
    const slot = batch.subarray(SIZE * SIZE * 3, 2 * SIZE * SIZE * 3);
    const prepared = await prepareOnThread(sample, opts(true), slot);
    t.is(prepared.pixels, slot);
    t.deepEqual(slot, (await prepareSample(sample, opts(true))).pixels);
    t.true(
      batch.subarray(0, SIZE * SIZE * 3).every((v) => v === 0),
      'nothing outside the slot',
    );
    t.deepEqual(sample.image, image, 'the caller keeps its encoded bytes');
  },
);

test.serial(
  'a bad image comes back as the IMAGE error prepareSample throws, naming the source',
  async (t) => {
    const sample = { ...(await jpegSample(0)), image: Buffer.from('GIF89a....'), source: 'x.rec@8' };
    const here = await t.throwsAsync(prepareSample(sample, opts(true)));
    const there = await t.throwsAsync(prepareOnThread(sample, opts(true)));
    t.true(isClusterError(there, 'IMAGE'));
    t.is(there!.message, here!.message);
  },
);

test.serial('collectThreadAnswers takes an answer while the event loop is blocked', async (t) => {
  const sample = await jpegSample(3);
  const slot = new Float32Array(SIZE * SIZE * 3);
  const answer = prepareOnThread(sample, opts(true), slot);
  // Block the loop (so no message event can be dispatched) until the answer has been taken.
  const nap = new Int32Array(new SharedArrayBuffer(4));
  const deadline = Date.now() + 20_000;
  while (slot.every((v) => v === 0) && Date.now() < deadline) {
    Atomics.wait(nap, 0, 0, 2);
    collectThreadAnswers();
  }
  t.false(
    slot.every((v) => v === 0),
    'the pixels arrived without a turn of the event loop',
  );
  t.deepEqual((await answer).pixels, (await prepareSample(sample, opts(true))).pixels);
});

test.serial(
  'jobs pending when the thread stops reject as INTERNAL, and the next job starts a new thread',
  async (t) => {
    const sample = await jpegSample(1);
    const pending = prepareOnThread(sample, opts(true));
    await closePrepareThread();
    const err = await t.throwsAsync(pending);
    t.true(isClusterError(err, 'INTERNAL'), String(err));
    t.regex(err!.message, /^prepare thread: /);
    t.deepEqual(await prepareOnThread(sample, opts(true)), await prepareSample(sample, opts(true)));
    await closePrepareThread(); // idempotent with nothing pending
    await closePrepareThread();
  },
);

test.serial(
  'the thread keeps decoded images: a repeated sample is a hit with the same result, counted in decodeCacheStats',
  async (t) => {
    await closePrepareThread();
    configurePrepareThread({ decodeCacheBytes: DEFAULT_DECODE_CACHE_MB * 1024 * 1024 });
    const before = decodeCacheStats();
    const sample = { ...(await jpegSample(6)), source: 'cache-test.rec@0' };
    for (const epoch of [0, 1]) {
      t.deepEqual(
        await prepareOnThread(sample, opts(false, epoch)),
        await prepareSample(sample, opts(false, epoch)),
      );
    }
    const after = decodeCacheStats();
    t.is(after.hits - before.hits, 1);
    t.is(after.misses - before.misses, 1);
    t.is(after.budgetBytes, DEFAULT_DECODE_CACHE_MB * 1024 * 1024);
    t.true(after.bytesHeld >= 40 * 30 * 3 + sample.image.length, `bytes held ${after.bytesHeld}`);
    await closePrepareThread();
    const closed = decodeCacheStats();
    t.like(closed, { hits: after.hits, misses: after.misses, bytesHeld: 0 }, 'counts survive the thread');
  },
);

test.serial(
  'configurePrepareThread 0 turns the cache off; another budget for a running thread is an error',
  async (t) => {
    await closePrepareThread();
    configurePrepareThread({ decodeCacheBytes: 0 });
    t.teardown(async () => {
      await closePrepareThread();
      configurePrepareThread({ decodeCacheBytes: DEFAULT_DECODE_CACHE_MB * 1024 * 1024 });
    });
    const before = decodeCacheStats();
    const sample = await jpegSample(7);
    for (const epoch of [0, 1]) {
      t.deepEqual(
        await prepareOnThread(sample, opts(false, epoch)),
        await prepareSample(sample, opts(false, epoch)),
      );
    }
    t.deepEqual(decodeCacheStats(), { ...before, budgetBytes: 0, bytesHeld: 0, entries: 0 });
    configurePrepareThread({ decodeCacheBytes: 0 }); // the same settings: fine
    const err = t.throws(() => configurePrepareThread({ decodeCacheBytes: 1024 }));
    t.true(isClusterError(err, 'INTERNAL'));
    t.regex(err!.message, /already running with a 0-byte decode cache/);
    t.throws(() => configurePrepareThread({ decodeCacheBytes: -1 }), { message: /decodeCacheBytes/ });
  },
);

test.serial('the thread keeps a process alive while a job is pending, and not after', async (t) => {
  const here = fileURLToPath(new URL('.', import.meta.url));
  const script = `
    import { prepareOnThread } from ${JSON.stringify(`${here}../../../worker/data/prepare-thread.ts`)};
    import { rectangleSample } from ${JSON.stringify(`${here}fixtures.ts`)};
    const sample = await rectangleSample(16, 16, { x: 2, y: 2, width: 8, height: 8 });
    const prepared = await prepareOnThread(sample, { imageShape: 8, train: true, seed: 1, epoch: 0 });
    console.log('prepared', prepared.pixels.length);
  `;
  const child = spawn(process.execPath, ['--import=tsx', '--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  let out = '';
  child.stdout.on('data', (chunk) => {
    out += chunk;
  });
  const [code] = await Promise.race([
    once(child, 'exit'),
    once(child, 'never', { signal: AbortSignal.timeout(30_000) }),
  ]);
  t.is(code, 0);
  t.is(out.trim(), `prepared ${8 * 8 * 3}`);
});
