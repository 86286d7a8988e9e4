/**
 * MXNet image record payloads (SPEC part 1, 3.3): a 24-byte IRHeader (`<IfQQ`: flag u32, label f32,
 * id u64, id2 u64), then `flag` float32 labels when flag > 0, then the encoded image (JPEG/PNG). Pure.
 */
import { ClusterError, RecordIOError } from '../errors.js';

export const IR_HEADER_BYTES = 24;
/** A flag this large would need more label bytes than any record can hold. */
const MAX_LABELS = Math.floor((2 ** 29 - 1 - IR_HEADER_BYTES) / 4);
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export interface ImageRecord {
  /** Number of label floats after the header (0: the label is the scalar `label`). */
  flag: number;
  /** The header's label field: the scalar label when flag == 0 (im2rec writes 0 when flag > 0). */
  label: number;
  /** The `flag` label floats, or null when flag == 0. May be a view into the payload. */
  labels: Float32Array | null;
  /** Image index (the .lst key). */
  id: number;
  /** Always 0 in files written by MXNet. */
  id2: number;
  /** The encoded image bytes (a view into the payload). */
  image: Buffer;
}

export interface RecordContext {
  source: string;
  /** Offset of the record in the file (named in errors). */
  offset: number;
}

/** Parses an image record payload; errors name the file, record offset and field. */
export function parseImageRecord(payload: Buffer, ctx: RecordContext): ImageRecord {
  if (payload.length < IR_HEADER_BYTES) {
    throw new RecordIOError(
      ctx.source,
      ctx.offset,
      `record payload of ${payload.length} bytes is shorter than the ${IR_HEADER_BYTES}-byte IRHeader`,
    );
  }
  const flag = payload.readUInt32LE(0);
  const labelEnd = IR_HEADER_BYTES + 4 * flag;
  if (labelEnd > payload.length) {
    throw new RecordIOError(
      ctx.source,
      ctx.offset,
      `IRHeader flag ${flag} needs ${4 * flag} label bytes but the payload has ${payload.length - IR_HEADER_BYTES} after the header`,
    );
  }
  return {
    flag,
    label: payload.readFloatLE(4),
    labels: flag > 0 ? readLabels(payload, flag) : null,
    id: readId(payload, 8, 'id', ctx),
    id2: readId(payload, 16, 'id2', ctx),
    image: payload.subarray(labelEnd),
  };
}

/** The label floats; a zero-copy view when the bytes are 4-aligned on a little-endian host. */
function readLabels(payload: Buffer, count: number): Float32Array {
  const byteOffset = payload.byteOffset + IR_HEADER_BYTES;
  if (LITTLE_ENDIAN && byteOffset % 4 === 0) return new Float32Array(payload.buffer, byteOffset, count);
  const labels = new Float32Array(count);
  for (let i = 0; i < count; i++) labels[i] = payload.readFloatLE(IR_HEADER_BYTES + 4 * i);
  return labels;
}

function readId(payload: Buffer, at: number, field: string, ctx: RecordContext): number {
  const low = payload.readUInt32LE(at);
  const high = payload.readUInt32LE(at + 4);
  if (high >= 2 ** 21) {
    const value = payload.readBigUInt64LE(at);
    throw new RecordIOError(ctx.source, ctx.offset, `IRHeader ${field} ${value} is larger than 2^53 - 1`);
  }
  return high * 2 ** 32 + low;
}

export interface ImageRecordInput {
  /** A scalar label (flag 0) or a label vector (flag = its length, header label 0), as MXNet pack(). */
  label: number | ArrayLike<number>;
  id: number;
  id2?: number;
  image: Uint8Array;
}

/** Builds an image record payload exactly as MXNet's `recordio.pack(header, s)` does. */
export function encodeImageRecord(input: ImageRecordInput): Buffer {
  const labels = typeof input.label === 'number' ? null : input.label;
  const flag = labels === null ? 0 : labels.length;
  if (flag > MAX_LABELS)
    throw new ClusterError('RECORDIO', `encodeImageRecord: ${flag} labels do not fit in a record`);
  const out = Buffer.allocUnsafe(IR_HEADER_BYTES + 4 * flag + input.image.length);
  out.writeUInt32LE(flag, 0);
  out.writeFloatLE(typeof input.label === 'number' ? input.label : 0, 4);
  writeId(out, 8, 'id', input.id);
  writeId(out, 16, 'id2', input.id2 ?? 0);
  for (let i = 0; i < flag; i++) out.writeFloatLE(labels![i]!, IR_HEADER_BYTES + 4 * i);
  out.set(input.image, IR_HEADER_BYTES + 4 * flag);
  return out;
}

function writeId(out: Buffer, at: number, field: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new ClusterError(
      'RECORDIO',
      `encodeImageRecord: ${field} must be a non-negative integer, got ${value}`,
    );
  }
  out.writeUInt32LE(value % 2 ** 32, at);
  out.writeUInt32LE(Math.floor(value / 2 ** 32), at + 4);
}
