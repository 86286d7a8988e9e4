import test from 'ava';
import { decodeImage } from '../../../worker/data/decode.js';
import {
  addDecodeCacheCounts,
  DecodedImageCache,
  EMPTY_DECODE_CACHE_STATS,
} from '../../../worker/data/decoded-image-cache.js';
import type { RgbImage } from '../../../worker/data/resample.js';
import { encodeRgb, rectangleRgb } from './fixtures.js';

/** A width x height JPEG with one rectangle, its colours depending on `seed`. */
function jpeg(width: number, height: number, seed: number): Promise<Buffer> {
  const rect = { x: 2, y: 3, width: Math.floor(width / 2), height: Math.floor(height / 2) };
  const fg = [(seed * 53) % 256, (seed * 97) % 256, 200] as [number, number, number];
  return encodeRgb(rectangleRgb(width, height, [rect], fg, [10, 20, 30]), width, height, 'jpeg');
}

/** A stand-in decoded image of n pixel bytes (the cache never looks inside). */
function pixels(n: number, fill = 1): RgbImage {
  return { width: n / 3, height: 1, data: new Uint8Array(n).fill(fill) };
}

test('a hit gives the pixels a fresh decode of the same bytes gives', async (t) => {
  const cache = new DecodedImageCache(1 << 20);
  const image = await jpeg(40, 30, 1);
  t.is(cache.get('set.rec@0', image), undefined);
  t.true(cache.offer('set.rec@0', image, await decodeImage(image, 'set.rec@0')));
  const held = cache.get('set.rec@0', Buffer.from(image)); // equal bytes in another buffer
  t.not(held, undefined);
  t.deepEqual(held, await decodeImage(image, 'set.rec@0'));
  t.like(cache.stats(), { hits: 1, misses: 1, entries: 1 });
});

test('bytes held never exceed the budget, and an image larger than the budget is not cached', (t) => {
  const budget = 10_000;
  const cache = new DecodedImageCache(budget);
  const sizes = [3000, 6000, 600, 3000, 300, 9000, 30];
  const admitted: boolean[] = [];
  sizes.forEach((n, i) => {
    admitted.push(cache.offer(`img-${i}`, new Uint8Array(10).fill(i), pixels(n)));
    t.true(cache.stats().bytesHeld <= budget, `after offer ${i}`);
  });
  // Keep what fits, never evict: each is admitted exactly when it fits in what is left.
  t.deepEqual(admitted, [true, true, true, false, true, false, true]);
  t.is(cache.stats().bytesHeld, 3010 + 6010 + 610 + 310 + 40);
  t.false(cache.offer('huge', new Uint8Array(1), pixels(budget)), 'one byte over the whole budget');
  t.is(cache.get('huge', new Uint8Array(1)), undefined);
  t.is(cache.get('img-3', new Uint8Array(10).fill(3)), undefined, 'a refused image stays a miss');
  t.not(cache.get('img-0', new Uint8Array(10).fill(0)), undefined, 'the first ones stay');
});

test('a budget of 0 caches nothing', (t) => {
  const cache = new DecodedImageCache(0);
  t.false(cache.offer('a.png', new Uint8Array(4), pixels(3)));
  t.is(cache.get('a.png', new Uint8Array(4)), undefined);
  t.deepEqual(cache.stats(), { budgetBytes: 0, bytesHeld: 0, entries: 0, hits: 0, misses: 1 });
});

test('other bytes under a held key are a miss and replace the stale entry', (t) => {
  const cache = new DecodedImageCache(1000);
  const first = new Uint8Array([1, 2, 3, 4]);
  t.true(cache.offer('x.rec@8', first, pixels(30, 1)));
  t.is(cache.get('x.rec@8', new Uint8Array([1, 2, 3, 4, 5])), undefined, 'another length');
  t.is(cache.get('x.rec@8', new Uint8Array([1, 2, 3, 5])), undefined, 'same length, other bytes');
  const second = new Uint8Array([9, 9]);
  t.true(cache.offer('x.rec@8', second, pixels(60, 2)));
  t.is(cache.get('x.rec@8', first), undefined, 'the stale entry is gone');
  t.is(cache.get('x.rec@8', second)?.data[0], 2);
  t.like(cache.stats(), { entries: 1, bytesHeld: 62, hits: 1, misses: 3 });
});

test('the cache keeps its own copy of the encoded bytes, so a reused caller buffer cannot hit', (t) => {
  const cache = new DecodedImageCache(1000);
  const buffer = new Uint8Array([1, 2, 3, 4]);
  cache.offer('y.png', buffer, pixels(3));
  buffer.set([5, 6, 7, 8]); // the caller reuses its buffer for other bytes
  t.is(cache.get('y.png', buffer), undefined);
  t.not(cache.get('y.png', new Uint8Array([1, 2, 3, 4])), undefined);
});

test('offering an image already held under its key (two concurrent misses) keeps one entry', (t) => {
  const cache = new DecodedImageCache(1000);
  t.true(cache.offer('z.png', new Uint8Array([7]), pixels(30)));
  t.true(cache.offer('z.png', new Uint8Array([7]), pixels(30)));
  t.like(cache.stats(), { entries: 1, bytesHeld: 31 });
});

test('DecodedImageCache rejects a budget that is not a whole number of bytes >= 0', (t) => {
  for (const budget of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
    t.throws(() => new DecodedImageCache(budget), { instanceOf: RangeError, message: /budgetBytes/ });
  }
});

test('addDecodeCacheCounts sums hits and misses and takes the rest from the newer stats', (t) => {
  const base = { ...EMPTY_DECODE_CACHE_STATS, hits: 5, misses: 7, bytesHeld: 99 };
  const next = { budgetBytes: 100, bytesHeld: 40, entries: 2, hits: 1, misses: 2 };
  t.deepEqual(addDecodeCacheCounts(base, next), {
    budgetBytes: 100,
    bytesHeld: 40,
    entries: 2,
    hits: 6,
    misses: 9,
  });
});
