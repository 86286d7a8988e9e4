import type { EventEmitter } from 'node:events';
import { raceAbort } from '../../shared/abort.js';
import { ClusterError, type ClusterErrorCode } from '../../shared/errors.js';

interface Message {
  type: string;
}

type ErrorMessage = { type: 'error'; message: string; code: string };

/**
 * In-order IPC messages from a child process (or, in a child, from its parent), taken one at a
 * time by type: the next message must be of an expected type, an `error` message rejects, and
 * the other side exiting or disconnecting rejects every current and later wait with PEER_LOST.
 */
export class Inbox<M extends Message> {
  private readonly queue: (M | ErrorMessage)[] = [];
  private wake: (() => void) | undefined;
  private gone: ClusterError | undefined;

  constructor(
    source: EventEmitter,
    private readonly name: string,
  ) {
    source.on('message', (msg: M | ErrorMessage) => {
      this.queue.push(msg);
      this.wake?.();
    });
    const lost = (what: string) => () => {
      this.gone ??= new ClusterError('PEER_LOST', `${name} ${what}`);
      this.wake?.();
    };
    source.once('disconnect', lost('disconnected'));
    source.once('exit', lost('exited'));
  }

  /** The next message, which must have one of `types`. */
  async next<T extends M['type']>(
    types: T | readonly T[],
    signal: AbortSignal,
  ): Promise<Extract<M, { type: T }>> {
    const wanted: readonly string[] = typeof types === 'string' ? [types] : types;
    while (this.queue.length === 0) {
      if (this.gone) throw this.gone;
      await raceAbort(
        new Promise<void>((resolve) => {
          this.wake = resolve;
        }),
        signal,
      );
      this.wake = undefined;
    }
    const msg = this.queue.shift()!;
    if (msg.type === 'error') {
      const { message, code } = msg as ErrorMessage;
      throw new ClusterError(code as ClusterErrorCode, `${this.name}: ${message}`);
    }
    if (!wanted.includes(msg.type)) {
      throw new ClusterError('PROTOCOL', `${this.name} sent '${msg.type}', expected ${wanted.join(' or ')}`);
    }
    return msg as Extract<M, { type: T }>;
  }
}
