import { type Deferred, deferred } from '../../shared/abort.js';
import { ClusterError } from '../../shared/errors.js';
import type { Payload } from './payload.js';

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

/**
 * What the ring driver needs from a network (gloo's left/right pairs, Horovod's wire primitives).
 * - `sendRight` resolves once the transport no longer reads `msg.bytes` (the caller may then
 *   modify that memory); it rejects with PEER_LOST when the right neighbour is gone.
 * - `recvLeft` resolves with the message of exactly `key`, whenever it arrived (early arrivals
 *   wait in a mailbox); it rejects with STALE_GENERATION when the key's generation is over.
 * Both reject with the signal's reason as soon as it aborts.
 */
export interface RingTransport {
  sendRight(msg: ChunkMsg, signal: AbortSignal): Promise<void>;
  recvLeft(key: ChunkKey, signal: AbortSignal): Promise<ChunkMsg>;
}

export function chunkKeyString(k: ChunkKey): string {
  return `${k.generation}/${k.round}/${k.step}/${k.bucket}/${k.chunk}`;
}

interface Waiter {
  generation: number;
  wait: Deferred<ChunkMsg>;
}

/**
 * Messages from the left neighbour, keyed by (generation, round, step, bucket, chunk).
 * Invariants: a key is delivered at most once; a message of a generation older than the current
 * one is dropped and counted (`staleRejected`), never handed out; messages of a newer
 * generation are kept until the mailbox advances to it. The ring bounds how far the left
 * neighbour can run ahead (one segment per step), so the mailbox needs no capacity limit.
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

  deliver(msg: ChunkMsg): 'accepted' | 'stale' {
    if (msg.generation < this.current) {
      this.staleRejected++;
      return 'stale';
    }
    const key = chunkKeyString(msg);
    const waiter = this.waiting.get(key);
    if (waiter) {
      this.waiting.delete(key);
      waiter.wait.resolve(msg);
      return 'accepted';
    }
    if (this.arrived.has(key)) throw new ClusterError('PROTOCOL', `chunk ${key} arrived twice`);
    this.arrived.set(key, msg);
    return 'accepted';
  }

  take(key: ChunkKey, signal: AbortSignal): Promise<ChunkMsg> {
    if (signal.aborted) return Promise.reject(signal.reason);
    if (key.generation < this.current) return Promise.reject(staleError(key.generation, this.current));
    const failure = this.failures.get(key.generation);
    if (failure !== undefined) return Promise.reject(failure);
    const name = chunkKeyString(key);
    const early = this.arrived.get(name);
    if (early) {
      this.arrived.delete(name);
      return Promise.resolve(early);
    }
    if (this.waiting.has(name))
      return Promise.reject(new ClusterError('PROTOCOL', `chunk ${name} awaited twice`));
    const wait = deferred<ChunkMsg>();
    this.waiting.set(name, { generation: key.generation, wait });
    const onAbort = () => {
      if (this.waiting.get(name)?.wait === wait) this.waiting.delete(name);
      wait.reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    return wait.promise.finally(() => signal.removeEventListener('abort', onAbort));
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

  private rejectWaiters(match: (w: Waiter) => boolean, reason: (w: Waiter) => unknown): void {
    for (const [name, w] of this.waiting) {
      if (!match(w)) continue;
      this.waiting.delete(name);
      w.wait.reject(reason(w));
    }
  }
}

export function staleError(generation: number, current: number): ClusterError {
  return new ClusterError(
    'STALE_GENERATION',
    `generation ${generation} is over (current generation ${current})`,
  );
}

export interface Deadline {
  /** Aborts when the parent does or when the time is up (reason: a TimeoutError DOMException). */
  readonly signal: AbortSignal;
  /** True once the timer (not the parent) has aborted `signal`. */
  readonly timedOut: boolean;
  /** Stops the timer (idempotent); call it once the guarded wait is over. */
  clear(): void;
}

/**
 * `parent` or a timer of `ms`, whichever comes first. Unlike composing AbortSignal.timeout with
 * AbortSignal.any (shared/abort.ts withDeadline), the timer cannot be lost: on Node 20 a composed
 * AbortSignal.timeout that nothing else references never fires once a GC has run
 * (nodejs/node#57736, reproduced here with --expose-gc). The timer is unref'd.
 */
export function deadline(parent: AbortSignal, ms: number): Deadline {
  const controller = new AbortController();
  const timer = setTimeout(
    () => controller.abort(new DOMException(`timed out after ${ms} ms`, 'TimeoutError')),
    ms,
  );
  timer.unref();
  const signal = AbortSignal.any([parent, controller.signal]);
  return {
    signal,
    get timedOut() {
      return controller.signal.aborted && signal.reason === controller.signal.reason;
    },
    clear: () => clearTimeout(timer),
  };
}
