/**
 * The image decoder edge, over sharp (libvips). Work runs on the libuv thread pool, so several samples
 * decode in parallel while the main thread trains.
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
import type { Placement } from './placement.js';

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
 * The placement's region as uint8 RGB (region.width * region.height * 3 bytes): the whole image resized
 * to scaledWidth x scaledHeight with `interpolation`, then cropped. null when the region is empty.
 */
export async function renderRegion(
  image: Uint8Array,
  source: string,
  p: Placement,
  interpolation: Interpolation,
): Promise<Uint8Array | null> {
  const region = p.region;
  if (region === null) return null;
  const format = checkFormat(image, source);
  let data: Buffer;
  let info: OutputInfo;
  try {
    ({ data, info } = await sharp(image, SHARP_INPUT)
      .resize(p.scaledWidth, p.scaledHeight, { fit: 'fill', kernel: interpolation })
      .extract({ left: region.x, top: region.y, width: region.width, height: region.height })
      .removeAlpha()
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true }));
  } catch (err) {
    throw decodeError(source, format, err);
  }
  if (info.channels !== 3 || info.width !== region.width || info.height !== region.height) {
    throw new ClusterError(
      'IMAGE',
      `${source}: decoder returned ${info.width}x${info.height}x${info.channels}, expected ${region.width}x${region.height}x3`,
    );
  }
  return data;
}
