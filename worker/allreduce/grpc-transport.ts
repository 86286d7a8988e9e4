import { type Deadline, type Deferred, deadline, deferred, raceAbort, sleep } from '../../shared/abort.js';
import { ClusterError, errorMessage, isClusterError } from '../../shared/errors.js';
import { type Logger, noopLogger } from '../../shared/logging.js';
import type { ServerStreamHandle } from '../../shared/rpc/client.js';
import { methodOf } from '../../shared/rpc/proto.js';
import {
  type ChunkSink,
  type OpenRingRequest,
  PEER_MAX_MESSAGE_BYTES,
  type PeerHandler,
  type PingReply,
  peerProto,
  type WireChunk,
} from '../peer-service.js';
import { ChunkStreamDecoder } from './chunk-stream-decoder.js';
import { InboundChunks } from './inbound-chunks.js';
import { Mailbox } from './mailbox.js';
import { payloadByteLength } from './payload.js';
import { openRingStream, PeerSessions } from './ring-stream-client.js';
import { neighbours } from './schedule.js';
import {
  type ChunkKey,
  type ChunkMsg,
  type PayloadReceiver,
  type RingTransport,
  staleError,
} from './transport.js';

/**
 * RingTransport over proto/peer.proto. Each rank is a gRPC server for its right neighbour and a
 * client of its left one:
 *  1. join(membership) moves to a new generation: the streams of the old one end, and the mailbox
 *     rejects its waiters with STALE_GENERATION.
 *  2. The rank opens OpenRing(generation, rank, layoutHash) to its left neighbour and waits for
 *     the initial metadata (accepted). A left neighbour still in an older generation holds the
 *     call until it joins the same one; one already in a newer generation answers
 *     FAILED_PRECONDITION (STALE_GENERATION). A different layout hash is refused (PROTOCOL).
 *  3. Concurrently it waits until its right neighbour has opened the same call on it; sendRight
 *     writes chunks on that stream, so this rank's chunks arrive at the right neighbour as the
 *     responses of a call the RECEIVER made (its large client flow-control window applies).
 *  4. Every received chunk is checked (fields, generation) and goes through the mailbox: into
 *     the ring's buffer as it arrives when the ring already waits for it, else kept until asked
 *     for (inbound-chunks.ts). A stream that ends or fails inside its generation fails that
 *     generation's receives with PEER_LOST.
 */
export const DEFAULT_FLOW_CONTROL_WINDOW_BYTES = 16 * 1024 * 1024;
export const DEFAULT_CONNECT_TIMEOUT_MS = 15_000;

/**
 * Node.js flags for a process that runs the gRPC ring; spawners put them on the node command line
 * (execArgv: V8 refuses them in NODE_OPTIONS and v8.setFlagsFromString is too late). With V8's
 * default initial old-generation limit, a small heap (~11 MB live) sits just below it, and the
 * few MB an all-reduce promotes start a mark-compact every time: measured with `bench allreduce`
 * (2 processes, 64 MiB, 2 MiB chunks), 70 mark-compacts in 22 all-reduces and ~105 ms CPU per
 * all-reduce and rank without the flag, 6 (at startup) and ~68 ms with it. Shared 2-core machine.
 */
export const RING_NODE_FLAGS: readonly string[] = ['--initial-old-space-size=128'];

export interface RingMembership {
  generation: number;
  rank: number;
  size: number;
  /** host:port of the left neighbour's peer server (unused when size is 1). */
  leftAddress: string;
  /** BucketPlan.hash agreed at join; neighbours must match. */
  layoutHash: string;
}

export interface GrpcRingTransportOptions {
  logger?: Logger;
  flowControlWindowBytes?: number;
  maxMessageBytes?: number;
  /** Deadline for join() and for a neighbour to catch up with a generation. */
  connectTimeoutMs?: number;
}

/** The outgoing stream of one generation. */
interface Outbound {
  generation: number;
  sink: Deferred<ChunkSink>;
  /** Resolved when the generation is over: the OpenRing handler returns and the stream ends. */
  released: Deferred<void>;
  attached: boolean;
}

export class GrpcRingTransport implements RingTransport, PeerHandler {
  private membership: RingMembership | undefined;
  private readonly mailbox = new Mailbox(0);
  private outbound: Outbound | undefined;
  private inbound: { generation: number; stream: ServerStreamHandle } | undefined;
  private readonly sessions: PeerSessions;
  private generationChanged = deferred<void>();
  private closed = false;
  private readonly logger: Logger;
  private readonly opts: Required<Omit<GrpcRingTransportOptions, 'logger'>>;
  bytesSent = 0;
  bytesReceived = 0;

  constructor(options: GrpcRingTransportOptions = {}) {
    this.logger = options.logger ?? noopLogger;
    this.opts = {
      flowControlWindowBytes: options.flowControlWindowBytes ?? DEFAULT_FLOW_CONTROL_WINDOW_BYTES,
      maxMessageBytes: options.maxMessageBytes ?? PEER_MAX_MESSAGE_BYTES,
      connectTimeoutMs: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    };
    this.sessions = new PeerSessions(this.opts.flowControlWindowBytes);
  }

  /** Chunks of an older generation that arrived and were dropped. */
  get staleRejected(): number {
    return this.mailbox.staleRejected;
  }

  get generation(): number | undefined {
    return this.membership?.generation;
  }

  /** Enters `m.generation` and resolves once both ring streams of this rank are open. */
  async join(m: RingMembership, signal: AbortSignal): Promise<void> {
    this.assertOpen();
    const current = this.membership?.generation;
    if (current !== undefined && m.generation <= current)
      throw new ClusterError(
        'STALE_GENERATION',
        `cannot join generation ${m.generation}: already in ${current}`,
      );
    this.endGeneration(staleError(current ?? 0, m.generation));
    this.membership = m;
    this.mailbox.advance(m.generation);
    this.outbound = { generation: m.generation, sink: deferred(), released: deferred(), attached: false };
    this.outbound.sink.promise.catch(() => {});
    this.generationChanged.resolve();
    this.generationChanged = deferred();
    if (m.size === 1) return;
    const limit = deadline(signal, this.opts.connectTimeoutMs);
    try {
      await Promise.all([
        this.openInbound(m, limit.signal),
        raceAbort(this.outbound.sink.promise, limit.signal),
      ]);
    } catch (err) {
      throw this.explainJoin(m, limit, err);
    } finally {
      limit.clear();
    }
  }

  async sendRight(msg: ChunkMsg, signal: AbortSignal): Promise<void> {
    const out = this.outbound;
    if (!out || msg.generation !== out.generation) throw staleError(msg.generation, out?.generation ?? 0);
    const sink = await raceAbort(out.sink.promise, signal);
    await sink.write(msg, signal);
    this.bytesSent += payloadByteLength(msg.bytes);
  }

  recvLeft(key: ChunkKey, signal: AbortSignal): Promise<ChunkMsg> {
    return this.mailbox.take(key, signal);
  }

  recvLeftInto(key: ChunkKey, receiver: PayloadReceiver, signal: AbortSignal): Promise<void> {
    return this.mailbox.takeInto(key, receiver, signal);
  }

  ping(): PingReply {
    const m = this.membership;
    return {
      generation: m?.generation ?? 0,
      rank: m?.rank ?? 0,
      size: m?.size ?? 0,
      layoutHash: m?.layoutHash ?? '',
    };
  }

  /** Peer.OpenRing: the right neighbour asks for this rank's chunks of `request.generation`. */
  async openRing(request: OpenRingRequest, sink: ChunkSink, signal: AbortSignal): Promise<void> {
    const out = await this.outboundFor(request, signal);
    if (out.attached)
      throw protocol(`rank ${request.fromRank} opened a second ring stream in one generation`);
    out.attached = true;
    sink.accept();
    out.sink.resolve(sink);
    // The stream lives until the generation ends, the transport closes or the receiver leaves.
    // When the receiver leaves first, later writes reject through `sink.gone` (PEER_LOST).
    await Promise.race([out.released.promise, sink.gone.catch(() => {}), abortedOf(signal)]);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.endGeneration(new ClusterError('ABORTED', 'the ring transport is closed'));
    this.generationChanged.resolve();
    this.sessions.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  private assertOpen(): void {
    if (this.closed) throw new ClusterError('ABORTED', 'the ring transport is closed');
  }

  /** Ends the streams of the current generation; their pending sends reject with `reason`. */
  private endGeneration(reason: ClusterError): void {
    const out = this.outbound;
    if (out) {
      out.sink.reject(reason);
      out.released.resolve();
    }
    this.inbound?.stream.cancel(reason);
    this.inbound = undefined;
    if (this.membership) this.mailbox.fail(this.membership.generation, reason);
  }

  /** Waits (bounded) for this rank to reach the requested generation and checks who is asking. */
  private async outboundFor(request: OpenRingRequest, signal: AbortSignal): Promise<Outbound> {
    const limit = deadline(signal, this.opts.connectTimeoutMs);
    try {
      while (!this.closed && (this.membership?.generation ?? -1) < request.generation) {
        await raceAbort(this.generationChanged.promise, limit.signal);
      }
    } finally {
      limit.clear();
    }
    this.assertOpen();
    const m = this.membership!;
    if (request.generation < m.generation) throw staleError(request.generation, m.generation);
    const right = neighbours(m.rank, m.size).right;
    if (request.fromRank !== right || m.size === 1)
      throw protocol(
        `rank ${request.fromRank} is not the right neighbour of rank ${m.rank} (that is rank ${right})`,
      );
    if (request.layoutHash !== m.layoutHash)
      throw protocol(
        `layout hash ${request.layoutHash} of rank ${request.fromRank} differs from ${m.layoutHash}`,
      );
    return this.outbound!;
  }

  /** Opens the stream from the left neighbour, retrying while its server is not reachable yet. */
  private async openInbound(m: RingMembership, signal: AbortSignal): Promise<void> {
    const method = methodOf<OpenRingRequest, WireChunk>(peerProto().service, 'OpenRing');
    const request: OpenRingRequest = { generation: m.generation, fromRank: m.rank, layoutHash: m.layoutHash };
    const call = { path: method.path, message: method.requestSerialize(request) };
    const from = `left neighbour rank ${neighbours(m.rank, m.size).left} at ${m.leftAddress}`;
    for (let attempt = 0; ; attempt++) {
      const route = new InboundChunks(this.mailbox, m.generation, from, (bytes) => {
        this.bytesReceived += bytes;
      });
      const decoder = new ChunkStreamDecoder(this.opts.maxMessageBytes, route);
      const stream = openRingStream(this.sessions.get(m.leftAddress), call, decoder);
      try {
        await raceAbort(stream.accepted, signal);
      } catch (err) {
        stream.cancel(err);
        if (!isClusterError(err, 'PEER_LOST') || signal.aborted) throw err;
        await sleep(Math.min(20 * 2 ** attempt, 500), signal);
        continue;
      }
      if (this.membership?.generation !== m.generation) return stream.cancel();
      this.inbound = { generation: m.generation, stream };
      stream.done.then(
        () => this.onInboundEnd(m.generation, `${from} ended the ring stream`),
        (err) => this.onInboundEnd(m.generation, `${from} failed: ${errorMessage(err)}`, err),
      );
      return;
    }
  }

  private onInboundEnd(generation: number, message: string, cause?: unknown): void {
    if (this.closed || this.membership?.generation !== generation) return;
    this.logger.warn('ring stream from the left neighbour ended', { generation, error: message });
    this.mailbox.fail(generation, new ClusterError('PEER_LOST', message, { cause }));
  }

  private explainJoin(m: RingMembership, limit: Deadline, err: unknown): unknown {
    // The caller's own abort passes through; only this call's deadline becomes a TIMEOUT.
    if (!limit.timedOut) return err;
    const { left, right } = neighbours(m.rank, m.size);
    return new ClusterError(
      'TIMEOUT',
      `rank ${m.rank} could not open the ring of generation ${m.generation} within ${this.opts.connectTimeoutMs} ms ` +
        `(left neighbour rank ${left} at ${m.leftAddress}; right neighbour rank ${right} must connect to this rank)`,
      { cause: err },
    );
  }
}

function protocol(message: string): ClusterError {
  return new ClusterError('PROTOCOL', message);
}

function abortedOf(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}
