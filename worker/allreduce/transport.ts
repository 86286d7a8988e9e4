import { ClusterError } from '../../shared/errors.js';
import { type Payload, payloadByteLength, payloadParts } from './payload.js';

export type ChunkDtype = 'f32' | 'f16';

/** Identifies one message of the ring: unique within a generation. */
export interface ChunkKey {
  /** Membership generation; a message of an older one is never summed. */
  generation: number;
  /** Which all-reduce call of the generation (the training step). */
  round: number;
  /** Ring step, 0 .. 2(N-1)-1. */
  step: number;
  bucket: number;
  /** Sub-chunk (pipelining column) within the segment of this step. */
  chunk: number;
}

export interface ChunkMsg extends ChunkKey {
  /** Element offset of the first value within the all-reduced buffer. */
  offset: number;
  dtype: ChunkDtype;
  /**
   * Little-endian float32 or binary16 values: one view, or (as received) the views of the pieces
   * they arrived in (payload.ts).
   */
  bytes: Payload;
}

/** What a message says about its payload, known before its first byte arrives. */
export interface ChunkHeader extends ChunkKey {
  offset: number;
  dtype: ChunkDtype;
  byteLength: number;
}

/**
 * Takes one message's payload as it arrives (the ring sums or copies it into its buffer).
 * `begin` sees the header before any byte and throws to refuse the message; `data` gets the
 * payload's bytes in order, in pieces of any size and alignment (valid during the call only);
 * `end` follows the last piece and throws if the payload was incomplete.
 */
export interface PayloadReceiver {
  begin(header: ChunkHeader): void;
  data(bytes: Uint8Array): void;
  end(): void;
}

/**
 * What the ring driver needs from a network (gloo's left/right pairs, Horovod's wire primitives).
 * - `sendRight` resolves once the transport no longer reads `msg.bytes` (the caller may then
 *   modify that memory); it rejects with PEER_LOST when the right neighbour is gone.
 * - `recvLeft` resolves with the message of exactly `key`, whenever it arrived (early arrivals
 *   wait in a mailbox); it rejects with STALE_GENERATION when the key's generation is over.
 * - `recvLeftInto` (optional) hands the payload of `key` to `receiver` instead, as it arrives
 *   when the receiver is there first, and resolves after `receiver.end()`; a receiver that
 *   throws rejects the call. Once the call has rejected, the receiver gets no more bytes.
 * All reject with the signal's reason as soon as it aborts.
 */
export interface RingTransport {
  sendRight(msg: ChunkMsg, signal: AbortSignal): Promise<void>;
  recvLeft(key: ChunkKey, signal: AbortSignal): Promise<ChunkMsg>;
  recvLeftInto?(key: ChunkKey, receiver: PayloadReceiver, signal: AbortSignal): Promise<void>;
}

export function chunkKeyString(k: ChunkKey): string {
  return `${k.generation}/${k.round}/${k.step}/${k.bucket}/${k.chunk}`;
}

export function headerOf(msg: ChunkMsg): ChunkHeader {
  const { generation, round, step, bucket, chunk, offset, dtype } = msg;
  return { generation, round, step, bucket, chunk, offset, dtype, byteLength: payloadByteLength(msg.bytes) };
}

/** Hands a whole message to a receiver (begin, every piece, end). */
export function feedPayload(receiver: PayloadReceiver, msg: ChunkMsg): void {
  receiver.begin(headerOf(msg));
  for (const part of payloadParts(msg.bytes)) receiver.data(part);
  receiver.end();
}

export function staleError(generation: number, current: number): ClusterError {
  return new ClusterError(
    'STALE_GENERATION',
    `generation ${generation} is over (current generation ${current})`,
  );
}
