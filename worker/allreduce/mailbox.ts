import { type Deferred, deferred } from '../../shared/abort.js';
import { ClusterError } from '../../shared/errors.js';
import {
  type ChunkHeader,
  type ChunkKey,
  type ChunkMsg,
  chunkKeyString,
  feedPayload,
  type PayloadReceiver,
  staleError,
} from './transport.js';

interface Waiter {
  generation: number;
  wait: Deferred<ChunkMsg | undefined>;
  /** Set by takeInto: the payload goes to it instead of being handed out. */
  receiver: PayloadReceiver | undefined;
  /** A message is streaming into `receiver` right now. */
  streaming: boolean;
}

/**
 * Where the payload of a message that starts arriving goes (see Mailbox.arrive):
 * - `stream`: its receiver was waiting; every piece goes to `receiver` as it comes;
 * - `collect`: keep the pieces and `deliver` the whole message at its end;
 * - `drop`: ignore it (an older generation, counted; or a receiver that refused it).
 */
export type Arrival = { kind: 'stream'; receiver: PayloadReceiver } | { kind: 'collect' } | { kind: 'drop' };

/**
 * Messages from the left neighbour, keyed by (generation, round, step, bucket, chunk).
 * Invariants: a key is delivered at most once; a message of a generation older than the current
 * one is dropped and counted (`staleRejected`), never handed out; messages of a newer
 * generation are kept until the mailbox advances to it. The ring bounds how far the left
 * neighbour can run ahead (one segment per step), so the mailbox needs no capacity limit.
 * A waiter leaves the mailbox when it is settled (resolved, aborted, failed, stale); a message
 * streaming into a waiter that left gets no further bytes, so a receiver never writes after its
 * call has rejected.
 */
export class Mailbox {
  private current: number;
  private readonly arrived = new Map<string, ChunkMsg>();
  private readonly waiting = new Map<string, Waiter>();
  private readonly failures = new Map<number, unknown>();
  staleRejected = 0;

  constructor(generation = 0) {
    this.current = generation;
  }

  get generation(): number {
    return this.current;
  }

  /** Messages that arrived and were not taken yet. */
  get size(): number {
    return this.arrived.size;
  }

  /** A whole message: to its waiter, else kept until taken. */
  deliver(msg: ChunkMsg): 'accepted' | 'stale' {
    if (msg.generation < this.current) {
      this.staleRejected++;
      return 'stale';
    }
    const name = chunkKeyString(msg);
    const waiter = this.waiting.get(name);
    if (waiter?.streaming || (!waiter && this.arrived.has(name)))
      throw new ClusterError('PROTOCOL', `chunk ${name} arrived twice`);
    if (!waiter) {
      this.arrived.set(name, msg);
      return 'accepted';
    }
    this.waiting.delete(name);
    if (!waiter.receiver) waiter.wait.resolve(msg);
    else settle(waiter, () => feedPayload(waiter.receiver!, msg));
    return 'accepted';
  }

  /**
   * The payload of the message `header` describes starts arriving: streams into its receiver
   * when one waits for it (which may refuse it), else is collected for `deliver`.
   */
  arrive(header: ChunkHeader): Arrival {
    if (header.generation < this.current) {
      this.staleRejected++;
      return { kind: 'drop' };
    }
    const name = chunkKeyString(header);
    const waiter = this.waiting.get(name);
    if (!waiter?.receiver || waiter.streaming) return { kind: 'collect' };
    try {
      waiter.receiver.begin(header);
    } catch (err) {
      this.waiting.delete(name);
      waiter.wait.reject(err);
      return { kind: 'drop' };
    }
    waiter.streaming = true;
    return { kind: 'stream', receiver: this.guarded(name, waiter) };
  }

  /** The message of `key`, whenever it arrives. */
  take(key: ChunkKey, signal: AbortSignal): Promise<ChunkMsg> {
    return this.wait(key, undefined, signal) as Promise<ChunkMsg>;
  }

  /** The payload of `key` into `receiver`: as it arrives, or at once if it has. */
  takeInto(key: ChunkKey, receiver: PayloadReceiver, signal: AbortSignal): Promise<void> {
    return this.wait(key, receiver, signal).then(() => undefined);
  }

  /** Moves to `generation`: older messages are dropped, older waiters rejected with STALE_GENERATION. */
  advance(generation: number): void {
    if (generation < this.current) throw staleError(generation, this.current);
    this.current = generation;
    for (const [name, msg] of this.arrived) if (msg.generation < generation) this.arrived.delete(name);
    for (const g of this.failures.keys()) if (g < generation) this.failures.delete(g);
    this.rejectWaiters(
      (w) => w.generation < generation,
      (w) => staleError(w.generation, generation),
    );
  }

  /** The left link of `generation` broke: its waiters, present and future, reject with `err`. */
  fail(generation: number, err: unknown): void {
    if (generation < this.current) return;
    if (!this.failures.has(generation)) this.failures.set(generation, err);
    this.rejectWaiters(
      (w) => w.generation === generation,
      () => err,
    );
  }

  private wait(
    key: ChunkKey,
    receiver: PayloadReceiver | undefined,
    signal: AbortSignal,
  ): Promise<ChunkMsg | undefined> {
    if (signal.aborted) return Promise.reject(signal.reason);
    if (key.generation < this.current) return Promise.reject(staleError(key.generation, this.current));
    const failure = this.failures.get(key.generation);
    if (failure !== undefined) return Promise.reject(failure);
    const name = chunkKeyString(key);
    if (this.waiting.has(name))
      return Promise.reject(new ClusterError('PROTOCOL', `chunk ${name} awaited twice`));
    const waiter: Waiter = { generation: key.generation, wait: deferred(), receiver, streaming: false };
    const early = this.arrived.get(name);
    if (early) {
      this.arrived.delete(name);
      if (receiver) settle(waiter, () => feedPayload(receiver, early));
      else waiter.wait.resolve(early);
      return waiter.wait.promise;
    }
    this.waiting.set(name, waiter);
    const onAbort = () => {
      if (this.waiting.get(name) === waiter) this.waiting.delete(name);
      waiter.wait.reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    return waiter.wait.promise.finally(() => signal.removeEventListener('abort', onAbort));
  }

  /** Forwards to the waiter's receiver while the waiter is still in the mailbox. */
  private guarded(name: string, waiter: Waiter): PayloadReceiver {
    const receiver = waiter.receiver!;
    const active = () => this.waiting.get(name) === waiter;
    const failed = (err: unknown) => {
      this.waiting.delete(name);
      waiter.wait.reject(err);
    };
    return {
      begin: () => {},
      data: (bytes) => {
        if (!active()) return;
        try {
          receiver.data(bytes);
        } catch (err) {
          failed(err);
        }
      },
      end: () => {
        if (!active()) return;
        this.waiting.delete(name);
        settle(waiter, () => receiver.end());
      },
    };
  }

  private rejectWaiters(match: (w: Waiter) => boolean, reason: (w: Waiter) => unknown): void {
    for (const [name, w] of this.waiting) {
      if (!match(w)) continue;
      this.waiting.delete(name);
      w.wait.reject(reason(w));
    }
  }
}

/** Runs `consume` and settles the waiter with its outcome. */
function settle(waiter: Waiter, consume: () => void): void {
  try {
    consume();
    waiter.wait.resolve(undefined);
  } catch (err) {
    waiter.wait.reject(err);
  }
}
