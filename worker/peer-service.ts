import type { ServerHttp2Stream } from 'node:http2';
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
  type ChunkHead,
  decodeChunk,
  encodeChunk,
  encodeChunkFrameHead,
  MAX_CHUNK_OVERHEAD_BYTES,
  type WireChunk,
} from './allreduce/chunk-codec.js';
import { joinPayload, payloadByteLength, payloadParts } from './allreduce/payload.js';
import { SendQueue } from './allreduce/send-queue.js';
import type { ChunkDtype, ChunkHeader, ChunkMsg } from './allreduce/transport.js';

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

function toWireHead(msg: ChunkMsg): ChunkHead {
  const { generation, round, step, bucket, chunk, offset } = msg;
  return { generation, round, step, bucket, chunk, offset, dtype: TO_WIRE[msg.dtype] };
}

function toWireChunk(msg: ChunkMsg): WireChunk {
  return { ...toWireHead(msg), data: joinPayload(msg.bytes) };
}

/** Validates the fields of a decoded Chunk; anything malformed is a PROTOCOL error naming the field. */
export function fromWireHead(head: ChunkHead, byteLength: number, from: string): ChunkHeader {
  const dtype = FROM_WIRE[head.dtype];
  const bad = (field: string, value: unknown) =>
    new ClusterError('PROTOCOL', `chunk from ${from}: ${field} ${String(value)} is not valid`);
  if (!dtype) throw bad('dtype', head.dtype);
  for (const field of ['generation', 'round', 'step', 'bucket', 'chunk', 'offset'] as const) {
    if (!Number.isSafeInteger(head[field]) || head[field] < 0) throw bad(field, head[field]);
  }
  if (byteLength % (dtype === 'f16' ? 2 : 4) !== 0) throw bad(`${dtype} data length`, byteLength);
  const { generation, round, step, bucket, chunk, offset } = head;
  return { generation, round, step, bucket, chunk, offset, dtype, byteLength };
}

/** The sending end of one OpenRing stream, as the handler sees it. */
export interface ChunkSink {
  /** Sends the initial metadata: tells the receiver its stream is accepted. */
  accept(): void;
  /** Resolves when the chunk's bytes are written to the connection (the caller may reuse them). */
  write(msg: ChunkMsg, signal: AbortSignal): Promise<void>;
  /** Rejects with PEER_LOST when the receiver goes away. */
  readonly gone: Promise<never>;
  /** True when chunks go to the HTTP/2 stream without a copy (see createSink). */
  readonly zeroCopy: boolean;
}

export interface PeerHandler {
  ping(request: PingRequest): PingReply;
  /** Serves one receiver; the stream ends (OK) when this resolves, with the error's status when it rejects. */
  openRing(request: OpenRingRequest, sink: ChunkSink, signal: AbortSignal): Promise<void>;
}

/**
 * Recycled buffers for encoded chunks, when the sink writes through grpc-js (no reachable HTTP/2
 * stream). A buffer goes back when grpc-js reports its write done: grpc-js copies a message into
 * its own frame while writing it, so nothing reads it by then.
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
type OpenRingCall = ServerWritableStream<OpenRingRequest, OutgoingChunk>;

/**
 * The HTTP/2 stream under a grpc-js server call. grpc-js 1.14 keeps it as `stream` on the call
 * object it hands the ServerWritableStream (`call`), behind one `nextCall` per server
 * interceptor; another layout yields undefined and the sink falls back to writing through
 * grpc-js. test/worker/peer-service.test.ts checks that the installed grpc-js takes this path.
 */
function http2StreamOf(call: OpenRingCall): ServerHttp2Stream | undefined {
  let layer: unknown = (call as unknown as { call?: unknown }).call;
  for (let depth = 0; layer && typeof layer === 'object' && depth < 8; depth++) {
    const stream = (layer as { stream?: Partial<ServerHttp2Stream> }).stream;
    if (stream && typeof stream.respond === 'function' && typeof stream.sendTrailers === 'function')
      return stream as ServerHttp2Stream;
    layer = (layer as { nextCall?: unknown }).nextCall;
  }
  return undefined;
}

/**
 * Writes one chunk as a gRPC frame straight to the HTTP/2 stream: a small head (frame prefix and
 * protobuf fields, chunk-codec.ts) and the payload itself, corked into one writev. The payload
 * is not copied in user space (grpc-js would copy the message into a fresh frame buffer). Node
 * calls back once the bytes have gone to the socket, so the caller may then reuse the payload
 * memory. The frame is the one grpc-js would write, and ordering with grpc-js's own writes
 * (headers first, trailers last) is the stream's.
 */
function writeFrame(stream: ServerHttp2Stream, msg: ChunkMsg): Promise<void> {
  const parts = payloadParts(msg.bytes);
  const head = encodeChunkFrameHead(toWireHead(msg), payloadByteLength(msg.bytes));
  return new Promise<void>((resolve, reject) => {
    const done = (err: Error | null | undefined) => (err ? reject(err) : resolve());
    stream.cork();
    stream.write(head, parts.length === 0 ? done : undefined);
    parts.forEach((part, i) => {
      stream.write(part, i === parts.length - 1 ? done : undefined);
    });
    stream.uncork();
  });
}

/** The same frame through grpc-js (which copies it), from a recycled encode buffer. */
function writeMessage(call: OpenRingCall, pool: EncodeBufferPool, msg: ChunkMsg): Promise<void> {
  const buffer = pool.take(payloadByteLength(msg.bytes) + MAX_CHUNK_OVERHEAD_BYTES);
  const encoded = encodeChunk(toWireChunk(msg), buffer);
  return new Promise<void>((resolve, reject) => {
    call.write(encoded, (err: Error | null | undefined) => {
      if (err) return reject(err);
      pool.give(buffer);
      resolve();
    });
  });
}

function createSink(call: OpenRingCall): ChunkSink {
  const gone = deferred<never>();
  gone.promise.catch(() => {});
  const peer = call.getPeer();
  const lost = () => gone.reject(new ClusterError('PEER_LOST', `ring receiver ${peer} closed its stream`));
  call.once('cancelled', lost);
  const stream = http2StreamOf(call);
  stream?.on('error', lost);
  const pool = new EncodeBufferPool();
  const accept = () => call.sendMetadata(new Metadata());
  const queue = new SendQueue<ChunkMsg>((msg) =>
    stream ? writeFrame(stream, msg) : writeMessage(call, pool, msg),
  );
  return {
    gone: gone.promise,
    accept,
    zeroCopy: stream !== undefined,
    write(msg, signal) {
      if (stream && !stream.headersSent) accept();
      const failed = queue.push(msg, signal).catch((err: unknown) => {
        if (signal.aborted && err === signal.reason) throw err;
        throw new ClusterError('PEER_LOST', `writing to ${peer} failed`, { cause: err });
      });
      return raceAbort(Promise.race([failed, gone.promise]), signal);
    },
  };
}

export function peerServiceImplementation(handler: PeerHandler, logger: Logger = noopLogger) {
  return {
    Ping: unaryHandler<PingRequest, PingReply>((request) => handler.ping(request), logger),
    OpenRing(call: OpenRingCall) {
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
