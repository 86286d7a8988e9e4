import type { Client, MethodDefinition } from '@grpc/grpc-js';
import {
  type AssignmentMsg,
  coordinatorProto,
  type DoneReportMsg,
  type EpochDecisionMsg,
  type EpochReportMsg,
  type HeartbeatRequestMsg,
  type HeartbeatResponseMsg,
  type JoinRequestMsg,
  type JoinResponseMsg,
  type PositionMsg,
  type ProgressMsg,
  type StepAckMsg,
  type StepReportMsg,
} from '../coordinator/protocol.js';
import { linkSignals, sleep, withDeadline } from '../shared/abort.js';
import { ClusterError, errorMessage, isClusterError } from '../shared/errors.js';
import { type Logger, noopLogger } from '../shared/logging.js';
import { createRpcClient, unaryCall } from '../shared/rpc/client.js';
import { methodOf } from '../shared/rpc/proto.js';

export interface CoordinatorClientOptions {
  address: string;
  logger?: Logger;
  /** Give up after the coordinator has been unreachable this long (--coordinator-timeout). */
  coordinatorTimeoutMs?: number;
  /** Deadline of one unary call (long-polls have none: they wait for the cluster). */
  callTimeoutMs?: number;
}

const { service } = coordinatorProto();
const M = {
  join: methodOf<JoinRequestMsg, JoinResponseMsg>(service, 'Join'),
  heartbeat: methodOf<HeartbeatRequestMsg, HeartbeatResponseMsg>(service, 'Heartbeat'),
  getAssignment: methodOf<
    { workerId: string; knownGeneration: number; completed: ProgressMsg | null },
    AssignmentMsg
  >(service, 'GetAssignment'),
  reportStep: methodOf<StepReportMsg, StepAckMsg>(service, 'ReportStep'),
  reportEpoch: methodOf<EpochReportMsg, EpochDecisionMsg>(service, 'ReportEpoch'),
  reportDone: methodOf<DoneReportMsg, object>(service, 'ReportDone'),
  leave: methodOf<{ workerId: string; reason: string }, object>(service, 'Leave'),
};

/**
 * The worker's side of cluster.proto. Calls that fail because the coordinator is unreachable are
 * retried with capped exponential backoff until `coordinatorTimeoutMs` has passed since the last
 * success; then they fail with COORDINATOR_LOST. Errors the coordinator sent (stale generation,
 * refused join) are not retried: the caller decides.
 */
export class CoordinatorClient {
  private readonly client: Client;
  private readonly address: string;
  private readonly log: Logger;
  private readonly timeoutMs: number;
  private readonly callTimeoutMs: number;
  private lastContactMs = performance.now();

  constructor(options: CoordinatorClientOptions) {
    this.client = createRpcClient(options.address);
    this.address = options.address;
    this.log = options.logger ?? noopLogger;
    this.timeoutMs = options.coordinatorTimeoutMs ?? 60_000;
    this.callTimeoutMs = options.callTimeoutMs ?? 15_000;
  }

  join(req: JoinRequestMsg, signal: AbortSignal): Promise<JoinResponseMsg> {
    return this.retrying('Join', (s) => this.boundedCall(M.join, req, s), signal);
  }

  heartbeat(workerId: string, generation: number, position: PositionMsg, signal: AbortSignal) {
    return this.retrying(
      'Heartbeat',
      (s) => this.boundedCall(M.heartbeat, { workerId, generation, position }, s),
      signal,
    );
  }

  /** `ringFailure`: why this worker's ring of knownGeneration failed, if it did (coordinator/ring-failure.ts). */
  getAssignment(
    workerId: string,
    knownGeneration: number,
    completed: ProgressMsg | null,
    signal: AbortSignal,
    ringFailure = '',
  ) {
    const req = { workerId, knownGeneration, completed, ringFailure };
    return this.retrying(
      'GetAssignment',
      (s) => unaryCall(this.client, M.getAssignment, req, { signal: s }),
      signal,
    );
  }

  reportStep(req: StepReportMsg, signal: AbortSignal): Promise<StepAckMsg> {
    return this.retrying('ReportStep', (s) => this.boundedCall(M.reportStep, req, s), signal);
  }

  reportEpoch(req: EpochReportMsg, signal: AbortSignal): Promise<EpochDecisionMsg> {
    return this.retrying(
      'ReportEpoch',
      (s) => unaryCall(this.client, M.reportEpoch, req, { signal: s }),
      signal,
    );
  }

  async reportDone(req: DoneReportMsg, signal: AbortSignal): Promise<void> {
    await this.retrying('ReportDone', (s) => this.boundedCall(M.reportDone, req, s), signal);
  }

  /** Best effort: a worker that cannot say goodbye is timed out by the heartbeat check instead. */
  async leave(workerId: string, reason: string): Promise<void> {
    try {
      await unaryCall(this.client, M.leave, { workerId, reason }, { deadlineMs: 2000 });
    } catch (err) {
      this.log.debug('leave failed', { error: errorMessage(err) });
    }
  }

  close(): Promise<void> {
    this.client.close();
    return Promise.resolve();
  }

  /** A unary call under the per-call deadline (its timer is cleared as soon as the call settles). */
  private boundedCall<Req, Res>(
    method: MethodDefinition<Req, Res>,
    req: Req,
    signal: AbortSignal,
  ): Promise<Res> {
    return withDeadline(signal, this.callTimeoutMs, (s) =>
      unaryCall(this.client, method, req, { signal: s }),
    );
  }

  private async retrying<T>(
    rpc: string,
    call: (signal: AbortSignal) => Promise<T>,
    signal: AbortSignal,
  ): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      signal.throwIfAborted();
      try {
        const result = await call(signal);
        this.lastContactMs = performance.now();
        return result;
      } catch (err) {
        if (signal.aborted || !isUnreachable(err)) throw err;
        const silentMs = performance.now() - this.lastContactMs;
        if (silentMs > this.timeoutMs) {
          const silent = `${Math.round(silentMs / 1000)} s (--coordinator-timeout ${this.timeoutMs / 1000})`;
          throw new ClusterError(
            'COORDINATOR_LOST',
            `${rpc}: no answer from the coordinator at ${this.address} for ${silent}`,
            { cause: err },
          );
        }
        const backoffMs = Math.min(2000, 100 * 2 ** Math.min(attempt, 5));
        this.log.warn('coordinator unreachable, retrying', {
          rpc,
          attempt,
          backoffMs,
          error: errorMessage(err),
        });
        await sleep(backoffMs, linkSignals(signal));
      }
    }
  }
}

/** Transport failures (coordinator down or restarting), as opposed to answers it sent. */
function isUnreachable(err: unknown): boolean {
  // A per-call deadline (shared/abort.ts deadline) fires as a TimeoutError: the coordinator did not answer.
  if (err instanceof Error && err.name === 'TimeoutError') return true;
  return isClusterError(err, 'PEER_LOST') || isClusterError(err, 'TIMEOUT');
}
