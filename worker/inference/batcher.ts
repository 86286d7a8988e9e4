/**
 * Serialised micro-batching for the forward pass: callers submit one item each, concurrently; at most
 * one `run` is in progress at any time, and it takes up to maxBatch waiting items.
 *
 * Reservations are what make batches form on a CPU backend, where a forward pass blocks the event loop:
 * items whose preparation (decoding) finishes during a pass cannot be submitted until it ends, and
 * without a hint the next pass would start with whatever little was submitted. A caller reserves a
 * place before it starts preparing an item, then submits (or cancels) it. No timers are involved.
 *
 * Ordering and invariants:
 *  1. reserve() counts an item in preparation; submit() on the reservation moves it to `waiting`,
 *     cancel() drops it; either exactly once.
 *  2. A pass starts when nothing runs and `waiting` is not empty, and either maxBatch items wait or no
 *     reserved item is still being prepared. It takes the first maxBatch waiting items, awaits
 *     run(items) (one result per item, in order), settles their promises, and repeats.
 *  3. An aborted item leaves `waiting` at once and rejects with the signal's reason; if its pass is
 *     already running, the result is dropped when it arrives.
 *  4. close() rejects what still waits and resolves when the running pass has finished; later
 *     submits reject.
 */
import { ClusterError } from '../../shared/errors.js';

export interface Reservation<I, O> {
  submit(item: I, signal?: AbortSignal): Promise<O>;
  cancel(): void;
}

export interface Batcher<I, O> {
  /** A place in a coming pass for an item still being prepared. */
  reserve(): Reservation<I, O>;
  /** reserve() and submit at once. */
  submit(item: I, signal?: AbortSignal): Promise<O>;
  /** Items waiting for a pass (not counting the running one). */
  readonly waiting: number;
  close(): Promise<void>;
}

interface Entry<I, O> {
  item: I;
  resolve(value: O): void;
  reject(reason: unknown): void;
  detach(): void;
}

export function createBatcher<I, O>(
  run: (items: readonly I[]) => Promise<O[]>,
  options: { maxBatch: number; name?: string },
): Batcher<I, O> {
  const { maxBatch, name = 'batcher' } = options;
  if (!Number.isInteger(maxBatch) || maxBatch < 1) {
    throw new ClusterError('INTERNAL', `${name}: maxBatch must be an integer >= 1, got ${maxBatch}`);
  }
  const waiting: Entry<I, O>[] = [];
  let reserved = 0;
  let draining: Promise<void> | undefined;
  let closed = false;

  const isReady = () => waiting.length > 0 && (waiting.length >= maxBatch || reserved === 0);

  async function runBatch(batch: Entry<I, O>[]): Promise<void> {
    try {
      const results = await run(batch.map((e) => e.item));
      if (results.length !== batch.length) {
        throw new ClusterError('INTERNAL', `${name}: ${results.length} results for ${batch.length} items`);
      }
      for (const [i, e] of batch.entries()) e.resolve(results[i]!);
    } catch (err) {
      for (const e of batch) e.reject(err);
    } finally {
      for (const e of batch) e.detach();
    }
  }

  async function drain(): Promise<void> {
    while (isReady()) await runBatch(waiting.splice(0, maxBatch));
    draining = undefined;
  }

  const maybeStart = () => {
    if (!draining && isReady()) draining = drain();
  };

  function enqueue(item: I, signal: AbortSignal | undefined): Promise<O> {
    if (closed) return Promise.reject(new ClusterError('ABORTED', `${name}: closed`));
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<O>((resolve, reject) => {
      const onAbort = () => {
        const at = waiting.indexOf(entry);
        if (at >= 0) waiting.splice(at, 1);
        reject(signal!.reason);
      };
      const entry: Entry<I, O> = {
        item,
        resolve,
        reject,
        detach: () => signal?.removeEventListener('abort', onAbort),
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      waiting.push(entry);
    });
  }

  function reserve(): Reservation<I, O> {
    reserved++;
    let used = false;
    const release = () => {
      if (used) throw new ClusterError('INTERNAL', `${name}: a reservation was used twice`);
      used = true;
      reserved--;
    };
    return {
      submit(item, signal) {
        release();
        const result = enqueue(item, signal);
        maybeStart();
        return result;
      },
      cancel() {
        release();
        maybeStart(); // the pass may have been waiting for this item only
      },
    };
  }

  return {
    reserve,
    submit: (item, signal) => reserve().submit(item, signal),
    get waiting() {
      return waiting.length;
    },
    async close() {
      closed = true;
      for (const e of waiting.splice(0)) {
        e.detach();
        e.reject(new ClusterError('ABORTED', `${name}: closed before this item ran`));
      }
      await draining;
    },
  };
}
