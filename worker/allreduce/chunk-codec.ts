/**
 * Hand-written protobuf codec for the hot message of proto/peer.proto, `Chunk` (pure: bytes in,
 * bytes out). It is wire-compatible with the .proto (any protobuf library reads what it writes, and
 * it reads any valid encoding, skipping unknown fields), but it avoids what proto-loader costs on
 * a 1 MiB payload: an intermediate object with Long values, a second copy, and a payload view at
 * an arbitrary byte offset that the receiver must copy again before it can read float32 from it.
 *
 * Alignment: grpc-js hands the deserializer `frame.subarray(5)` of a freshly concatenated frame
 * (5 = compression flag + length prefix). The encoder writes fields 1-7, then `padding` (field 9)
 * sized so that `data` (field 8, written last) starts at a multiple of 8 bytes from the frame start:
 * the receiver's Float32Array/Uint16Array view over it needs no copy.
 */

export interface WireChunk {
  generation: number;
  round: number;
  step: number;
  bucket: number;
  chunk: number;
  offset: number;
  dtype: 'DTYPE_F32' | 'DTYPE_F16';
  data: Uint8Array;
}

/** Compressed flag + big-endian message length before every gRPC message. */
export const GRPC_FRAME_PREFIX_BYTES = 5;
const DTYPE_CODES = { DTYPE_F32: 0, DTYPE_F16: 1 } as const;
/** Field 7's values by code. */
export const DTYPE_NAMES = ['DTYPE_F32', 'DTYPE_F16'] as const;
/** Fields 1-6 (varints), in field-number order. */
export const VARINT_FIELDS = ['generation', 'round', 'step', 'bucket', 'chunk', 'offset'] as const;
const TAG_DATA = (8 << 3) | 2;
const TAG_PADDING = (9 << 3) | 2;

function varintLength(value: number): number {
  let n = 1;
  while (value >= 128) {
    value = Math.floor(value / 128);
    n++;
  }
  return n;
}

function writeVarint(buf: Uint8Array, pos: number, value: number): number {
  while (value >= 128) {
    buf[pos++] = (value % 128) | 0x80;
    value = Math.floor(value / 128);
  }
  buf[pos++] = value;
  return pos;
}

/** Most bytes encodeChunk writes besides the payload (7 varint fields, padding, data tag and length). */
export const MAX_CHUNK_OVERHEAD_BYTES = 7 * 11 + 2 + 7 + 11;

/** The fields of a Chunk that come before its payload. */
export type ChunkHead = Omit<WireChunk, 'data'>;

interface HeadLayout {
  values: number[];
  dataBytes: number;
  /** Encoded bytes before the payload. */
  bytes: number;
  pad: number;
}

/** What comes before the payload of a chunk with `dataBytes` of payload, and its padding. */
function headLayout(c: ChunkHead, dataBytes: number): HeadLayout {
  const values = [...VARINT_FIELDS.map((f) => c[f]), DTYPE_CODES[c.dtype]];
  let head = 0;
  for (const v of values) head += 1 + varintLength(v);
  const dataPrefix = 1 + varintLength(dataBytes);
  // padding tag + 1-byte length + p bytes, then the data tag and length: data starts 8-aligned.
  const pad = (8 - ((GRPC_FRAME_PREFIX_BYTES + head + 2 + dataPrefix) % 8)) % 8;
  return { values, dataBytes, bytes: head + 2 + pad + dataPrefix, pad };
}

/** Writes fields 1-7, the padding and the data field's tag and length at `pos`; returns the end. */
function writeHead({ values, pad, dataBytes }: HeadLayout, buf: Uint8Array, pos: number): number {
  values.forEach((v, i) => {
    buf[pos++] = (i + 1) << 3;
    pos = writeVarint(buf, pos, v);
  });
  buf[pos++] = TAG_PADDING;
  buf[pos++] = pad;
  buf.fill(0, pos, pos + pad);
  pos += pad;
  buf[pos++] = TAG_DATA;
  return writeVarint(buf, pos, dataBytes);
}

/** Encodes `c` into `into` when it is large enough (returning the written prefix), else into a new buffer. */
export function encodeChunk(c: WireChunk, into?: Buffer): Buffer {
  const layout = headLayout(c, c.data.byteLength);
  const total = layout.bytes + c.data.byteLength;
  const buf = into && into.length >= total ? into.subarray(0, total) : Buffer.allocUnsafe(total);
  buf.set(c.data, writeHead(layout, buf, 0));
  return buf;
}

/**
 * The start of a gRPC frame carrying a Chunk of `dataBytes` payload: the 5-byte frame prefix
 * (uncompressed, big-endian message length), then everything encodeChunk writes before the
 * payload. Followed by the payload bytes, it is exactly the frame grpc-js would write for
 * encodeChunk's output, so the payload can go to the wire without being copied.
 */
export function encodeChunkFrameHead(c: ChunkHead, dataBytes: number): Buffer {
  const layout = headLayout(c, dataBytes);
  const buf = Buffer.allocUnsafe(GRPC_FRAME_PREFIX_BYTES + layout.bytes);
  writeGrpcFramePrefix(buf, layout.bytes + dataBytes);
  writeHead(layout, buf, GRPC_FRAME_PREFIX_BYTES);
  return buf;
}

/** The 5-byte prefix of an uncompressed gRPC frame of `messageBytes`: flag 0, big-endian length. */
export function writeGrpcFramePrefix(buf: Buffer, messageBytes: number): void {
  buf[0] = 0;
  buf.writeUInt32BE(messageBytes, 1);
}

class Reader {
  pos = 0;
  constructor(readonly buf: Uint8Array) {}

  varint(): number {
    let value = 0;
    let scale = 1;
    for (;;) {
      if (this.pos >= this.buf.length) throw new RangeError('Chunk: truncated varint');
      const byte = this.buf[this.pos++]!;
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) return value;
      scale *= 128;
      if (scale > 2 ** 63) throw new RangeError('Chunk: varint longer than 64 bits');
    }
  }

  /** A view (no copy) of the next length-delimited field. */
  bytes(): Uint8Array {
    const length = this.varint();
    if (this.pos + length > this.buf.length) throw new RangeError('Chunk: truncated bytes field');
    const view = this.buf.subarray(this.pos, this.pos + length);
    this.pos += length;
    return view;
  }

  skip(wireType: number): void {
    if (wireType === 0) this.varint();
    else if (wireType === 1) this.pos += 8;
    else if (wireType === 2) this.bytes();
    else if (wireType === 5) this.pos += 4;
    else throw new RangeError(`Chunk: unsupported wire type ${wireType}`);
  }
}

/** Decodes a Chunk; absent fields get their proto3 defaults; `data` is a view into `buf`. */
export function decodeChunk(buf: Uint8Array): WireChunk {
  const out: WireChunk = {
    generation: 0,
    round: 0,
    step: 0,
    bucket: 0,
    chunk: 0,
    offset: 0,
    dtype: 'DTYPE_F32',
    data: buf.subarray(0, 0),
  };
  const r = new Reader(buf);
  while (r.pos < buf.length) {
    const key = r.varint();
    const field = Math.floor(key / 8);
    const wireType = key % 8;
    if (field >= 1 && field <= 6 && wireType === 0) out[VARINT_FIELDS[field - 1]!] = r.varint();
    else if (field === 7 && wireType === 0) {
      const code = r.varint();
      out.dtype = DTYPE_NAMES[code] ?? (`DTYPE_${code}` as WireChunk['dtype']);
    } else if (field === 8 && wireType === 2) out.data = r.bytes();
    else r.skip(wireType);
  }
  return out;
}
