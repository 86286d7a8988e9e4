import type { PositionMsg } from '../coordinator/protocol.js';
import { linkSignals, sleep } from '../shared/abort.js';
import { ClusterError, errorMessage, isAbortError } from '../shared/errors.js';
import type { Logger } from '../shared/logging.js';
import type { CoordinatorClient } from './coordinator-client.js';

export interface GenerationScope {
  /** Aborted when the coordinator moves to a newer generation, or the coordinator is lost. */
  signal: AbortSignal;
  end(): void;
}

/**
 * A worker's link to the coordinator while it trains: the heartbeat loop (position in, generation
 * out) and the signal of the current generation. A heartbeat answer with a newer generation aborts
 * that signal with STALE_GENERATION, so an all-reduce stuck on a lost peer stops at once.
 */
export interface WorkerSession {
  readonly client: CoordinatorClient;
  /** Where this worker is, sent with every heartbeat (stall reports name it). */
  position: PositionMsg;
  readonly generationSignal: AbortSignal;
  enterGeneration(generation: number, parent: AbortSignal): GenerationScope;
  close(): Promise<void>;
}

export function createWorkerSession(o: {
  client: CoordinatorClient;
  workerId: string;
  intervalMs: number;
  logger: Logger;
}): WorkerSession {
  const stop = new AbortController();
  let generation = 0;
  let current = new AbortController();
  let scope: AbortSignal = current.signal;
  const session: WorkerSession = {
    client: o.client,
    position: { epoch: 0, step: 0, phase: 'idle', bucket: 0 },
    get generationSignal() {
      return scope;
    },
    enterGeneration(g, parent) {
      generation = g;
      current = new AbortController();
      scope = linkSignals(parent, current.signal);
      const mine = current;
      return { signal: scope, end: () => mine.abort(new ClusterError('ABORTED', `generation ${g} ended`)) };
    },
    async close() {
      stop.abort(new ClusterError('ABORTED', 'worker session closed'));
      await loop.catch(() => {});
    },
  };
  const loop = (async () => {
    while (!stop.signal.aborted) {
      try {
        await sleep(o.intervalMs, stop.signal);
        const answer = await o.client.heartbeat(o.workerId, generation, session.position, stop.signal);
        if (answer.generation > generation && generation > 0 && !current.signal.aborted) {
          o.logger.info('newer generation announced', { generation, announced: answer.generation });
          current.abort(
            new ClusterError(
              'STALE_GENERATION',
              `the coordinator moved on to generation ${answer.generation}`,
            ),
          );
        }
      } catch (err) {
        if (stop.signal.aborted && isAbortError(err)) return;
        o.logger.error('heartbeat failed', { error: errorMessage(err) });
        current.abort(err);
        if (err instanceof ClusterError && err.code === 'COORDINATOR_LOST') return;
      }
    }
  })();
  return session;
}
