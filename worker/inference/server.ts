/**
 * The HTTP edge of SageMaker's hosting contract (decisions in http-routing.ts) over node:http.
 *
 * Lifecycle: startInferenceServer listens at once, in state 'loading' (/ping answers 503, so a load
 * balancer waits); ready(predictor) -> 'ready'; close() -> 'closing': the listener stops, idle
 * keep-alive connections are closed, responses say `Connection: close`, invocations in progress get up
 * to closeGraceMs to finish, then every connection is cut -> 'closed'.
 *
 * Invocations: the body is read up to maxBodyBytes (413 past it), decoded and predicted under a per-request signal that aborts when the client goes
 * away. At most maxInFlight run at once (503 past that); the predictor batches them onto one forward
 * pass at a time. One log line per request: method, path, status, bytes, ms.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { ClusterError, errorMessage } from '../../shared/errors.js';
import type { Logger } from '../../shared/logging.js';
import {
  bodyTooLarge,
  EMPTY_BODY,
  errorBody,
  type RequestHead,
  routeRequest,
  type ServerState,
  statusOfError,
} from './http-routing.js';
import { formatPrediction } from './prediction-json.js';
import type { Predictor } from './predictor.js';

export const DEFAULT_MAX_IN_FLIGHT = 32;
export const DEFAULT_CLOSE_GRACE_MS = 10_000;
/** A refused body is read and dropped up to max(maxBodyBytes, this) before the connection is cut. */
const MIN_DISCARD_BYTES = 16 * 1024 * 1024;

export interface InferenceServerOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  maxBodyBytes: number;
  logger: Logger;
  maxInFlight?: number;
  closeGraceMs?: number;
}

export interface InferenceServer {
  readonly port: number;
  /** http://host:port */
  readonly url: string;
  readonly state: ServerState;
  /** Starts answering /ping with 200 and serving /invocations. */
  ready(predictor: Pick<Predictor, 'predict'>): void;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

interface Outcome {
  status: number;
  bytes?: number;
  error?: string;
}

function send(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(body),
    ...headers,
  });
  res.end(body);
}

/**
 * The body, or null as soon as it grows past maxBytes: the rest is left unread (not `for await`,
 * whose early exit would destroy the socket before the 413 is sent).
 */
function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const stop = () => {
      req.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= maxBytes) return void chunks.push(chunk);
      stop();
      req.pause();
      resolve(null);
    };
    const onEnd = () => {
      stop();
      resolve(Buffer.concat(chunks, size));
    };
    const onError = (err: Error) => {
      stop();
      reject(err);
    };
    const onClose = () => onError(new ClusterError('ABORTED', 'the client closed the connection mid-body'));
    req.on('data', onData).on('end', onEnd).on('error', onError).on('close', onClose);
  });
}

/**
 * After a refusal, reads and drops the rest of the body so the connection can be reused and the
 * client, still sending, gets to read the answer (closing a socket with unread data makes the kernel
 * send a reset, which can destroy the answer in flight). Past `capBytes` more, the socket is cut.
 */
function discardBody(req: IncomingMessage, capBytes: number): void {
  let dropped = 0;
  req.on('data', (chunk: Buffer) => {
    dropped += chunk.length;
    if (dropped > capBytes) req.socket.destroy();
  });
  req.resume();
}

function headOf(req: IncomingMessage): RequestHead {
  const length = req.headers['content-length'];
  const path = (req.url ?? '/').split('?')[0]!;
  return {
    method: req.method ?? 'GET',
    path,
    contentType: req.headers['content-type'],
    contentLength: length !== undefined && /^\d+$/.test(length) ? Number(length) : undefined,
  };
}

/** Listens on host:port; rejects with a CONFIG error naming --port when it cannot. */
async function listen(server: Server, host: string, port: number): Promise<number> {
  server.listen(port, host);
  try {
    await once(server, 'listening');
  } catch (err) {
    throw new ClusterError('CONFIG', `--host ${host} --port ${port}: cannot listen (${errorMessage(err)})`, {
      cause: err,
    });
  }
  return (server.address() as AddressInfo).port;
}

export async function startInferenceServer(options: InferenceServerOptions): Promise<InferenceServer> {
  const { logger, maxBodyBytes } = options;
  const maxInFlight = options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
  const discardCap = Math.max(maxBodyBytes, MIN_DISCARD_BYTES);
  let state: ServerState = 'loading';
  let predictor: Pick<Predictor, 'predict'> | undefined;
  let inFlight = 0;
  const active = new Set<Promise<void>>();

  /** send(), and once closing, `Connection: close` so clients do not reuse the connection. */
  const reply = (res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}) =>
    send(res, status, body, state === 'closing' ? { ...headers, Connection: 'close' } : headers);

  async function invoke(req: IncomingMessage, res: ServerResponse): Promise<Outcome> {
    const client = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished)
        client.abort(new ClusterError('ABORTED', 'the client closed the connection'));
    });
    let body: Buffer | null;
    try {
      body = await readBody(req, maxBodyBytes);
    } catch (err) {
      return { status: 499, error: `client went away: ${errorMessage(err)}` };
    }
    if (body === null) {
      reply(res, 413, errorBody(bodyTooLarge(maxBodyBytes)));
      discardBody(req, discardCap);
      return { status: 413 };
    }
    if (body.length === 0) {
      reply(res, 400, errorBody(EMPTY_BODY));
      return { status: 400 };
    }
    try {
      const rows = await predictor!.predict(body, { signal: client.signal, source: 'request body' });
      reply(res, 200, formatPrediction(rows));
      return { status: 200, bytes: body.length };
    } catch (err) {
      if (client.signal.aborted) return { status: 499, bytes: body.length, error: 'client went away' };
      const status = statusOfError(err);
      reply(
        res,
        status,
        errorBody(status === 500 ? `internal error: ${errorMessage(err)}` : errorMessage(err)),
      );
      return { status, bytes: body.length, error: errorMessage(err) };
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const head = headOf(req);
    const route = routeRequest(head, { state, maxBodyBytes, inFlight, maxInFlight });
    let outcome: Outcome;
    if (route.kind === 'ping') {
      reply(res, 200, JSON.stringify({ status: 'ok' }));
      outcome = { status: 200 };
    } else if (route.kind === 'reject') {
      reply(res, route.status, errorBody(route.message), route.headers);
      discardBody(req, discardCap);
      outcome = { status: route.status, error: route.message };
    } else {
      inFlight++;
      outcome = await invoke(req, res).finally(() => inFlight--);
    }
    const ms = Math.round((performance.now() - started) * 10) / 10;
    const fields = { method: head.method, path: head.path, ...outcome, ms };
    if (outcome.status >= 500 && outcome.status !== 503) logger.error('request failed', fields);
    else logger.info('request', fields);
  }

  const server = createServer((req, res) => {
    const done = handle(req, res).catch((err: unknown) => {
      logger.error('request handler failed', { error: errorMessage(err) });
      send(res, 500, errorBody(`internal error: ${errorMessage(err)}`));
    });
    active.add(done);
    void done.finally(() => active.delete(done));
  });
  const port = await listen(server, options.host, options.port);
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  let closing: Promise<void> | undefined;

  async function shutdown(): Promise<void> {
    state = 'closing';
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    const grace = new AbortController();
    await Promise.race([
      Promise.allSettled([...active]),
      delay(options.closeGraceMs ?? DEFAULT_CLOSE_GRACE_MS, undefined, { signal: grace.signal }).catch(
        () => {},
      ),
    ]);
    grace.abort();
    server.closeAllConnections(); // their invocations see the client go away and settle
    await Promise.allSettled([...active]);
    await closed;
    state = 'closed';
  }

  const close = () => {
    closing ??= shutdown();
    return closing;
  };
  return {
    port,
    url: `http://${host}:${port}`,
    get state() {
      return state;
    },
    ready(p) {
      if (state !== 'loading')
        throw new ClusterError('INTERNAL', `inference server: ready() in state ${state}`);
      predictor = p;
      state = 'ready';
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
