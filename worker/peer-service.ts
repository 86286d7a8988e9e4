import {
  Metadata,
  type MethodDefinition,
  type ServerWritableStream,
  type ServiceDefinition,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import type { PackageDefinition } from '@grpc/proto-loader';
import { deferred, raceAbort } from '../shared/abort.js';
import { ClusterError, errorMessage } from '../shared/errors.js';
import { type Logger, noopLogger } from '../shared/logging.js';
import { addHealthAndReflection, type HealthReporter } from '../shared/rpc/health.js';
import { loadProto } from '../shared/rpc/proto.js';
import { callSignal, failStream, RpcServer, unaryHandler } from '../shared/rpc/server.js';
import {
  decodeChunk,
  encodeChunk,
  MAX_CHUNK_OVERHEAD_BYTES,
  type WireChunk,
} from './allreduce/chunk-codec.js';
import type { ChunkDtype, ChunkMsg } from './allreduce/transport.js';

export type { WireChunk };

/**
 * The worker's peer endpoint (proto/peer.proto): decodes requests, hands them to a PeerHandler
 * (the ring transport), encodes chunks and maps errors to statuses. No ring logic lives here.
 */
export const PEER_SERVICE_NAME = 'ssdcluster.peer.v1.Peer';
/** Message limit of peer traffic on both ends: ring chunks are at most 16 MiB plus a small header. */
export const PEER_MAX_MESSAGE_BYTES = 32 * 1024 * 1024;

/**
 * peer.proto as grpc-js sees it, with the hot method's Chunk responses (de)serialised by
 * chunk-codec.ts instead of proto-loader (same wire format; see there why).
 */
export function peerProto(): { packageDefinition: PackageDefinition; service: ServiceDefinition } {
  cached ??= buildPeerProto();
  return cached;
}

let cached: { packageDefinition: PackageDefinition; service: ServiceDefinition } | undefined;

function buildPeerProto() {
  const proto = loadProto('peer.proto');
  const generic = proto.service(PEER_SERVICE_NAME);
  const openRing: MethodDefinition<OpenRingRequest, OutgoingChunk> = {
    ...(generic.OpenRing as MethodDefinition<OpenRingRequest, OutgoingChunk>),
    responseSerialize: (c) => (Buffer.isBuffer(c) ? c : encodeChunk(c)),
    responseDeserialize: decodeChunk,
  };
  return { packageDefinition: proto.packageDefinition, service: { ...generic, OpenRing: openRing } };
}

export interface PingRequest {
  generation: number;
}
export interface PingReply {
  generation: number;
  rank: number;
  size: number;
  layoutHash: string;
}
export interface OpenRingRequest {
  generation: number;
  fromRank: number;
  layoutHash: string;
}
type WireDtype = WireChunk['dtype'];

const TO_WIRE: Record<ChunkDtype, WireDtype> = { f32: 'DTYPE_F32', f16: 'DTYPE_F16' };
const FROM_WIRE: Record<string, ChunkDtype> = { DTYPE_F32: 'f32', DTYPE_F16: 'f16' };

export function toWireChunk(msg: ChunkMsg): WireChunk {
  const { generation, round, step, bucket, chunk, offset } = msg;
  return { generation, round, step, bucket, chunk, offset, dtype: TO_WIRE[msg.dtype], data: msg.bytes };
}

/** Validates a decoded Chunk; anything malformed is a PROTOCOL error naming the field. */
export function fromWireChunk(wire: WireChunk, from: string): ChunkMsg {
  const dtype = FROM_WIRE[wire.dtype];
  const bad = (field: string, value: unknown) =>
    new ClusterError('PROTOCOL', `chunk from ${from}: ${field} ${String(value)} is not valid`);
  if (!dtype) throw bad('dtype', wire.dtype);
  for (const field of ['generation', 'round', 'step', 'bucket', 'chunk', 'offset'] as const) {
    if (!Number.isSafeInteger(wire[field]) || wire[field] < 0) throw bad(field, wire[field]);
  }
  if (wire.data.byteLength % (dtype === 'f16' ? 2 : 4) !== 0)
    throw bad(`${dtype} data length`, wire.data.byteLength);
  const { generation, round, step, bucket, chunk, offset } = wire;
  return { generation, round, step, bucket, chunk, offset, dtype, bytes: wire.data };
}

/** The sending end of one OpenRing stream, as the handler sees it. */
export interface ChunkSink {
  /** Sends the initial metadata: tells the receiver its stream is accepted. */
  accept(): void;
  /** Resolves when grpc-js has serialised and written the chunk (the bytes are free again). */
  write(msg: ChunkMsg, signal: AbortSignal): Promise<void>;
  /** Rejects with PEER_LOST when the receiver goes away. */
  readonly gone: Promise<never>;
}

export interface PeerHandler {
  ping(request: PingRequest): PingReply;
  /** Serves one receiver; the stream ends (OK) when this resolves, with the error's status when it rejects. */
  openRing(request: OpenRingRequest, sink: ChunkSink, signal: AbortSignal): Promise<void>;
}

/**
 * Recycled buffers for encoded chunks. A buffer goes back when grpc-js reports its write done:
 * grpc-js copies a message into its own frame while writing it, so nothing reads it by then.
 * Without this every sent chunk costs two fresh 1 MiB allocations instead of one.
 */
class EncodeBufferPool {
  private readonly free: Buffer[] = [];
  constructor(private readonly limit = 32) {}

  /** The most recently returned buffer that fits (the likeliest to still be in cache). */
  take(bytes: number): Buffer {
    const i = this.free.findLastIndex((b) => b.length >= bytes);
    return i >= 0 ? this.free.splice(i, 1)[0]! : Buffer.allocUnsafe(bytes);
  }

  give(buffer: Buffer): void {
    if (this.free.length < this.limit) this.free.push(buffer);
  }
}

/** What the OpenRing stream carries: a chunk, or one already encoded by chunk-codec.ts. */
type OutgoingChunk = WireChunk | Buffer;

function createSink(call: ServerWritableStream<OpenRingRequest, OutgoingChunk>): ChunkSink {
  const gone = deferred<never>();
  gone.promise.catch(() => {});
  const peer = call.getPeer();
  const pool = new EncodeBufferPool();
  call.once('cancelled', () =>
    gone.reject(new ClusterError('PEER_LOST', `ring receiver ${peer} closed its stream`)),
  );
  return {
    gone: gone.promise,
    accept: () => call.sendMetadata(new Metadata()),
    write(msg, signal) {
      const buffer = pool.take(msg.bytes.byteLength + MAX_CHUNK_OVERHEAD_BYTES);
      const encoded = encodeChunk(toWireChunk(msg), buffer);
      const written = new Promise<void>((resolve, reject) => {
        call.write(encoded, (err: Error | null | undefined) => {
          if (err) {
            reject(new ClusterError('PEER_LOST', `writing to ${peer} failed`, { cause: err }));
            return;
          }
          pool.give(buffer);
          resolve();
        });
      });
      return raceAbort(Promise.race([written, gone.promise]), signal);
    },
  };
}

export function peerServiceImplementation(handler: PeerHandler, logger: Logger = noopLogger) {
  return {
    Ping: unaryHandler<PingRequest, PingReply>((request) => handler.ping(request), logger),
    OpenRing(call: ServerWritableStream<OpenRingRequest, OutgoingChunk>) {
      const signal = callSignal(call);
      handler.openRing(call.request, createSink(call), signal).then(
        () => {
          if (!call.cancelled) call.end();
        },
        (err: unknown) => {
          logger.debug('ring stream refused or failed', { peer: call.getPeer(), error: errorMessage(err) });
          failStream(call, err, logger);
        },
      );
    },
  };
}

export interface PeerServer {
  readonly port: number;
  readonly health: HealthReporter;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Starts a gRPC server on `address` serving Peer, grpc.health.v1 and reflection. Ring chunks stay
 * below `maxMessageBytes` (set on both ends; the ring caps chunks at 16 MiB).
 */
export async function startPeerServer(options: {
  handler: PeerHandler;
  address: string;
  logger?: Logger;
  maxMessageBytes?: number;
  /** More services on the same port (the worker's state transfer). */
  extraServices?: readonly {
    name: string;
    service: ServiceDefinition;
    implementation: UntypedServiceImplementation;
    packageDefinition: PackageDefinition;
  }[];
}): Promise<PeerServer> {
  const logger = options.logger ?? noopLogger;
  const server = new RpcServer({
    logger,
    maxMessageBytes: options.maxMessageBytes ?? PEER_MAX_MESSAGE_BYTES,
  });
  const { packageDefinition, service } = peerProto();
  server.addService(service, peerServiceImplementation(options.handler, logger));
  const extra = options.extraServices ?? [];
  for (const e of extra) server.addService(e.service, e.implementation);
  const health = addHealthAndReflection(server, {
    packageDefinitions: [packageDefinition, ...extra.map((e) => e.packageDefinition)],
    services: [PEER_SERVICE_NAME, ...extra.map((e) => e.name)],
  });
  try {
    await server.listen(options.address);
  } catch (err) {
    await server.close();
    throw err;
  }
  const close = async () => {
    health.setServing('', false);
    health.setServing(PEER_SERVICE_NAME, false);
    await server.close();
  };
  return { port: server.port, health, close, [Symbol.asyncDispose]: close };
}
