import http2, { type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2';
import { status as GrpcStatus, Metadata } from '@grpc/grpc-js';
import { ClusterError, errorMessage } from '../../shared/errors.js';
import type { ServerStreamHandle } from '../../shared/rpc/client.js';
import { fromServiceError } from '../../shared/rpc/status.js';
import { GRPC_FRAME_PREFIX_BYTES, writeGrpcFramePrefix } from './chunk-codec.js';
import type { ChunkStreamDecoder } from './chunk-stream-decoder.js';

/**
 * The receiving end of Peer.OpenRing as a minimal gRPC client on node:http2 (one server-streaming
 * call, no compression, no TLS). The server is grpc-js; the wire is plain gRPC over HTTP/2. The
 * grpc-js client would copy every message into a fresh buffer and pass it through its own
 * streams; here the DATA slices go straight into a ChunkStreamDecoder, whose listener gets each
 * payload as views of the slices it arrived in.
 *
 * Protocol of one call:
 *  1. HEADERS (POST path, content-type application/grpc, te trailers), then the request as one
 *     gRPC frame and END_STREAM.
 *  2. Response HEADERS without grpc-status: the server accepted the call (`accepted`). With
 *     grpc-status they are a trailers-only response: the call failed before any message.
 *  3. DATA: Chunk messages, decoded as they arrive.
 *  4. Trailers carry grpc-status, grpc-message and ssd-cluster-code; shared/rpc/status.ts maps
 *     them as it maps a grpc-js client's status. A stream that closes without a status (reset,
 *     connection lost) is PEER_LOST, like grpc-js's UNAVAILABLE.
 */
export interface RingStreamRequest {
  /** `/package.Service/Method`. */
  path: string;
  /** The serialized request message. */
  message: Uint8Array;
}

/** HTTP/2 connections to peers, one per address, reused across generations and calls. */
export class PeerSessions {
  private readonly sessions = new Map<string, ClientHttp2Session>();

  /** `windowBytes`: the flow-control window this end grants (connection and each stream). */
  constructor(private readonly windowBytes: number) {
    raiseMallocThresholds();
  }

  get(address: string): ClientHttp2Session {
    const known = this.sessions.get(address);
    if (known && !known.closed && !known.destroyed) return known;
    const session = http2.connect(`http://${address}`, {
      settings: { initialWindowSize: this.windowBytes },
      // As grpc-js does: Node's default limit degrades a busy session instead of protecting it.
      maxSessionMemory: Number.MAX_SAFE_INTEGER,
    });
    // Connection errors reach every stream of the session as their own 'error'/'close'.
    session.on('error', () => {});
    session.once('remoteSettings', () => {
      if (!session.destroyed) session.setLocalWindowSize(this.windowBytes);
    });
    session.once('close', () => {
      if (this.sessions.get(address) === session) this.sessions.delete(address);
    });
    this.sessions.set(address, session);
    return session;
  }

  close(): void {
    for (const session of this.sessions.values()) session.destroy();
    this.sessions.clear();
  }
}

interface CallStatus {
  code: number;
  details: string;
  headers: IncomingHttpHeaders;
}

/**
 * Opens the call on `session` and feeds the response body to `decoder`. An exception from the
 * decoder (or its listener) cancels the call and rejects `done`.
 */
export function openRingStream(
  session: ClientHttp2Session,
  request: RingStreamRequest,
  decoder: ChunkStreamDecoder,
): ServerStreamHandle {
  const stream = session.request({
    ':method': 'POST',
    ':path': request.path,
    'content-type': 'application/grpc',
    te: 'trailers',
    'grpc-accept-encoding': 'identity',
  });
  let cancelReason: unknown;
  let status: CallStatus | undefined;
  let streamError: unknown;
  const cancel = (reason: unknown = new ClusterError('ABORTED', `${request.path} cancelled`)) => {
    cancelReason ??= reason;
    if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
  };
  const accepted = new Promise<void>((resolve) => {
    stream.once('response', (headers) => {
      if (headers['grpc-status'] !== undefined) status = statusOf(headers);
      else if (headers[':status'] !== 200) status = httpFailure(headers);
      else resolve();
    });
  });
  stream.on('data', (slice: Buffer) => {
    if (cancelReason !== undefined) return;
    try {
      decoder.write(slice);
    } catch (err) {
      cancel(err);
    }
  });
  stream.once('trailers', (headers) => {
    status = statusOf(headers);
  });
  stream.on('error', (err) => {
    streamError ??= err;
  });
  const done = new Promise<void>((resolve, reject) => {
    stream.once('close', () => {
      if (cancelReason !== undefined) return reject(cancelReason);
      if (!status) return reject(lost(request.path, stream.rstCode, streamError));
      if (status.code !== GrpcStatus.OK) return reject(fromServiceError(request.path, serviceError(status)));
      try {
        decoder.end();
        resolve();
      } catch (err) {
        reject(err);
      }
    });
  });
  stream.end(frame(request.message));
  const acceptedOrFailed = Promise.race([accepted, done]);
  acceptedOrFailed.catch(() => {});
  done.catch(() => {});
  return { accepted: acceptedOrFailed, done, cancel };
}

/** One uncompressed gRPC frame: the prefix, then the message. */
function frame(message: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(GRPC_FRAME_PREFIX_BYTES + message.byteLength);
  writeGrpcFramePrefix(out, message.byteLength);
  out.set(message, GRPC_FRAME_PREFIX_BYTES);
  return out;
}

function statusOf(headers: IncomingHttpHeaders): CallStatus {
  const code = Number(headers['grpc-status']);
  const raw = headers['grpc-message'];
  let details = typeof raw === 'string' ? raw : '';
  try {
    details = decodeURIComponent(details);
  } catch {
    // Not percent-encoded as the spec asks: keep it as it came.
  }
  return { code: Number.isInteger(code) ? code : GrpcStatus.UNKNOWN, details, headers };
}

/** A non-200 HTTP status, mapped as gRPC's HTTP-to-status table does for the ones that matter. */
function httpFailure(headers: IncomingHttpHeaders): CallStatus {
  const http = Number(headers[':status']);
  const unavailable = [429, 502, 503, 504].includes(http);
  return {
    code: unavailable ? GrpcStatus.UNAVAILABLE : GrpcStatus.UNKNOWN,
    details: `received HTTP status ${http}`,
    headers: {},
  };
}

function serviceError(s: CallStatus) {
  const metadata = Metadata.fromHttp2Headers(s.headers);
  return Object.assign(new Error(s.details), { code: s.code, details: s.details, metadata });
}

function lost(path: string, rstCode: number | undefined, cause: unknown): ClusterError {
  const why =
    cause === undefined ? `the stream closed with HTTP/2 code ${rstCode ?? 'none'}` : errorMessage(cause);
  return new ClusterError('PEER_LOST', `${path} failed with UNAVAILABLE: ${why}`, { cause });
}

let mallocThresholdsRaised = false;

/**
 * Node's HTTP/2 session reads the socket into a fresh 64 KiB buffer per read (about 1000 per
 * 64 MiB received) and frees each when the GC collects it. glibc returns the top of its heap to
 * the kernel once more than M_TRIM_THRESHOLD (128 KiB by default) is free there, so that churn
 * costs thousands of page faults per all-reduce (measured 5-15 k, +20 ms of kernel time per
 * rank). glibc raises its mmap threshold to the size of any mmap'd block that is freed (up to
 * 32 MiB) and its trim threshold to twice that; allocating and dropping one 31 MiB buffer once
 * per process does that, as MALLOC_TRIM_THRESHOLD_ would from the environment. Elsewhere (musl,
 * another allocator) this is one short-lived allocation of untouched memory.
 */
function raiseMallocThresholds(): void {
  if (mallocThresholdsRaised) return;
  mallocThresholdsRaised = true;
  new ArrayBuffer(31 * 1024 * 1024);
}
