import { ClusterError } from '../../shared/errors.js';
import { createRng, RNG_STREAM, type Rng } from '../../shared/random.js';
import { Mailbox } from './mailbox.js';
import { joinPayload } from './payload.js';
import type { ChunkKey, ChunkMsg, RingTransport } from './transport.js';

/**
 * In-memory ring of N transports for tests (Horovod's memory_store). Messages are copied on
 * send, like a network would, and delivered on a later macrotask. With `shuffleSeed`, the
 * messages sent during one macrotask reach the neighbour in a permuted order, to exercise
 * out-of-order arrival. `drop(rank)` simulates a lost worker.
 */
export interface MemoryRing {
  readonly transports: readonly MemoryTransport[];
  /** Rank `rank` is gone: its own calls and its neighbours' calls towards it reject with PEER_LOST. */
  drop(rank: number): void;
  /** Every rank moves to `generation` (a membership change). */
  advance(generation: number): void;
}

export class MemoryTransport implements RingTransport {
  readonly mailbox: Mailbox;
  right: MemoryTransport | undefined;
  dropped = false;
  /** Messages sent, for tests that count traffic. */
  sent = 0;
  private outbox: ChunkMsg[] = [];
  private flushScheduled = false;

  constructor(
    readonly rank: number,
    generation: number,
    private readonly rng: Rng | undefined,
  ) {
    this.mailbox = new Mailbox(generation);
  }

  async sendRight(msg: ChunkMsg, signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    const right = this.right;
    if (this.dropped) throw lost(`rank ${this.rank} was dropped`);
    if (!right || right.dropped) throw lost(`right neighbour of rank ${this.rank} is gone`);
    this.outbox.push({ ...msg, bytes: new Uint8Array(joinPayload(msg.bytes)) });
    this.sent++;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush(right));
    }
  }

  recvLeft(key: ChunkKey, signal: AbortSignal): Promise<ChunkMsg> {
    if (this.dropped) return Promise.reject(lost(`rank ${this.rank} was dropped`));
    return this.mailbox.take(key, signal);
  }

  private flush(right: MemoryTransport): void {
    this.flushScheduled = false;
    const batch = this.outbox;
    this.outbox = [];
    if (this.rng) shuffle(batch, this.rng);
    if (right.dropped) return;
    for (const msg of batch) right.mailbox.deliver(msg);
  }
}

function shuffle<T>(items: T[], rng: Rng): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
}

function lost(message: string): ClusterError {
  return new ClusterError('PEER_LOST', message);
}

export function createMemoryRing(
  size: number,
  options: { generation?: number; shuffleSeed?: number } = {},
): MemoryRing {
  const generation = options.generation ?? 0;
  const transports = Array.from(
    { length: size },
    (_, rank) =>
      new MemoryTransport(
        rank,
        generation,
        options.shuffleSeed === undefined ? undefined : createRng(options.shuffleSeed, RNG_STREAM.test, rank),
      ),
  );
  transports.forEach((t, rank) => {
    t.right = transports[(rank + 1) % size];
  });
  return {
    transports,
    drop(rank) {
      const t = transports[rank]!;
      t.dropped = true;
      t.mailbox.fail(t.mailbox.generation, lost(`rank ${rank} was dropped`));
      const right = transports[(rank + 1) % size]!;
      right.mailbox.fail(
        right.mailbox.generation,
        lost(`left neighbour rank ${rank} of rank ${right.rank} was lost`),
      );
    },
    advance(g) {
      for (const t of transports) t.mailbox.advance(g);
    },
  };
}
