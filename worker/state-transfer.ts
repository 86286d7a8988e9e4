import type { Client, ServerWritableStream, ServiceDefinition } from '@grpc/grpc-js';
import type { PackageDefinition } from '@grpc/proto-loader';
import { decodeCheckpoint, encodeCheckpoint } from '../coordinator/checkpoint/format.js';
import { deferred, raceAbort, withDeadline } from '../shared/abort.js';
import { ClusterError, errorMessage } from '../shared/errors.js';
import { type Logger, noopLogger } from '../shared/logging.js';
import { openServerStream } from '../shared/rpc/client.js';
import { loadProto, methodOf } from '../shared/rpc/proto.js';
import { callSignal, failStream } from '../shared/rpc/server.js';
import type { Trainer } from './train/trainer.js';
import type { TrainerState } from './train/trainer-state.js';

export const STATE_SERVICE_NAME = 'ssdcluster.state.v1.StateTransfer';
const CHUNK_BYTES = 4 * 1024 * 1024;
/** Bound on one whole transfer, either side (a member may wait for its generation's start first). */
const TRANSFER_TIMEOUT_MS = 120_000;

interface GetStateRequest {
  generation: number;
  globalStep: number;
}

interface StateChunk {
  stateJson: Buffer;
  tensors: Buffer;
}

export function stateProto(): { packageDefinition: PackageDefinition; service: ServiceDefinition } {
  const proto = loadProto('state.proto');
  return { packageDefinition: proto.packageDefinition, service: proto.service(STATE_SERVICE_NAME) };
}

/**
 * The serving side: the worker offers its state for a generation once it stands at the generation's
 * start; requests for that generation wait for the offer (or fail when a newer one replaces it).
 */
export class StateProvider {
  private offer: { generation: number; globalStep: number; state: Promise<TrainerState> } | undefined;
  private changed = deferred<void>();

  constructor(private readonly logger: Logger = noopLogger) {}

  /**
   * Offers a copy of the trainer's state taken now, synchronously. Training goes on after this while
   * peers fetch the offer, so the offer owns its arrays: a fresh copy per offer (one copy per tensor,
   * readStateInto), never a reused slot, since a replaced offer may still be streaming to a peer.
   */
  offerState(generation: number, globalStep: number, source: Pick<Trainer, 'readStateInto'>): void {
    // The executor runs now (the read is synchronous); a failed read rejects the offer's fetches.
    const state = new Promise<TrainerState>((resolve) => resolve(source.readStateInto()));
    this.offer = { generation, globalStep, state };
    state.catch(() => {});
    const previous = this.changed;
    this.changed = deferred();
    previous.resolve();
  }

  implementation() {
    return {
      GetState: (call: ServerWritableStream<GetStateRequest, StateChunk>) => {
        withDeadline(callSignal(call), TRANSFER_TIMEOUT_MS, (signal) => this.serve(call, signal)).catch(
          (err: unknown) => {
            this.logger.warn('state transfer failed', { peer: call.getPeer(), error: errorMessage(err) });
            failStream(call, err, this.logger);
          },
        );
      },
    };
  }

  private async serve(call: ServerWritableStream<GetStateRequest, StateChunk>, signal: AbortSignal) {
    const { generation, globalStep } = call.request;
    while (!this.offer || this.offer.generation < generation) await raceAbort(this.changed.promise, signal);
    const offer = this.offer;
    if (offer.generation !== generation || offer.globalStep !== globalStep) {
      throw new ClusterError(
        'STALE_GENERATION',
        `state of generation ${generation} step ${globalStep} asked; this worker offers generation ${offer.generation} step ${offer.globalStep}`,
      );
    }
    const { stateJson, tensorChunks } = encodeCheckpoint(await offer.state, {
      createdAt: new Date(0).toISOString(),
    });
    call.write({ stateJson: Buffer.from(stateJson), tensors: Buffer.alloc(0) });
    for (const chunk of tensorChunks) {
      for (let at = 0; at < chunk.byteLength; at += CHUNK_BYTES) {
        signal.throwIfAborted();
        const part = Buffer.from(
          chunk.buffer,
          chunk.byteOffset + at,
          Math.min(CHUNK_BYTES, chunk.byteLength - at),
        );
        if (!call.write({ stateJson: Buffer.alloc(0), tensors: part }))
          await raceAbort(onceDrain(call), signal);
      }
    }
    call.end();
    this.logger.info('state sent', { generation, globalStep, peer: call.getPeer() });
  }
}

function onceDrain(call: ServerWritableStream<GetStateRequest, StateChunk>): Promise<void> {
  return new Promise((resolve) => call.once('drain', () => resolve()));
}

/** The receiving side: fetches a member's state for (generation, globalStep). */
export async function fetchState(
  client: Client,
  request: GetStateRequest,
  source: string,
  signal: AbortSignal,
): Promise<TrainerState> {
  const method = methodOf<GetStateRequest, StateChunk>(stateProto().service, 'GetState');
  let stateJson: Buffer | undefined;
  const tensors: Buffer[] = [];
  const onChunk = (chunk: StateChunk) => {
    if (stateJson === undefined) stateJson = Buffer.from(chunk.stateJson);
    else tensors.push(chunk.tensors); // copied once, by the concat below
  };
  await withDeadline(
    signal,
    TRANSFER_TIMEOUT_MS,
    (s) => openServerStream(client, method, request, onChunk, { signal: s }).done,
  );
  if (stateJson === undefined)
    throw new ClusterError('PROTOCOL', `${source}: the state transfer sent nothing`);
  return decodeCheckpoint(source, stateJson, Buffer.concat(tensors)).state;
}
