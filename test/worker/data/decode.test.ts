import test from 'ava';
import sharp, { type Sharp } from 'sharp';
import { readHeaderImageSize, readImageSize } from '../../../worker/data/decode.js';

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
