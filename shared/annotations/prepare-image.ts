import sharp, { type Metadata } from 'sharp';
import { ClusterError } from '../errors.js';
import type { Annotation } from './annotation.js';
import { AnnotationError } from './fields.js';

/**
 * The image bytes that go into a packed record. Without `resize` they are stored unchanged (im2rec
 * --pass-through); with it the image is re-encoded as JPEG (quality 95, im2rec's default) with its
 * shorter side `resize` pixels. Boxes are normalised, so they need no change either way.
 *
 * The header is read first (sharp's metadata(), no decode): the format must be JPEG or PNG and the
 * size must be the annotation's image_size, since the pixel boxes refer to it.
 */
export const RESIZE_JPEG_QUALITY = 95;

/** What to check the image against: its URL, the annotation and where the annotation came from. */
export interface ImageToPrepare {
  imageUrl: string;
  source: string;
  annotation: Pick<Annotation, 'width' | 'height'>;
}

/**
 * im2rec's --resize: the shorter side becomes `shorter` and the longer one scales with integer
 * (floor) division, as `cv2.resize(img, (w * s // h, s))` in tools/im2rec.py.
 */
export function resizedSize(
  width: number,
  height: number,
  shorter: number,
): { width: number; height: number } {
  return height > width
    ? { width: shorter, height: Math.floor((height * shorter) / width) }
    : { width: Math.floor((width * shorter) / height), height: shorter };
}

export async function prepareImage(
  bytes: Buffer,
  item: ImageToPrepare,
  resize?: number,
): Promise<Uint8Array> {
  let metadata: Metadata;
  try {
    metadata = await sharp(bytes).metadata();
  } catch (err) {
    throw new ClusterError('IMAGE', `${item.imageUrl}: not a readable image (${(err as Error).message})`, {
      cause: err,
    });
  }
  if (metadata.format !== 'jpeg' && metadata.format !== 'png')
    throw new ClusterError(
      'IMAGE',
      `${item.imageUrl}: ${metadata.format} images are not supported (JPEG or PNG only)`,
    );
  const { width, height } = item.annotation;
  if (metadata.width !== width || metadata.height !== height) {
    throw new AnnotationError(
      item.source,
      'image_size',
      `says ${width}x${height} but the image ${item.imageUrl} is ${metadata.width}x${metadata.height}`,
    );
  }
  if (resize === undefined) return bytes;
  const size = resizedSize(width, height, resize);
  try {
    return await sharp(bytes)
      .resize(size.width, size.height, { fit: 'fill' })
      .removeAlpha()
      .toColourspace('srgb')
      .jpeg({ quality: RESIZE_JPEG_QUALITY })
      .toBuffer();
  } catch (err) {
    throw new ClusterError('IMAGE', `${item.imageUrl}: cannot resize (${(err as Error).message})`, {
      cause: err,
    });
  }
}
