import { Worker } from 'node:worker_threads';
import type { PositionMsg } from '../coordinator/protocol.js';
import { linkSignals } from '../shared/abort.js';
import { ClusterError } from '../shared/errors.js';
import type { Logger } from '../shared/logging.js';
import { PROTO_DIR } from '../shared/rpc/proto.js';
import type { CoordinatorClient } from './coordinator-client.js';

export interface GenerationScope {
  /** Aborted when the coordinator moves to a newer generation, or the coordinator is lost. */
  signal: AbortSignal;
  end(): void;
}

/**
 * A worker's link to the coordinator while it trains: the heartbeat (position in, generation out)
 * and the signal of the current generation. Heartbeats run on their own thread
 * (heartbeat-thread.mjs), so a long synchronous training step never makes this worker look dead.
 * An answer with a newer generation aborts the generation's signal with STALE_GENERATION, so an
 * all-reduce stuck on a lost peer stops at its next await.
 */
export interface WorkerSession {
  readonly client: CoordinatorClient;
  /** Where this worker is; every heartbeat carries it (stall reports name it). */
  position: PositionMsg;
  readonly generationSignal: AbortSignal;
  enterGeneration(generation: number, parent: AbortSignal): GenerationScope;
  close(): Promise<void>;
}

export function createWorkerSession(o: {
  client: CoordinatorClient;
  address: string;
  workerId: string;
  intervalMs: number;
  coordinatorTimeoutMs: number;
  logger: Logger;
}): WorkerSession {
  let generation = 0;
  let position: PositionMsg = { epoch: 0, step: 0, phase: 'idle', bucket: 0 };
  let current = new AbortController();
  let scope: AbortSignal = current.signal;
  const thread = new Worker(new URL('./heartbeat-thread.mjs', import.meta.url), {
    workerData: {
      address: o.address,
      workerId: o.workerId,
      intervalMs: o.intervalMs,
      coordinatorTimeoutMs: o.coordinatorTimeoutMs,
      protoDir: PROTO_DIR,
    },
  });
  thread.unref();
  const publish = () => thread.postMessage({ type: 'position', generation, position });
  thread.on(
    'message',
    (m: { type: 'generation'; generation: number } | { type: 'lost'; message: string }) => {
      if (m.type === 'generation' && m.generation > generation && generation > 0 && !current.signal.aborted) {
        o.logger.info('newer generation announced', { generation, announced: m.generation });
        current.abort(
          new ClusterError('STALE_GENERATION', `the coordinator moved on to generation ${m.generation}`),
        );
      } else if (m.type === 'lost') {
        o.logger.error('heartbeat failed', { error: m.message });
        current.abort(new ClusterError('COORDINATOR_LOST', m.message));
      }
    },
  );
  thread.on('error', (err) => o.logger.error('heartbeat thread failed', { error: err.message }));
  return {
    client: o.client,
    get position() {
      return position;
    },
    set position(p) {
      position = p;
      publish();
    },
    get generationSignal() {
      return scope;
    },
    enterGeneration(g, parent) {
      generation = g;
      publish();
      current = new AbortController();
      scope = linkSignals(parent, current.signal);
      const mine = current;
      return { signal: scope, end: () => mine.abort(new ClusterError('ABORTED', `generation ${g} ended`)) };
    },
    async close() {
      thread.postMessage({ type: 'stop' });
      await thread.terminate();
    },
  };
}
