import { type Deferred, deferred } from '../../shared/abort.js';

interface Queued<T> {
  item: T;
  done: Deferred<void>;
  signal: AbortSignal;
  onAbort: () => void;
}

/**
 * Feeds a writable stream at most `maxInFlight` messages at a time, in order, so that each
 * message's completion is reported when that message has been written. (Node's Writable
 * gathers everything written while a write is pending into one writev and calls all of their
 * callbacks only when the whole batch is out: with every ring message queued at once, sends
 * completed in waves, and the all-gather of a column, which must wait for the send of its
 * reduce-scatter step, waited for the whole wave.) Two in flight keep the socket busy: one is
 * being written while the next waits in the stream.
 *
 * A message whose signal aborts while it waits is dropped and rejects with the signal's reason.
 */
export class SendQueue<T> {
  private readonly waiting: Queued<T>[] = [];
  private inFlight = 0;

  constructor(
    private readonly write: (item: T) => Promise<void>,
    private readonly maxInFlight = 2,
  ) {}

  /** Resolves when `item` has been written (as `write` reports it). */
  push(item: T, signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.reject(signal.reason);
    const done = deferred<void>();
    const queued: Queued<T> = {
      item,
      done,
      signal,
      onAbort: () => {
        const i = this.waiting.indexOf(queued);
        if (i >= 0) this.waiting.splice(i, 1);
        done.reject(signal.reason);
      },
    };
    signal.addEventListener('abort', queued.onAbort, { once: true });
    this.waiting.push(queued);
    this.pump();
    return done.promise;
  }

  private pump(): void {
    while (this.inFlight < this.maxInFlight && this.waiting.length > 0) {
      const next = this.waiting.shift()!;
      next.signal.removeEventListener('abort', next.onAbort);
      this.inFlight++;
      let written: Promise<void>;
      try {
        written = this.write(next.item);
      } catch (err) {
        written = Promise.reject(err);
      }
      written.then(next.done.resolve, next.done.reject).finally(() => {
        this.inFlight--;
        this.pump();
      });
    }
  }
}
