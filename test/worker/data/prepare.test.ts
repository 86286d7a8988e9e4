import fs from 'node:fs/promises';
import test from 'ava';
import sharp from 'sharp';
import { isClusterError } from '../../../shared/errors.js';
import { createRng, RNG_STREAM } from '../../../shared/random.js';
import { planTrainTransform } from '../../../worker/data/augment.js';
import { DecodedImageCache } from '../../../worker/data/decoded-image-cache.js';
import {
  foldNormalisation,
  IMAGENET_MEAN,
  IMAGENET_NORMALISATION,
  IMAGENET_STD,
} from '../../../worker/data/normalise.js';
import { applyColourTransform } from '../../../worker/data/photometric.js';
import { prepareSample } from '../../../worker/data/prepare.js';
import { DOG_REC } from '../../helpers/recordio-fixtures.js';
import { encodeRgb, type Rgb, rectangleRgb, rectangleSample, rectGroundTruth } from './fixtures.js';

const SEED = 5;
const train = (epoch: number, imageShape = 64) => ({ imageShape, train: true, seed: SEED, epoch });

/** The dog JPEG out of the real im2rec file (record 0: 8-byte head, 24-byte IRHeader, 19 labels). */
async function dogJpeg(): Promise<Buffer> {
  const rec = await fs.readFile(DOG_REC);
  return rec.subarray(8 + 24 + 4 * 19, 8 + 163_859);
}

test('prepareSample gives identical pixels and boxes for the same seed, epoch and index', async (t) => {
  const sample = await rectangleSample(160, 120, { x: 40, y: 30, width: 50, height: 40 }, 17);
  const a = await prepareSample(sample, train(3));
  const b = await prepareSample(sample, train(3));
  t.deepEqual(a.pixels, b.pixels);
  t.deepEqual(a.gt, b.gt);
  t.is(a.pixels.length, 64 * 64 * 3);
});

test('prepareSample augments differently in another epoch and for another sample index', async (t) => {
  const sample = await rectangleSample(160, 120, { x: 40, y: 30, width: 50, height: 40 }, 17);
  const base = await prepareSample(sample, train(3));
  const differs = async (other: Promise<{ pixels: Float32Array }>) =>
    !Buffer.from((await other).pixels.buffer).equals(Buffer.from(base.pixels.buffer));
  t.true(await differs(prepareSample(sample, train(4))));
  t.true(await differs(prepareSample({ ...sample, index: 18 }, train(3))));
});

/** The output pixel's class: 0 rectangle, 1 background, 2 mean fill (nearest expected colour). */
function classify(pixels: Float32Array, at: number, expected: readonly number[][]): number {
  let best = 0;
  let bestDistance = Number.POSITIVE_INFINITY;
  expected.forEach((e, k) => {
    const d = (pixels[at]! - e[0]!) ** 2 + (pixels[at + 1]! - e[1]!) ** 2 + (pixels[at + 2]! - e[2]!) ** 2;
    if (d < bestDistance) [best, bestDistance] = [k, d];
  });
  return best;
}

test('augmented boxes stay on the rectangle they label through expansion, crop, resize and flip', async (t) => {
  const [w, h, size, tol] = [160, 120, 64, 1.5];
  const colours: { fg: Rgb; bg: Rgb } = { fg: [250, 240, 20], bg: [10, 40, 200] };
  const flips = new Set<boolean>();
  for (let index = 0; index < 40; index++) {
    const sample = await rectangleSample(w, h, { x: 50, y: 30, width: 60, height: 50 }, index, colours);
    const out = await prepareSample(sample, train(1, size));
    const plan = planTrainTransform(createRng(SEED, RNG_STREAM.augment, 1, index), w, h, sample.gt);
    flips.add(plan.flip);
    const transform = foldNormalisation(plan.colour, IMAGENET_NORMALISATION);
    const expected = [
      applyColourTransform(transform, colours.fg),
      applyColourTransform(transform, colours.bg),
      [0, 0, 0],
    ];
    t.is(out.gt.classes.length, 1, `index ${index}: the single box survives`);
    const [x1, y1, x2, y2] = Array.from(out.gt.boxes, (v) => v * size) as [number, number, number, number];
    let inside = 0;
    let insideRect = 0;
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const isRect = classify(out.pixels, (y * size + x) * 3, expected) === 0;
        const [cx, cy] = [x + 0.5, y + 0.5];
        if (isRect)
          t.true(
            cx > x1 - tol && cx < x2 + tol && cy > y1 - tol && cy < y2 + tol,
            `index ${index} (${x}, ${y})`,
          );
        if (cx > x1 + tol && cx < x2 - tol && cy > y1 + tol && cy < y2 - tol) {
          inside++;
          if (isRect) insideRect++;
        }
      }
    }
    t.true(
      insideRect >= 0.98 * inside,
      `index ${index}: ${insideRect} of ${inside} pixels inside the box are the rectangle`,
    );
  }
  t.is(flips.size, 2, 'both flip outcomes occur');
});

test('the validation transform is a plain resize of the whole image, normalised, with boxes unchanged', async (t) => {
  const image = await dogJpeg();
  const sample = {
    index: 2,
    image,
    gt: (await rectangleSample(8, 8, { x: 1, y: 1, width: 2, height: 2 })).gt,
    source: 'dog',
  };
  const out = await prepareSample(sample, { imageShape: 96, train: false, seed: 1, epoch: 7 });
  t.is(out.gt, sample.gt);
  t.deepEqual([out.originalWidth, out.originalHeight], [768, 576]);
  const plain = await sharp(image).resize(96, 96, { fit: 'fill', kernel: 'cubic' }).raw().toBuffer();
  let worst = 0;
  for (let i = 0; i < plain.length; i++) {
    const c = i % 3;
    const want = (plain[i]! / 255 - IMAGENET_MEAN[c]!) / IMAGENET_STD[c]!;
    worst = Math.max(worst, Math.abs(out.pixels[i]! - want));
  }
  t.true(worst < 1e-5, `largest difference ${worst}`);
  const again = await prepareSample(sample, { imageShape: 96, train: false, seed: 2, epoch: 8 });
  t.deepEqual(again.pixels, out.pixels, 'seed and epoch do not matter for validation');
});

test('prepareSample turns grey PNGs into three normalised channels', async (t) => {
  const grey = await sharp(Buffer.alloc(20 * 10, 128), { raw: { width: 20, height: 10, channels: 1 } })
    .png()
    .toBuffer();
  const out = await prepareSample(
    {
      index: 0,
      image: grey,
      gt: (await rectangleSample(4, 4, { x: 0, y: 0, width: 2, height: 2 })).gt,
      source: 'grey.png',
    },
    { imageShape: 16, train: false, seed: 0, epoch: 0 },
  );
  for (let c = 0; c < 3; c++) {
    const want = (128 / 255 - IMAGENET_MEAN[c]!) / IMAGENET_STD[c]!;
    t.true(Math.abs(out.pixels[c]! - want) < 1e-5);
  }
});

test('a truncated JPEG fails with an IMAGE error naming the sample source', async (t) => {
  const image = (await dogJpeg()).subarray(0, 40_000);
  const sample = {
    index: 0,
    image,
    gt: (await rectangleSample(4, 4, { x: 0, y: 0, width: 2, height: 2 })).gt,
    source: 'val.rec@163868',
  };
  const err = await t.throwsAsync(prepareSample(sample, train(0)));
  t.true(isClusterError(err, 'IMAGE'));
  t.regex(err!.message, /^val\.rec@163868: cannot decode the jpeg image/);
});

test('bytes that are neither JPEG nor PNG fail before decoding, naming the source', async (t) => {
  const gif = Buffer.from('GIF89a....');
  const sample = {
    index: 0,
    image: gif,
    gt: (await rectangleSample(4, 4, { x: 0, y: 0, width: 2, height: 2 })).gt,
    source: 'x.rec@8',
  };
  const err = await t.throwsAsync(prepareSample(sample, train(0)));
  t.true(isClusterError(err, 'IMAGE'));
  t.regex(err!.message, /x\.rec@8: not a JPEG or PNG image \(starts with 47494638/);
});

test('prepareSample rejects a bad image_shape with a ConfigError naming it', async (t) => {
  const sample = await rectangleSample(16, 16, { x: 1, y: 1, width: 4, height: 4 });
  const err = await t.throwsAsync(prepareSample(sample, { imageShape: 0, train: true, seed: 0, epoch: 0 }));
  t.true(isClusterError(err, 'CONFIG'));
  t.regex(err!.message, /image_shape/);
});

test('a JPEG rectangle sample decodes too (lossy input)', async (t) => {
  const raw = Buffer.alloc(64 * 48 * 3, 200);
  const image = await encodeRgb(raw, 64, 48, 'jpeg');
  const sample = { ...(await rectangleSample(64, 48, { x: 8, y: 8, width: 20, height: 20 })), image };
  const out = await prepareSample(sample, train(2, 32));
  t.deepEqual([out.originalWidth, out.originalHeight], [64, 48]);
  t.is(out.pixels.length, 32 * 32 * 3);
});

test('an EXIF-rotated image prepares exactly as its upright twin (train and validation)', async (t) => {
  const [w, h] = [40, 24]; // displayed size
  const rect = { x: 6, y: 4, width: 18, height: 12 };
  const upright = rectangleRgb(w, h, [rect], [240, 30, 60], [20, 90, 200]);
  const stored = Buffer.alloc(upright.length); // h wide, w high: orientation 6 turns it 90 degrees right
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++)
      upright.copy(stored, ((w - 1 - x) * h + y) * 3, (y * w + x) * 3, (y * w + x) * 3 + 3);
  const rotated = await sharp(stored, { raw: { width: h, height: w, channels: 3 } })
    .png()
    .withMetadata({ orientation: 6 })
    .toBuffer();
  const gt = rectGroundTruth(w, h, [rect]);
  const twin = { index: 3, image: await encodeRgb(upright, w, h), gt, source: 'upright.png' };
  const turned = { ...twin, image: rotated, source: 'rotated.png' };
  for (const options of [train(0, 32), train(1, 32), { imageShape: 32, train: false, seed: 0, epoch: 0 }]) {
    const a = await prepareSample(twin, options);
    const b = await prepareSample(turned, options);
    t.deepEqual([b.originalWidth, b.originalHeight], [w, h]);
    t.deepEqual(b.pixels, a.pixels, JSON.stringify(options));
    t.deepEqual(b.gt, a.gt);
  }
});

test('prepareSample gives the same train and validation samples with and without a decode cache, over two epochs', async (t) => {
  const samples = await Promise.all(
    [0, 1, 2, 3].map(async (index) => {
      const rect = { x: 10 + 7 * index, y: 20, width: 40, height: 30 };
      const sample = await rectangleSample(96, 80, rect, index, { fg: [250, 40, 90], bg: [20, 120, 60] });
      // Half JPEG (lossy, so the decoded pixels are not the drawn ones), half PNG.
      const image = index % 2 === 0 ? sample.image : await sharp(sample.image).jpeg().toBuffer();
      return { ...sample, image, source: `set.rec@${index * 512}` };
    }),
  );
  const validation = samples.map((s) => ({ ...s, source: `val-${s.source}` }));
  const cache = new DecodedImageCache(1 << 20);
  for (const epoch of [0, 1]) {
    for (const sample of samples) {
      const options = train(epoch, 48);
      t.deepEqual(
        await prepareSample(sample, options, undefined, cache),
        await prepareSample(sample, options),
      );
    }
    for (const sample of validation) {
      const options = { ...train(epoch, 48), train: false };
      t.deepEqual(
        await prepareSample(sample, options, undefined, cache),
        await prepareSample(sample, options),
      );
    }
  }
  const stats = cache.stats();
  // Every validation sample and most train samples take the JS path (a window can fall outside the
  // image): the second epoch must have been served by the cache for the comparison to mean anything.
  t.is(stats.entries, stats.misses, 'one decode per image');
  t.true(stats.hits >= validation.length + 1, `hits ${stats.hits}`);
});
