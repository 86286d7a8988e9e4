/**
 * The image decoder edge, over sharp (libvips). Decoding runs on the libuv thread pool; a region that
 * the JS resampler renders (rendersInJs) is resampled on the calling thread (the prepare thread), from
 * the whole decoded image, which a DecodedImageCache may keep for the next epoch.
 *
 * Only JPEG and PNG are accepted (SageMaker's object detection supports no other formats), checked from
 * the first bytes before sharp sees them. Images are turned upright by their EXIF orientation, as
 * OpenCV's imdecode (used by MXNet) does, and converted to 8-bit sRGB with 3 channels: grey images are
 * expanded, alpha dropped, 16-bit PNGs scaled. Broken pixel data (a truncated or corrupt JPEG or PNG)
 * is an error; libjpeg warnings that OpenCV also tolerates are not. Every error is a
 * ClusterError('IMAGE') naming the sample's source (file and offset, or path).
 */
import sharp, { type Metadata, type OutputInfo } from 'sharp';
import { ClusterError, errorMessage } from '../../shared/errors.js';
import { readImageInfo, sniffImageFormat } from '../../shared/recordio/image-info.js';
import type { Interpolation } from './augment.js';
import type { PixelRect } from './crop.js';
import type { DecodedImageCache } from './decoded-image-cache.js';
import type { Placement } from './placement.js';
import { type RgbImage, resampleRegion, resampleWork } from './resample.js';

const SHARP_INPUT = { autoOrient: true, failOn: 'error' } as const;

export interface ImageSize {
  width: number;
  height: number;
}

function checkFormat(image: Uint8Array, source: string): string {
  const format = sniffImageFormat(image);
  if (format === null) {
    const head = Buffer.from(image.subarray(0, 4)).toString('hex') || 'nothing';
    throw new ClusterError(
      'IMAGE',
      `${source}: not a JPEG or PNG image (starts with ${head}, ${image.length} bytes)`,
    );
  }
  return format;
}

function decodeError(source: string, format: string, err: unknown): ClusterError {
  return new ClusterError('IMAGE', `${source}: cannot decode the ${format} image: ${errorMessage(err)}`, {
    cause: err,
  });
}

/**
 * Orientation comes only from EXIF (a JPEG APP1 "Exif" segment, a PNG eXIf chunk or an ImageMagick
 * "Raw profile type exif" text chunk). An image without any of these byte strings is upright, so its
 * header size is its displayed size. A stray match in compressed data only costs a sharp call.
 */
const EXIF_MARKS = ['Exif', 'eXIf', 'exif'].map((mark) => Buffer.from(mark, 'latin1'));

function mayCarryExif(image: Uint8Array): boolean {
  const bytes = Buffer.from(image.buffer, image.byteOffset, image.byteLength);
  return EXIF_MARKS.some((mark) => bytes.includes(mark));
}

/**
 * The size from the JPEG SOF / PNG IHDR header, read in JS (no trip through the libuv pool and back),
 * or null when only sharp can tell: the image may carry an EXIF orientation, or its header is unusual
 * (libjpeg tolerates some things the strict header walk rejects).
 */
export function readHeaderImageSize(image: Uint8Array): ImageSize | null {
  if (mayCarryExif(image)) return null;
  try {
    const { width, height } = readImageInfo(image);
    return { width, height };
  } catch {
    return null;
  }
}

/** Width and height as displayed (after EXIF orientation), from the header only. */
export async function readImageSize(image: Uint8Array, source: string): Promise<ImageSize> {
  const format = checkFormat(image, source);
  const fromHeader = readHeaderImageSize(image);
  if (fromHeader !== null) return fromHeader;
  let meta: Metadata;
  try {
    meta = await sharp(image, SHARP_INPUT).metadata();
  } catch (err) {
    throw decodeError(source, format, err);
  }
  const width = meta.autoOrient?.width ?? meta.width;
  const height = meta.autoOrient?.height ?? meta.height;
  if (!(width > 0 && height > 0))
    throw new ClusterError('IMAGE', `${source}: the ${format} image has no pixels`);
  return { width, height };
}

/**
 * The JS resampler (resample.ts) renders a region when the image is small and the resampling cheap;
 * libvips does the rest. The rule depends only on the image's size and the placement (and the
 * sample's interpolation), so a sample's pixels never depend on timing or the worker count.
 *
 * Why: a libvips call costs ~0.2 ms of CPU however small the image (~0.45 ms for a JPEG), and a
 * resize and extract add ~0.4-0.8 ms to it for small images; the JS path pays one whole-image decode
 * and ~1-1.5 ns per multiply-add (resampleWork). For small images (the 128 x 128 bench set) the JS
 * path costs less; for large ones libvips wins: it shrinks JPEGs on load, decodes only as far as the
 * region reaches and resamples with SIMD. Measured on the shared 2-core VM with scratch scripts.
 * The two paths agree within a level when shrinking; when enlarging, libvips samples half an output
 * pixel left of and above the pixel-centre rule that resample.ts and the boxes follow.
 */
export const JS_RESAMPLE_LIMITS = Object.freeze({ maxPixels: 256 * 256, maxWork: 600_000 });

/** Whether renderRegion resamples in JS (else libvips resizes), for a width x height image. */
export function rendersInJs(
  width: number,
  height: number,
  p: Placement,
  interpolation: Interpolation,
): boolean {
  if (p.region === null || width * height > JS_RESAMPLE_LIMITS.maxPixels) return false;
  const work = resampleWork({ width, height }, p.scaledWidth, p.scaledHeight, p.region, interpolation);
  return work <= JS_RESAMPLE_LIMITS.maxWork;
}

interface SharpRender {
  p: Placement;
  region: PixelRect;
  interpolation: Interpolation;
}

/**
 * One libvips call to upright 8-bit sRGB RGB: the whole image, or with `render` the region of the
 * whole image resized (with JPEG shrink-on-load) and extracted.
 */
async function runSharp(image: Uint8Array, source: string, render?: SharpRender): Promise<RgbImage> {
  const format = checkFormat(image, source);
  let data: Buffer;
  let info: OutputInfo;
  try {
    let pipeline = sharp(image, SHARP_INPUT);
    if (render !== undefined) {
      const { p, region } = render;
      pipeline = pipeline
        .resize(p.scaledWidth, p.scaledHeight, { fit: 'fill', kernel: render.interpolation })
        .extract({ left: region.x, top: region.y, width: region.width, height: region.height });
    }
    ({ data, info } = await pipeline
      .removeAlpha()
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true }));
  } catch (err) {
    throw decodeError(source, format, err);
  }
  const want = render?.region;
  if (
    info.channels !== 3 ||
    (want !== undefined && (info.width !== want.width || info.height !== want.height))
  ) {
    const expected = want === undefined ? '3 channels' : `${want.width}x${want.height}x3`;
    throw new ClusterError(
      'IMAGE',
      `${source}: decoder returned ${info.width}x${info.height}x${info.channels}, expected ${expected}`,
    );
  }
  return { width: info.width, height: info.height, data };
}

/** The whole image upright as 8-bit sRGB with 3 channels, under the error contract above. */
export function decodeImage(image: Uint8Array, source: string): Promise<RgbImage> {
  return runSharp(image, source);
}

/** decodeImage through `cache` (when given): a held image for exactly these bytes, else a decode offered to it. */
async function decodeWhole(image: Uint8Array, source: string, cache?: DecodedImageCache): Promise<RgbImage> {
  const held = cache?.get(source, image);
  if (held !== undefined) return held;
  const decoded = await decodeImage(image, source);
  cache?.offer(source, image, decoded);
  return decoded;
}

/**
 * The placement's region as uint8 RGB (region.width * region.height * 3 bytes): the whole image resized
 * to scaledWidth x scaledHeight with `interpolation`, then cropped. null when the region is empty.
 * `cache` keeps the whole decoded images of the JS path (the libvips path never decodes them whole).
 */
export async function renderRegion(
  image: Uint8Array,
  source: string,
  p: Placement,
  interpolation: Interpolation,
  cache?: DecodedImageCache,
): Promise<Uint8Array | null> {
  const region = p.region;
  if (region === null) return null;
  // The displayed size the placement was made for (scale = scaled / size exactly).
  const size = { width: Math.round(p.scaledWidth / p.scaleX), height: Math.round(p.scaledHeight / p.scaleY) };
  if (!rendersInJs(size.width, size.height, p, interpolation)) {
    return (await runSharp(image, source, { p, region, interpolation })).data;
  }
  const decoded = await decodeWhole(image, source, cache);
  if (decoded.width !== size.width || decoded.height !== size.height) {
    throw new ClusterError(
      'IMAGE',
      `${source}: decoded ${decoded.width}x${decoded.height}, but the placement is for ${size.width}x${size.height}`,
    );
  }
  return resampleRegion(decoded, p.scaledWidth, p.scaledHeight, region, interpolation);
}
