/**
 * The HTTP edge of the metrics: GET /metrics serves a component's Registry in the text exposition
 * format and, on the coordinator, GET /sd serves Prometheus HTTP service discovery (http-sd.ts).
 * Anything else is 404 (405 for another method on a known path). close() is idempotent and also
 * ends idle keep-alive connections, so a scraper cannot hold the process open.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { ClusterError, errorMessage } from '../errors.js';
import { type Logger, noopLogger } from '../logging.js';
import type { TargetGroup } from './http-sd.js';

export interface MetricsServerOptions {
  registry: Registry;
  /** Interface to bind (default 0.0.0.0). */
  host?: string;
  /** 0 picks a free port. */
  port: number;
  /** Serves GET /sd when given. */
  sd?: () => TargetGroup[];
  logger?: Logger;
}

export interface MetricsServer {
  readonly port: number;
  /** host:port as bound (with the host given, or 0.0.0.0). */
  readonly address: string;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

type Route = () => Promise<{ contentType: string; body: string }>;

function routes(o: MetricsServerOptions): Map<string, Route> {
  const table = new Map<string, Route>();
  table.set('/metrics', async () => ({
    contentType: o.registry.contentType,
    body: await o.registry.metrics(),
  }));
  const sd = o.sd;
  if (sd) table.set('/sd', async () => ({ contentType: 'application/json', body: JSON.stringify(sd()) }));
  return table;
}

async function handle(
  table: Map<string, Route>,
  req: IncomingMessage,
  res: ServerResponse,
  log: Logger,
): Promise<void> {
  const path = new URL(req.url ?? '/', 'http://metrics').pathname;
  const route = table.get(path);
  if (!route) return reply(res, 404, 'text/plain', `not found: ${path} (try /metrics)\n`);
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    return reply(res, 405, 'text/plain', `${req.method} ${path}: only GET\n`);
  }
  try {
    const { contentType, body } = await route();
    reply(res, 200, contentType, req.method === 'HEAD' ? '' : body);
  } catch (err) {
    log.error('metrics collection failed', { path, error: errorMessage(err) });
    reply(res, 500, 'text/plain', `collecting ${path} failed: ${errorMessage(err)}\n`);
  }
}

function reply(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, { 'Content-Type': contentType, 'Cache-Control': 'no-store' });
  res.end(body);
}

/** Starts serving; resolves once the port is bound. */
export async function startMetricsServer(o: MetricsServerOptions): Promise<MetricsServer> {
  const log = o.logger ?? noopLogger;
  const table = routes(o);
  const server = createServer((req, res) => void handle(table, req, res, log));
  const host = o.host ?? '0.0.0.0';
  await new Promise<void>((resolve, reject) => {
    const onListenError = (err: Error) =>
      reject(
        new ClusterError('CONFIG', `metrics server: cannot listen on ${host}:${o.port}: ${err.message}`, {
          cause: err,
        }),
      );
    server.once('error', onListenError);
    server.listen(o.port, host, () => {
      server.off('error', onListenError);
      server.on('error', (err) => log.error('metrics server error', { error: err.message }));
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
    return closing;
  };
  return { port, address: `${host}:${port}`, close, [Symbol.asyncDispose]: close };
}
