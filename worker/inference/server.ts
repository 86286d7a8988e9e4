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

/** The state and request handling behind startInferenceServer. */
class HttpInferenceServer implements InferenceServer {
  port = 0;
  url = '';
  #state: ServerState = 'loading';
  #predictor: Pick<Predictor, 'predict'> | undefined;
  #inFlight = 0;
  readonly #active = new Set<Promise<void>>();
  readonly #server: Server;
  readonly #options: Required<InferenceServerOptions>;
  #closing: Promise<void> | undefined;

  constructor(options: InferenceServerOptions) {
    this.#options = {
      maxInFlight: DEFAULT_MAX_IN_FLIGHT,
      closeGraceMs: DEFAULT_CLOSE_GRACE_MS,
      ...options,
    };
    this.#server = createServer((req, res) => this.#track(req, res));
  }

  get state(): ServerState {
    return this.#state;
  }

  async listen(): Promise<void> {
    const { host } = this.#options;
    this.port = await listen(this.#server, host, this.#options.port);
    this.url = `http://${host.includes(':') ? `[${host}]` : host}:${this.port}`;
  }

  ready(predictor: Pick<Predictor, 'predict'>): void {
    if (this.#state !== 'loading') {
      throw new ClusterError('INTERNAL', `inference server: ready() in state ${this.#state}`);
    }
    this.#predictor = predictor;
    this.#state = 'ready';
  }

  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #track(req: IncomingMessage, res: ServerResponse): void {
    const done = this.#handle(req, res).catch((err: unknown) => {
      this.#options.logger.error('request handler failed', { error: errorMessage(err) });
      send(res, 500, errorBody(`internal error: ${errorMessage(err)}`));
    });
    this.#active.add(done);
    void done.finally(() => this.#active.delete(done));
  }

  /** send(), and once closing, `Connection: close` so clients do not reuse the connection. */
  #reply(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
    send(res, status, body, this.#state === 'closing' ? { ...headers, Connection: 'close' } : headers);
  }

  #discard(req: IncomingMessage): void {
    discardBody(req, Math.max(this.#options.maxBodyBytes, MIN_DISCARD_BYTES));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const head = headOf(req);
    const { maxBodyBytes, maxInFlight, logger } = this.#options;
    const route = routeRequest(head, {
      state: this.#state,
      maxBodyBytes,
      inFlight: this.#inFlight,
      maxInFlight,
    });
    let outcome: Outcome;
    if (route.kind === 'ping') {
      this.#reply(res, 200, JSON.stringify({ status: 'ok' }));
      outcome = { status: 200 };
    } else if (route.kind === 'reject') {
      this.#reply(res, route.status, errorBody(route.message), route.headers);
      this.#discard(req);
      outcome = { status: route.status, error: route.message };
    } else {
      this.#inFlight++;
      outcome = await this.#invoke(req, res).finally(() => this.#inFlight--);
    }
    const fields = {
      method: head.method,
      path: head.path,
      ...outcome,
      ms: roundMs(performance.now() - started),
    };
    if (outcome.status >= 500 && outcome.status !== 503) logger.error('request failed', fields);
    else logger.info('request', fields);
  }

  async #invoke(req: IncomingMessage, res: ServerResponse): Promise<Outcome> {
    const client = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished)
        client.abort(new ClusterError('ABORTED', 'the client closed the connection'));
    });
    let body: Buffer | null;
    try {
      body = await readBody(req, this.#options.maxBodyBytes);
    } catch (err) {
      return { status: 499, error: `client went away: ${errorMessage(err)}` };
    }
    if (body === null) {
      this.#reply(res, 413, errorBody(bodyTooLarge(this.#options.maxBodyBytes)));
      this.#discard(req);
      return { status: 413 };
    }
    if (body.length === 0) {
      this.#reply(res, 400, errorBody(EMPTY_BODY));
      return { status: 400 };
    }
    return this.#predict(body, res, client.signal);
  }

  async #predict(body: Buffer, res: ServerResponse, signal: AbortSignal): Promise<Outcome> {
    try {
      const rows = await this.#predictor!.predict(body, { signal, source: 'request body' });
      this.#reply(res, 200, formatPrediction(rows));
      return { status: 200, bytes: body.length };
    } catch (err) {
      if (signal.aborted) return { status: 499, bytes: body.length, error: 'client went away' };
      const status = statusOfError(err);
      const message = status === 500 ? `internal error: ${errorMessage(err)}` : errorMessage(err);
      this.#reply(res, status, errorBody(message));
      return { status, bytes: body.length, error: errorMessage(err) };
    }
  }

  async #shutdown(): Promise<void> {
    this.#state = 'closing';
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeIdleConnections();
    const grace = new AbortController();
    const graceOver = delay(this.#options.closeGraceMs, undefined, { signal: grace.signal }).catch(() => {});
    await Promise.race([Promise.allSettled([...this.#active]), graceOver]);
    grace.abort();
    this.#server.closeAllConnections(); // their invocations see the client go away and settle
    await Promise.allSettled([...this.#active]);
    await closed;
    this.#state = 'closed';
  }
}

const roundMs = (ms: number) => Math.round(ms * 10) / 10;

/** Listens on options.host:port in state 'loading'; call ready(predictor) once the model is loaded. */
export async function startInferenceServer(options: InferenceServerOptions): Promise<InferenceServer> {
  const server = new HttpInferenceServer(options);
  await server.listen();
  return server;
}
