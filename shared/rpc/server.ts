import {
  type ChannelOptions,
  type handleUnaryCall,
  Server,
  ServerCredentials,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceDefinition,
  setLogger,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { ClusterError } from '../errors.js';
import { type Logger, noopLogger } from '../logging.js';
import { toStatus } from './status.js';

/** Message size limit on both ends unless a component asks for another (ring chunks are far below it). */
export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
export const DEFAULT_CLOSE_GRACE_MS = 2000;

export interface RpcServerOptions {
  maxMessageBytes?: number;
  /** How long close() lets calls finish (tryShutdown) before forceShutdown. */
  closeGraceMs?: number;
  logger?: Logger;
  /** Extra grpc-js server options. */
  channelOptions?: ChannelOptions;
}

/** What grpc-js logs, and then puts first in bindAsync's error, when no address of a bind could be bound. */
const BIND_FAILURE = /^No address added out of total (\d+) resolved/;

let bindFailureLogDropped = false;

/**
 * grpc-js writes a failed bind to stderr itself ("E No address added out of total 1 resolved") before
 * bindAsync's callback gets the same failure as an error, which listen() reports; so a CLI printed a
 * stray line before its own error. Once per process, grpc-js's logger is replaced by one that drops
 * that line and writes everything else as grpc-js's default logger does (a prefix letter, console.error).
 */
function dropBindFailureLog(): void {
  if (bindFailureLogDropped) return;
  bindFailureLogDropped = true;
  const write =
    (prefix: string) =>
    (message?: unknown, ...rest: unknown[]) => {
      if (prefix === 'E' && typeof message === 'string' && BIND_FAILURE.test(message)) return;
      console.error(`${prefix} ${String(message)}`, ...rest);
    };
  setLogger({ error: write('E'), info: write('I'), debug: write('D') });
}

/** bindAsync's error text without grpc-js's preamble: "listen EADDRINUSE: address already in use ...". */
function bindFailureText(err: Error): string {
  const errors = BIND_FAILURE.test(err.message) ? /errors: \[(.*)\]$/s.exec(err.message) : null;
  return errors?.[1] || err.message;
}

/**
 * A grpc-js Server with the lifecycle the house style asks for: `listen(addr)` resolves the
 * bound port, `close()` is idempotent (tryShutdown within a grace period, then forceShutdown),
 * and `await using` works through `Symbol.asyncDispose`.
 */
export class RpcServer {
  readonly server: Server;
  private readonly graceMs: number;
  private closing: Promise<void> | undefined;
  private boundPort: number | undefined;

  constructor(options: RpcServerOptions = {}) {
    const max = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.server = new Server({
      'grpc.max_receive_message_length': max,
      'grpc.max_send_message_length': max,
      ...options.channelOptions,
    });
    this.graceMs = options.closeGraceMs ?? DEFAULT_CLOSE_GRACE_MS;
  }

  addService(service: ServiceDefinition, implementation: UntypedServiceImplementation): void {
    this.server.addService(service, implementation);
  }

  /** Binds `address` (e.g. `127.0.0.1:0`) without TLS and resolves the port actually bound. */
  listen(address: string): Promise<number> {
    if (this.closing)
      return Promise.reject(new ClusterError('INTERNAL', `listen ${address}: server is closed`));
    dropBindFailureLog();
    return new Promise((resolve, reject) => {
      this.server.bindAsync(address, ServerCredentials.createInsecure(), (err, port) => {
        if (err) {
          const message = `cannot listen on ${address}: ${bindFailureText(err)}`;
          reject(new ClusterError('INTERNAL', message, { cause: err }));
          return;
        }
        this.boundPort = port;
        resolve(port);
      });
    });
  }

  /** The port from the last successful listen(). */
  get port(): number {
    if (this.boundPort === undefined) throw new ClusterError('INTERNAL', 'server is not listening');
    return this.boundPort;
  }

  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, this.graceMs);
      timer.unref();
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

interface CancellableCall {
  readonly cancelled: boolean;
  once(event: 'cancelled', listener: () => void): unknown;
}

/** A signal that aborts when the client cancels the call or the call ends otherwise (nice-grpc style). */
export function callSignal(call: CancellableCall): AbortSignal {
  const controller = new AbortController();
  const reason = () => new ClusterError('ABORTED', 'the client cancelled the call');
  if (call.cancelled) controller.abort(reason());
  else call.once('cancelled', () => controller.abort(reason()));
  return controller.signal;
}

/** A unary handler over a promise-returning function: errors go out through `toStatus`. */
export function unaryHandler<Req, Res>(
  handle: (request: Req, signal: AbortSignal) => Promise<Res> | Res,
  logger: Logger = noopLogger,
): handleUnaryCall<Req, Res> {
  return (call: ServerUnaryCall<Req, Res>, callback) => {
    Promise.resolve()
      .then(() => handle(call.request, callSignal(call)))
      .then(
        (response) => callback(null, response),
        (err: unknown) => callback(toStatus(err, logger)),
      );
  };
}

/** Ends a server stream with the status of `err` (grpc-js sends what the 'error' event carries). */
export function failStream(
  call: ServerWritableStream<unknown, unknown>,
  err: unknown,
  logger?: Logger,
): void {
  if (call.cancelled || call.writableEnded) return;
  call.emit('error', toStatus(err, logger));
}
