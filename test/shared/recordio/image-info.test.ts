import fs from 'node:fs/promises';
import test from 'ava';
import sharp from 'sharp';
import { ClusterError } from '../../../shared/errors.js';
import { RecordDecoder } from '../../../shared/recordio/decoder.js';
import { readImageInfo, sniffImageFormat } from '../../../shared/recordio/image-info.js';
import { parseImageRecord } from '../../../shared/recordio/image-record.js';
import { DOG, DOG_REC } from '../../helpers/recordio-fixtures.js';

async function dogJpeg(): Promise<Buffer> {
  const bytes = await fs.readFile(DOG_REC);
  const [record] = new RecordDecoder({ source: DOG_REC }).write(bytes);
  return parseImageRecord(record!.payload, { source: DOG_REC, offset: 0 }).image;
}

function solid(width: number, height: number) {
  return sharp({ create: { width, height, channels: 3, background: { r: 10, g: 200, b: 30 } } });
}

test('readImageInfo reads 768x576 from the dog JPEG (EXIF before the SOF marker)', async (t) => {
  const jpeg = await dogJpeg();
  t.is(sniffImageFormat(jpeg), 'jpeg');
  t.deepEqual(readImageInfo(jpeg), { format: 'jpeg', width: DOG.width, height: DOG.height });
});

test('readImageInfo agrees with sharp on baseline and progressive JPEGs and on PNGs', async (t) => {
  const sizes: [number, number][] = [
    [1, 1],
    [37, 300],
    [301, 17],
  ];
  for (const [width, height] of sizes) {
    const images = [
      await solid(width, height).jpeg().toBuffer(),
      await solid(width, height).jpeg({ progressive: true }).toBuffer(),
      await solid(width, height).png().toBuffer(),
    ];
    for (const image of images) {
      const meta = await sharp(image).metadata();
      t.deepEqual(readImageInfo(image), { format: meta.format === 'png' ? 'png' : 'jpeg', width, height });
    }
  }
});

test('readImageInfo names the source for unknown formats and cut-short headers', async (t) => {
  const jpeg = await dogJpeg();
  const png = await solid(4, 4).png().toBuffer();
  const cases: [Uint8Array, RegExp][] = [
    [Buffer.from('GIF89a'), /^rec 3: not a JPEG or PNG image \(starts with 47494638, 6 bytes\)$/],
    [new Uint8Array(0), /^rec 3: not a JPEG or PNG image \(starts with nothing, 0 bytes\)$/],
    [jpeg.subarray(0, 200), /^rec 3: JPEG ends at byte 200 before a SOF marker$/],
    [png.subarray(0, 20), /^rec 3: PNG without an IHDR chunk at byte 8$/],
    [Buffer.from('ffd8ffda000c', 'hex'), /^rec 3: JPEG scan \(SOS\) at byte 2 before any SOF marker$/],
  ];
  for (const [bytes, message] of cases) {
    const err = t.throws(() => readImageInfo(bytes, 'rec 3'), { instanceOf: ClusterError });
    t.is(err.code, 'IMAGE');
    t.regex(err.message, message);
  }
});
