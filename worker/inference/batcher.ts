/**
 * Serialised micro-batching for the forward pass: callers submit one item each, concurrently; at most
 * one `run` is in progress at any time, and it takes every item waiting when it starts (up to
 * maxBatch). So a lone request runs at once, and requests that arrive while the network is busy share
 * the next pass instead of queueing one pass each. No timers: batching only ever happens under load.
 *
 * Ordering and invariants:
 *  1. submit() appends to `waiting` and starts the drain loop if it is idle.
 *  2. The loop takes the first maxBatch waiting items, awaits run(items) (which must return one result
 *     per item, in order), settles their promises, and repeats until nothing waits.
 *  3. An aborted submit leaves `waiting` at once and rejects with the signal's reason; if its batch is
 *     already running, the result is dropped when it arrives.
 *  4. close() rejects what still waits and resolves when the running batch has finished; submit()
 *     after close() rejects.
 */
import { ClusterError } from '../../shared/errors.js';

export interface Batcher<I, O> {
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
  let draining: Promise<void> | undefined;
  let closed = false;

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
    while (waiting.length > 0) await runBatch(waiting.splice(0, maxBatch));
    draining = undefined;
  }

  function submit(item: I, signal?: AbortSignal): Promise<O> {
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
      draining ??= drain();
    });
  }

  return {
    submit,
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
