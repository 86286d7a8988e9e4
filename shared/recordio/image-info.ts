/**
 * Format and size of an encoded image, read from its header bytes without decoding it. Pure.
 * JPEG: walk the marker segments to the first SOFn (C0..CF except C4 DHT, C8 JPG, CC DAC), whose
 * payload is precision(1) height(2) width(2), big-endian. PNG: the IHDR chunk right after the signature.
 */
import { ClusterError } from '../errors.js';

export type ImageFormat = 'jpeg' | 'png';

export interface ImageInfo {
  format: ImageFormat;
  width: number;
  height: number;
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** The format alone, from the first bytes; null for anything else. */
export function sniffImageFormat(bytes: Uint8Array): ImageFormat | null {
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg';
  if (bytes.length >= 8 && Buffer.from(bytes.buffer, bytes.byteOffset, 8).equals(PNG_SIGNATURE)) return 'png';
  return null;
}

/**
 * Format, width and height. Throws ClusterError('IMAGE') naming `source` for bytes that are neither JPEG
 * nor PNG, or whose header is cut short or malformed.
 */
export function readImageInfo(bytes: Uint8Array, source = 'image'): ImageInfo {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  const format = sniffImageFormat(buf);
  if (format === 'png') return readPngInfo(buf, source);
  if (format === 'jpeg') return readJpegInfo(buf, source);
  const head = buf.subarray(0, 4).toString('hex') || 'nothing';
  throw new ClusterError(
    'IMAGE',
    `${source}: not a JPEG or PNG image (starts with ${head}, ${buf.length} bytes)`,
  );
}

function readPngInfo(buf: Buffer, source: string): ImageInfo {
  if (buf.length < 24 || buf.toString('latin1', 12, 16) !== 'IHDR') {
    throw new ClusterError('IMAGE', `${source}: PNG without an IHDR chunk at byte 8`);
  }
  return checked({ format: 'png', width: buf.readUInt32BE(16), height: buf.readUInt32BE(20) }, source);
}

/** Markers that stand alone (no length field): TEM, RST0..7, SOI, EOI. */
function isStandalone(marker: number): boolean {
  return marker === 0x01 || (marker >= 0xd0 && marker <= 0xd9);
}

function isStartOfFrame(marker: number): boolean {
  return marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
}

function readJpegInfo(buf: Buffer, source: string): ImageInfo {
  let pos = 2;
  while (pos < buf.length) {
    if (buf[pos] !== 0xff) {
      throw new ClusterError(
        'IMAGE',
        `${source}: JPEG marker expected at byte ${pos}, found 0x${buf[pos]!.toString(16)}`,
      );
    }
    while (buf[pos] === 0xff) pos++; // fill bytes
    const marker = buf[pos++];
    if (marker === undefined) break;
    if (isStandalone(marker)) continue;
    if (pos + 2 > buf.length) break;
    const length = buf.readUInt16BE(pos);
    if (isStartOfFrame(marker)) {
      if (pos + 7 > buf.length) break;
      return checked(
        { format: 'jpeg', height: buf.readUInt16BE(pos + 3), width: buf.readUInt16BE(pos + 5) },
        source,
      );
    }
    if (marker === 0xda)
      throw new ClusterError('IMAGE', `${source}: JPEG scan (SOS) at byte ${pos - 2} before any SOF marker`);
    if (length < 2)
      throw new ClusterError('IMAGE', `${source}: JPEG segment length ${length} at byte ${pos}`);
    pos += length;
  }
  throw new ClusterError('IMAGE', `${source}: JPEG ends at byte ${buf.length} before a SOF marker`);
}

function checked(info: ImageInfo, source: string): ImageInfo {
  if (info.width === 0 || info.height === 0) {
    throw new ClusterError(
      'IMAGE',
      `${source}: ${info.format} header gives a size of ${info.width}x${info.height}`,
    );
  }
  return info;
}
