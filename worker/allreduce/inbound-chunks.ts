import { ClusterError } from '../../shared/errors.js';
import { fromWireHead } from '../peer-service.js';
import type { ChunkHead } from './chunk-codec.js';
import type { ChunkStreamListener } from './chunk-stream-decoder.js';
import type { Arrival, Mailbox } from './mailbox.js';
import type { ChunkHeader } from './transport.js';

/**
 * Routes the messages of one inbound ring stream (generation `generation`) into the mailbox, as
 * the ChunkStreamDecoder reports them: a message whose receiver already waits streams into it
 * piece by piece; any other is collected (its pieces stay views of the socket reads) and
 * delivered whole at its end. A malformed header, or a chunk of a newer generation on this
 * stream, throws PROTOCOL, which cancels the stream.
 */
export class InboundChunks implements ChunkStreamListener {
  private header: ChunkHeader | undefined;
  private arrival: Arrival = { kind: 'drop' };
  private parts: Uint8Array[] = [];

  constructor(
    private readonly mailbox: Mailbox,
    private readonly generation: number,
    /** Names the sender in errors. */
    private readonly from: string,
    /** Payload bytes of every accepted message, once it is complete. */
    private readonly onAccepted: (byteLength: number) => void,
  ) {}

  begin(head: ChunkHead, byteLength: number): void {
    const header = fromWireHead(head, byteLength, this.from);
    if (header.generation !== this.generation && header.generation >= this.mailbox.generation)
      throw new ClusterError(
        'PROTOCOL',
        `a chunk of generation ${header.generation} arrived on the stream of generation ${this.generation}`,
      );
    this.header = header;
    this.parts = [];
    this.arrival = this.mailbox.arrive(header);
  }

  data(bytes: Uint8Array): void {
    if (this.arrival.kind === 'stream') this.arrival.receiver.data(bytes);
    else if (this.arrival.kind === 'collect') this.parts.push(bytes);
  }

  end(): void {
    const { arrival, header } = this;
    this.arrival = { kind: 'drop' };
    if (arrival.kind === 'drop' || !header) return;
    if (arrival.kind === 'stream') arrival.receiver.end();
    else if (this.mailbox.deliver({ ...withoutLength(header), bytes: this.parts }) === 'stale') return;
    this.parts = [];
    this.onAccepted(header.byteLength);
  }
}

function withoutLength({ byteLength: _, ...rest }: ChunkHeader) {
  return rest;
}
