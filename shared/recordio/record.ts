/**
 * MXNet / dmlc-core RecordIO framing (SPEC part 1, 3.1). Pure: bytes in, bytes out.
 *
 *   record := magic(u32 LE = 0xCED7230A) | lrec(u32 LE) | data[length] | zero pad to a 4-byte boundary
 *   lrec   := (cflag << 29) | length          cflag: 0 whole, 1 first part, 2 middle part, 3 last part
 *
 * Escaping: the writer scans the payload at aligned offsets 0, 4, 8, ... below `len & ~3`. Each time the
 * four bytes there equal the magic, it ends the current part just before them (cflag 1 for the first
 * part, 2 after that; the length may be 0), drops the four magic bytes and starts a new part after them.
 * The last part has cflag 3 (0 when nothing was split) and is the only one that can need padding. A reader
 * re-inserts the magic after every part whose cflag is 1 or 2. Because of this, every aligned magic word
 * in a file is the head of a part, which is what lets a byte-range reader resynchronise.
 */
import { ClusterError } from '../errors.js';

export const RECORDIO_MAGIC = 0xced7230a;
/** The magic of an early dmlc-core (30-bit length, 2-bit cflag): recognised only to be rejected by name. */
export const RECORDIO_LEGACY_MAGIC = 0x3ed7230a;
/** Largest length one part (and, as the writer enforces it, one record) can have: 2^29 - 1. */
export const RECORDIO_MAX_LENGTH = 2 ** 29 - 1;
/** magic + lrec. */
export const RECORD_HEADER_BYTES = 8;

/** The magic as it appears on disk (little-endian): 0A 23 D7 CE. */
export const MAGIC_BYTES: Buffer = (() => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(RECORDIO_MAGIC, 0);
  return b;
})();

export const CFLAG = { whole: 0, first: 1, middle: 2, last: 3 } as const;

export function encodeLrec(cflag: number, length: number): number {
  return ((cflag << 29) | length) >>> 0;
}

export function lrecCflag(lrec: number): number {
  return lrec >>> 29;
}

export function lrecLength(lrec: number): number {
  return lrec & RECORDIO_MAX_LENGTH;
}

/** `length` rounded up to a multiple of 4. */
export function paddedLength(length: number): number {
  return (length + 3) & ~3;
}

/**
 * Aligned offsets (below `len & ~3`) where the payload holds the magic word, i.e. where the writer
 * splits the record.
 */
export function findAlignedMagics(payload: Uint8Array): number[] {
  const hits: number[] = [];
  for (let i = firstAlignedMagic(payload); i >= 0; i = firstAlignedMagic(payload, i + 4)) hits.push(i);
  return hits;
}

/**
 * The first 4-aligned offset at or after `from` where `data` holds the whole magic word, or -1. Uses
 * Buffer.indexOf (memmem) and skips unaligned hits. In a part's data (which starts 4-aligned in the
 * file) a hit means a damaged length: the writer escapes every aligned magic word in data.
 */
export function firstAlignedMagic(data: Uint8Array, from = 0): number {
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.length);
  const limit = buf.length & ~3;
  let i = from;
  while (i < limit) {
    i = buf.indexOf(MAGIC_BYTES, i);
    if (i < 0 || i >= limit) return -1;
    if ((i & 3) === 0) return i;
    i++;
  }
  return -1;
}

/** Encodes one record exactly as dmlc-core's RecordIOWriter::WriteRecord does. */
export function encodeRecord(payload: Uint8Array): Buffer {
  if (payload.length > RECORDIO_MAX_LENGTH) {
    throw new ClusterError(
      'RECORDIO',
      `record of ${payload.length} bytes exceeds the RecordIO limit of ${RECORDIO_MAX_LENGTH} bytes`,
    );
  }
  const splits = findAlignedMagics(payload);
  const out = Buffer.allocUnsafe(encodedSize(payload.length, splits));
  let pos = 0;
  let dptr = 0;
  const writePart = (cflag: number, end: number) => {
    out.writeUInt32LE(RECORDIO_MAGIC, pos);
    out.writeUInt32LE(encodeLrec(cflag, end - dptr), pos + 4);
    out.set(payload.subarray(dptr, end), pos + RECORD_HEADER_BYTES);
    pos += RECORD_HEADER_BYTES + (end - dptr);
  };
  for (const i of splits) {
    writePart(dptr === 0 ? CFLAG.first : CFLAG.middle, i);
    dptr = i + 4;
  }
  writePart(splits.length > 0 ? CFLAG.last : CFLAG.whole, payload.length);
  out.fill(0, pos);
  return out;
}

function encodedSize(payloadBytes: number, splits: number[]): number {
  // Non-final parts have lengths that are multiples of 4; only the final part is padded.
  const last = splits.length > 0 ? splits[splits.length - 1]! + 4 : 0;
  return (
    RECORD_HEADER_BYTES * (splits.length + 1) + (last - 4 * splits.length) + paddedLength(payloadBytes - last)
  );
}

/**
 * Why the 8 bytes at `at` are not the head of a record (a magic, then an lrec with cflag 0 or 1), or
 * null when they are one.
 */
export function recordHeadProblem(buf: Buffer, at: number): string | null {
  if (at + RECORD_HEADER_BYTES > buf.length) return `only ${Math.max(0, buf.length - at)} of 8 header bytes`;
  const magic = buf.readUInt32LE(at);
  if (magic !== RECORDIO_MAGIC) return `bad magic 0x${magic.toString(16).padStart(8, '0')}`;
  const cflag = lrecCflag(buf.readUInt32LE(at + 4));
  if (cflag === CFLAG.middle || cflag === CFLAG.last) return `a continuation part (cflag ${cflag})`;
  if (cflag > CFLAG.last) return `invalid cflag ${cflag}`;
  return null;
}

/**
 * Index in `buf` of the first record head at or after `from` (dmlc-core FindNextRecordIOHead): a magic
 * at a 4-aligned file offset followed by an lrec with cflag 0 or 1. `bufOffset` is the file offset of
 * buf[0]. Only positions with all 8 header bytes inside `buf` count; -1 when there is none.
 */
export function findRecordHead(buf: Buffer, bufOffset: number, from = 0): number {
  let i = from;
  while (i + RECORD_HEADER_BYTES <= buf.length) {
    i = buf.indexOf(MAGIC_BYTES, i);
    if (i < 0 || i + RECORD_HEADER_BYTES > buf.length) return -1;
    if ((bufOffset + i) % 4 === 0 && lrecCflag(buf.readUInt32LE(i + 4)) <= CFLAG.first) return i;
    i++;
  }
  return -1;
}
