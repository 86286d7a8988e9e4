import { ClusterError } from '../../shared/errors.js';
import { type ChunkHead, DTYPE_NAMES, GRPC_FRAME_PREFIX_BYTES, VARINT_FIELDS } from './chunk-codec.js';

/**
 * Push decoder for the response body of Peer.OpenRing (pure: byte slices in, chunks out), the
 * receiving counterpart of chunk-codec.ts for a body that arrives as HTTP/2 DATA slices of at
 * most 16 KiB (Node's http2 sends no larger frames, whatever SETTINGS_MAX_FRAME_SIZE allows).
 *
 * Body = gRPC frames: 1 byte compressed flag (must be 0), 4 bytes big-endian message length, the
 * protobuf Chunk. grpc-js copies the slices of every message into a fresh buffer before it
 * deserializes it; here the fields are parsed as they pass and the payload (field 8) goes to the
 * listener as views of the slices it arrived in, never copied, so that the ring can sum or copy
 * the values straight from the socket reads. Per message the listener sees:
 *  1. begin(head, byteLength) when the payload starts, `head` holding the fields before it
 *     (a message without a payload: at its end, with byteLength 0);
 *  2. data(view) for every piece of the payload, in order;
 *  3. end() once the message is complete.
 * Fields 1-7 must come before the payload (chunk-codec.ts and protobuf encoders write fields in
 * number order); one after it, or a second payload, is a PROTOCOL error. Unknown fields are
 * skipped wherever they are.
 */
export interface ChunkStreamListener {
  begin(head: ChunkHead, byteLength: number): void;
  data(bytes: Uint8Array): void;
  end(): void;
}

const FIELD_DATA = 8;

type State = 'prefix' | 'key' | 'varint' | 'length' | 'payload' | 'skip';

export class ChunkStreamDecoder {
  private state: State = 'prefix';
  private readonly prefix = new Uint8Array(GRPC_FRAME_PREFIX_BYTES);
  private prefixFilled = 0;
  /** Bytes of the current message still to come. */
  private messageLeft = 0;
  private field = 0;
  private varint = 0;
  private scale = 1;
  /** Bytes of the current payload or skipped field still to come. */
  private fieldLeft = 0;
  private head: ChunkHead = emptyHead();
  private payloadSeen = false;

  constructor(
    private readonly maxMessageBytes: number,
    private readonly listener: ChunkStreamListener,
  ) {}

  /** Consumes `slice`; the listener gets views of it, so its bytes must not change afterwards. */
  write(slice: Uint8Array): void {
    let pos = 0;
    while (pos < slice.length) {
      pos = this.state === 'prefix' ? this.readPrefix(slice, pos) : this.readMessage(slice, pos);
      if (this.state !== 'prefix' && this.messageLeft === 0) this.finish();
    }
  }

  /** Throws unless the body ended between two messages. */
  end(): void {
    if (this.state !== 'prefix' || this.prefixFilled !== 0)
      throw protocol('the stream ended inside a message');
  }

  private readPrefix(slice: Uint8Array, pos: number): number {
    const n = Math.min(GRPC_FRAME_PREFIX_BYTES - this.prefixFilled, slice.length - pos);
    this.prefix.set(slice.subarray(pos, pos + n), this.prefixFilled);
    this.prefixFilled += n;
    if (this.prefixFilled < GRPC_FRAME_PREFIX_BYTES) return pos + n;
    this.prefixFilled = 0;
    if (this.prefix[0] !== 0) throw protocol('compressed messages are not supported');
    const length = new DataView(this.prefix.buffer).getUint32(1);
    if (length > this.maxMessageBytes)
      throw protocol(`a ${length}-byte message exceeds the ${this.maxMessageBytes}-byte limit`);
    this.messageLeft = length;
    this.head = emptyHead();
    this.payloadSeen = false;
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
    if (f >= 1 && f <= 7 && this.payloadSeen) throw protocol(`field ${f} comes after the payload`);
    if (f >= 1 && f <= 6) this.head[VARINT_FIELDS[f - 1]!] = value;
    else if (f === 7) this.head.dtype = DTYPE_NAMES[value] ?? (`DTYPE_${value}` as ChunkHead['dtype']);
    this.state = 'key';
  }

  private onLength(length: number): void {
    if (length > this.messageLeft) throw protocol(`field ${this.field} runs past the end of its message`);
    if (this.field !== FIELD_DATA) {
      this.startSkip(length);
      return;
    }
    if (this.payloadSeen) throw protocol('a message has two payloads');
    this.payloadSeen = true;
    this.listener.begin(this.head, length);
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
    if (this.state === 'payload') this.listener.data(slice.subarray(pos, pos + n));
    this.messageLeft -= n;
    this.fieldLeft -= n;
    if (this.fieldLeft === 0) this.state = 'key';
    return pos + n;
  }

  private finish(): void {
    if (this.state !== 'key' || this.scale !== 1) throw protocol('a message ends inside a field');
    this.state = 'prefix';
    if (!this.payloadSeen) this.listener.begin(this.head, 0);
    this.listener.end();
  }
}

function emptyHead(): ChunkHead {
  return { generation: 0, round: 0, step: 0, bucket: 0, chunk: 0, offset: 0, dtype: 'DTYPE_F32' };
}

function protocol(message: string): ClusterError {
  return new ClusterError('PROTOCOL', `Chunk stream: ${message}`);
}
