import { ClusterError } from '../../shared/errors.js';
import type { ChunkHead } from './chunk-codec.js';

/**
 * Push decoder for the response body of Peer.OpenRing (pure: byte slices in, chunks out), the
 * receiving counterpart of chunk-codec.ts for a body that arrives as HTTP/2 DATA slices of at
 * most 16 KiB (Node's http2 sends no larger frames, whatever SETTINGS_MAX_FRAME_SIZE allows).
 *
 * Body = gRPC frames: 1 byte compressed flag (must be 0), 4 bytes big-endian message length, the
 * protobuf Chunk. grpc-js copies the slices of every message into a fresh buffer before it
 * deserializes it; here the header fields are parsed as they pass and the payload (field 8) is
 * kept as views of the slices it arrived in (payload.ts), never copied: the ring sums or copies
 * the values straight from them. Slices must not be reused by their producer (Node's http2
 * gives every socket read its own ArrayBuffer). Fields may come in any order; unknown ones are
 * skipped.
 */
export interface ReceivedChunk extends ChunkHead {
  /** The payload as views of the slices it arrived in, in order. */
  data: Uint8Array[];
}

const PREFIX_BYTES = 5;
const DTYPE_NAMES = ['DTYPE_F32', 'DTYPE_F16'] as const;
const VARINT_FIELDS = ['generation', 'round', 'step', 'bucket', 'chunk', 'offset'] as const;
const FIELD_DATA = 8;

type State = 'prefix' | 'key' | 'varint' | 'length' | 'payload' | 'skip';

export class ChunkStreamDecoder {
  private state: State = 'prefix';
  private readonly prefix = new Uint8Array(PREFIX_BYTES);
  private prefixFilled = 0;
  /** Bytes of the current message still to come. */
  private messageLeft = 0;
  private field = 0;
  private varint = 0;
  private scale = 1;
  /** Bytes of the current payload or skipped field still to come. */
  private fieldLeft = 0;
  private chunk: ReceivedChunk = emptyChunk();

  constructor(private readonly maxMessageBytes: number) {}

  /** Consumes `slice` and returns the chunks it completed (their payloads are views of slices). */
  write(slice: Uint8Array): ReceivedChunk[] {
    const out: ReceivedChunk[] = [];
    let pos = 0;
    while (pos < slice.length) {
      pos = this.state === 'prefix' ? this.readPrefix(slice, pos) : this.readMessage(slice, pos);
      if (this.state !== 'prefix' && this.messageLeft === 0) out.push(this.finish());
    }
    return out;
  }

  /** Throws unless the body ended between two messages. */
  end(): void {
    if (this.state !== 'prefix' || this.prefixFilled !== 0)
      throw protocol('the stream ended inside a message');
  }

  private readPrefix(slice: Uint8Array, pos: number): number {
    const n = Math.min(PREFIX_BYTES - this.prefixFilled, slice.length - pos);
    this.prefix.set(slice.subarray(pos, pos + n), this.prefixFilled);
    this.prefixFilled += n;
    if (this.prefixFilled < PREFIX_BYTES) return pos + n;
    this.prefixFilled = 0;
    if (this.prefix[0] !== 0) throw protocol('compressed messages are not supported');
    const length = new DataView(this.prefix.buffer).getUint32(1);
    if (length > this.maxMessageBytes)
      throw protocol(`a ${length}-byte message exceeds the ${this.maxMessageBytes}-byte limit`);
    this.messageLeft = length;
    this.chunk = emptyChunk();
    this.state = 'key';
    return pos + n;
  }

  /** Reads within the current message (`slice` may also hold the start of the next one). */
  private readMessage(slice: Uint8Array, pos: number): number {
    const end = Math.min(slice.length, pos + this.messageLeft);
    while (pos < end) {
      if (this.state === 'payload' || this.state === 'skip') pos = this.readBytes(slice, pos, end);
      else this.readVarintByte(slice[pos++]!);
    }
    return pos;
  }

  private readVarintByte(byte: number): void {
    this.messageLeft--;
    this.varint += (byte & 0x7f) * this.scale;
    this.scale *= 128;
    if (byte >= 0x80) {
      if (this.scale > 2 ** 63) throw protocol('a varint is longer than 64 bits');
      return;
    }
    const value = this.varint;
    this.varint = 0;
    this.scale = 1;
    if (this.state === 'key') this.onKey(value);
    else if (this.state === 'varint') this.onVarint(value);
    else this.onLength(value);
  }

  private onKey(key: number): void {
    this.field = Math.floor(key / 8);
    const wireType = key % 8;
    if (wireType === 0) this.state = 'varint';
    else if (wireType === 2) this.state = 'length';
    else if (wireType === 1 || wireType === 5) this.startSkip(wireType === 1 ? 8 : 4);
    else throw protocol(`field ${this.field} has unsupported wire type ${wireType}`);
  }

  private onVarint(value: number): void {
    const f = this.field;
    if (f >= 1 && f <= 6) this.chunk[VARINT_FIELDS[f - 1]!] = value;
    else if (f === 7) this.chunk.dtype = DTYPE_NAMES[value] ?? (`DTYPE_${value}` as ChunkHead['dtype']);
    this.state = 'key';
  }

  private onLength(length: number): void {
    if (length > this.messageLeft) throw protocol(`field ${this.field} runs past the end of its message`);
    if (this.field !== FIELD_DATA) {
      this.startSkip(length);
      return;
    }
    // A repeated `bytes` field: the last one wins (protobuf semantics).
    this.chunk.data = [];
    this.fieldLeft = length;
    this.state = length > 0 ? 'payload' : 'key';
  }

  private startSkip(bytes: number): void {
    if (bytes > this.messageLeft) throw protocol(`field ${this.field} runs past the end of its message`);
    this.fieldLeft = bytes;
    this.state = bytes > 0 ? 'skip' : 'key';
  }

  private readBytes(slice: Uint8Array, pos: number, end: number): number {
    const n = Math.min(this.fieldLeft, end - pos);
    if (this.state === 'payload') this.chunk.data.push(slice.subarray(pos, pos + n));
    this.messageLeft -= n;
    this.fieldLeft -= n;
    if (this.fieldLeft === 0) this.state = 'key';
    return pos + n;
  }

  private finish(): ReceivedChunk {
    if (this.state !== 'key' || this.scale !== 1) throw protocol('a message ends inside a field');
    this.state = 'prefix';
    return this.chunk;
  }
}

function emptyChunk(): ReceivedChunk {
  return { generation: 0, round: 0, step: 0, bucket: 0, chunk: 0, offset: 0, dtype: 'DTYPE_F32', data: [] };
}

function protocol(message: string): ClusterError {
  return new ClusterError('PROTOCOL', `Chunk stream: ${message}`);
}
