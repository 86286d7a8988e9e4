import test from 'ava';
import sharp, { type Sharp } from 'sharp';
import { isClusterError } from '../../../shared/errors.js';
import {
  decodeImage,
  readHeaderImageSize,
  readImageSize,
  renderRegion,
  rendersInJs,
} from '../../../worker/data/decode.js';
import { DecodedImageCache } from '../../../worker/data/decoded-image-cache.js';
import { placeWholeImage, placeWindow } from '../../../worker/data/placement.js';

type Encode = (image: Sharp) => Sharp;

/** A 40 x 20 RGB image (a horizontal gradient) encoded by `encode`. */
function encoded(encode: Encode, channels: 1 | 3 | 4 = 3): Promise<Buffer> {
  const raw = Buffer.alloc(40 * 20 * channels);
  for (let i = 0; i < raw.length; i++) raw[i] = (i * 7) % 256;
  return encode(sharp(raw, { raw: { width: 40, height: 20, channels } })).toBuffer();
}

/** The displayed size as sharp reports it (the answer readImageSize gave before it read headers). */
async function sharpSize(image: Buffer): Promise<{ width: number; height: number }> {
  const meta = await sharp(image, { autoOrient: true }).metadata();
  return { width: meta.autoOrient?.width ?? meta.width, height: meta.autoOrient?.height ?? meta.height };
}

const plain: Record<string, Encode> = {
  'a baseline JPEG': (i) => i.jpeg(),
  'a progressive JPEG': (i) => i.jpeg({ progressive: true }),
  'a 4:4:4 JPEG with an ICC profile segment': (i) =>
    i.jpeg({ chromaSubsampling: '4:4:4' }).withIccProfile('srgb'),
  'an 8-bit PNG': (i) => i.png(),
  'a 16-bit PNG': (i) => i.toColourspace('rgb16').png(),
  'an interlaced PNG': (i) => i.png({ progressive: true }),
};

for (const [name, encode] of Object.entries(plain)) {
  test(`readHeaderImageSize reads the size of ${name} from its header, as sharp reports it`, async (t) => {
    const image = await encoded(encode);
    const fromHeader = readHeaderImageSize(image);
    t.not(fromHeader, null);
    t.deepEqual(fromHeader, await sharpSize(image));
    t.deepEqual(await readImageSize(image, name), fromHeader!);
  });
}

test('readHeaderImageSize reads grey and RGBA PNG headers too', async (t) => {
  for (const channels of [1, 4] as const) {
    const image = await encoded((i) => i.png(), channels);
    t.deepEqual(readHeaderImageSize(image), await sharpSize(image), `${channels} channels`);
  }
});

for (const format of ['jpeg', 'png'] as const) {
  test(`an EXIF-rotated ${format} leaves the size to sharp, which turns it upright`, async (t) => {
    const image = await encoded((i) => i[format]().withMetadata({ orientation: 6 }));
    t.is(readHeaderImageSize(image), null);
    t.deepEqual(await readImageSize(image, `rotated.${format}`), { width: 20, height: 40 });
  });
}

test('an upright EXIF orientation gives the same size through sharp', async (t) => {
  const image = await encoded((i) => i.jpeg().withMetadata({ orientation: 1 }));
  t.is(readHeaderImageSize(image), null);
  t.deepEqual(await readImageSize(image, 'upright.jpg'), { width: 40, height: 20 });
});

test('a JPEG whose header walk fails falls back to sharp, which tolerates what libjpeg tolerates', async (t) => {
  const jpeg = await encoded((i) => i.jpeg());
  // Two stray bytes after the first segment: libjpeg warns ("extraneous bytes before marker").
  const next = 4 + jpeg.readUInt16BE(4);
  const odd = Buffer.concat([jpeg.subarray(0, next), Buffer.from([0x00, 0x00]), jpeg.subarray(next)]);
  t.is(readHeaderImageSize(odd), null);
  t.deepEqual(await readImageSize(odd, 'odd.jpg'), await sharpSize(odd));
});

test('readImageSize names the source of bytes that are neither JPEG nor PNG', async (t) => {
  const err = await t.throwsAsync(readImageSize(Buffer.from('GIF89a....'), 'x.rec@8'));
  t.regex(err!.message, /^x\.rec@8: not a JPEG or PNG image/);
});

/** A smooth width x height RGB image (slow sine waves), raw. */
function smoothRgb(width: number, height: number): Buffer {
  const raw = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++)
      for (let c = 0; c < 3; c++)
        raw[(y * width + x) * 3 + c] = 128 + 90 * Math.sin(x / (7 + c) + c) * Math.cos(y / 11);
  return raw;
}

const png = (raw: Buffer, width: number, height: number, channels: 1 | 3 | 4 = 3) =>
  sharp(raw, { raw: { width, height, channels } }).png().toBuffer();

/** Stored pixels of `upright` (w x h RGB) turned 90 degrees anticlockwise: EXIF orientation 6 shows them upright. */
function storedForOrientation6(upright: Buffer, w: number, h: number): Buffer {
  const stored = Buffer.alloc(upright.length); // h wide, w high
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++)
      upright.copy(stored, ((w - 1 - x) * h + y) * 3, (y * w + x) * 3, (y * w + x) * 3 + 3);
  return stored;
}

test('decodeImage turns an EXIF-rotated image upright, pixel for pixel', async (t) => {
  const [w, h] = [30, 18];
  const upright = smoothRgb(w, h);
  const rotated = await sharp(storedForOrientation6(upright, w, h), {
    raw: { width: h, height: w, channels: 3 },
  })
    .png()
    .withMetadata({ orientation: 6 })
    .toBuffer();
  const decoded = await decodeImage(rotated, 'rotated.png');
  t.deepEqual([decoded.width, decoded.height], [w, h]);
  t.true(Buffer.from(decoded.data).equals(upright));
});

test('decodeImage gives 8-bit RGB for grey, RGBA and 16-bit PNGs', async (t) => {
  const grey = await decodeImage(await png(Buffer.alloc(6 * 4, 77), 6, 4, 1), 'grey.png');
  t.true(grey.data.every((v) => v === 77));
  const rgba = await decodeImage(await png(Buffer.alloc(6 * 4 * 4, 200), 6, 4, 4), 'rgba.png');
  t.is(rgba.data.length, 6 * 4 * 3);
  const deep = await sharp(Buffer.alloc(6 * 4 * 3, 150), { raw: { width: 6, height: 4, channels: 3 } })
    .toColourspace('rgb16')
    .png()
    .toBuffer();
  const decoded = await decodeImage(deep, 'deep.png');
  t.true(decoded.data.every((v) => v === 150));
});

test('decodeImage names the source of a truncated JPEG and of bytes that are no image', async (t) => {
  const jpeg = await sharp(smoothRgb(64, 48), { raw: { width: 64, height: 48, channels: 3 } })
    .jpeg()
    .toBuffer();
  const cut = await t.throwsAsync(decodeImage(jpeg.subarray(0, jpeg.length >> 1), 'cut.rec@40'));
  t.true(isClusterError(cut, 'IMAGE'));
  t.regex(cut!.message, /^cut\.rec@40: cannot decode the jpeg image/);
  const gif = await t.throwsAsync(decodeImage(Buffer.from('GIF89a....'), 'x.rec@8'));
  t.regex(gif!.message, /^x\.rec@8: not a JPEG or PNG image/);
});

test('rendersInJs takes small images with cheap resampling and leaves the rest to libvips', (t) => {
  const window = (x: number, y: number, w: number, h: number) => ({ x, y, width: w, height: h });
  t.true(rendersInJs(128, 128, placeWindow(window(10, 5, 110, 110), 128, 128, 128), 'cubic'));
  t.true(rendersInJs(128, 128, placeWholeImage(128, 128, 128), 'lanczos3'), 'a copy');
  t.false(rendersInJs(500, 375, placeWindow(window(50, 40, 300, 300), 500, 375, 300), 'linear'), 'large');
  t.false(rendersInJs(256, 256, placeWindow(window(0, 0, 256, 256), 256, 256, 32), 'lanczos3'), 'costly');
  t.false(rendersInJs(128, 128, placeWindow(window(200, 200, 50, 50), 128, 128, 64), 'cubic'), 'fill only');
});

// libvips shrinks with the same kernels and the same pixel-centre geometry; it enlarges with an
// affine transform half an output pixel to the left (u / scale - 0.5 where the centre rule gives
// (u + 0.5) / scale - 0.5), so only shrinking is compared.
for (const kind of ['linear', 'cubic', 'mitchell', 'lanczos3'] as const) {
  test(`renderRegion in JS and libvips agree when shrinking a smooth image with ${kind}`, async (t) => {
    const [w, h] = [96, 72];
    const image = await png(smoothRgb(w, h), w, h);
    const p = placeWindow({ x: -20, y: -10, width: 130, height: 100 }, w, h, 70);
    t.true(rendersInJs(w, h, p, kind));
    const js = (await renderRegion(image, 'smooth.png', p, kind))!;
    const region = p.region!;
    const vips = await sharp(image)
      .resize(p.scaledWidth, p.scaledHeight, { fit: 'fill', kernel: kind })
      .extract({ left: region.x, top: region.y, width: region.width, height: region.height })
      .raw()
      .toBuffer();
    let worst = 0;
    for (let i = 0; i < vips.length; i++) worst = Math.max(worst, Math.abs(js[i]! - vips[i]!));
    // A quarter of a pixel of misalignment would differ by several levels on these slopes.
    t.true(worst <= 1, `largest difference ${worst}`);
  });
}

test('renderRegion through a cache decodes a small image once and renders what it renders without one', async (t) => {
  const [w, h] = [96, 72];
  const image = await png(smoothRgb(w, h), w, h);
  const cache = new DecodedImageCache(1 << 20);
  const windows = [
    { x: -20, y: -10, width: 130, height: 100 },
    { x: 10, y: 5, width: 50, height: 40 },
  ];
  for (const window of windows) {
    const p = placeWindow(window, w, h, 70);
    t.true(rendersInJs(w, h, p, 'cubic'));
    const cached = await renderRegion(image, 'smooth.png', p, 'cubic', cache);
    t.deepEqual(cached, await renderRegion(image, 'smooth.png', p, 'cubic'));
  }
  t.like(cache.stats(), { misses: 1, hits: 1, entries: 1, bytesHeld: image.length + w * h * 3 });
});

test('renderRegion leaves images that libvips renders out of the cache', async (t) => {
  const [w, h] = [300, 240];
  const image = await png(smoothRgb(w, h), w, h);
  const cache = new DecodedImageCache(1 << 20);
  const p = placeWindow({ x: 0, y: 0, width: w, height: h }, w, h, 64);
  t.false(rendersInJs(w, h, p, 'cubic'));
  await renderRegion(image, 'large.png', p, 'cubic', cache);
  t.deepEqual(cache.stats(), { budgetBytes: 1 << 20, bytesHeld: 0, entries: 0, hits: 0, misses: 0 });
});
