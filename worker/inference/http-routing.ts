/**
 * SageMaker's hosting contract as pure decisions (server.ts carries them out):
 *   GET /ping           200 once the model is loaded; 503 while it loads or the server shuts down
 *   POST /invocations   Content-Type image/jpeg | image/png | application/x-image (parameters ignored),
 *                       body = one image -> 200 {"prediction": [...]}
 * Everything else is a JSON error {"error": "..."}: 404 unknown path, 405 wrong method (with Allow),
 * 415 content type, 413 body over the limit, 400 empty or undecodable body, 503 not ready or busy,
 * 500 for a failure of ours. Checks run in that order, so a request gets the most basic complaint first.
 */
import { isClusterError } from '../../shared/errors.js';

export const INVOCATION_CONTENT_TYPES = ['image/jpeg', 'image/png', 'application/x-image'] as const;

export const EMPTY_BODY = 'the request body is empty: send one JPEG or PNG image';

export type ServerState = 'loading' | 'ready' | 'closing' | 'closed';

export interface RequestHead {
  method: string;
  /** Path without the query string. */
  path: string;
  /** The raw Content-Type header, if any. */
  contentType?: string;
  /** The Content-Length header as a number, when present and valid. */
  contentLength?: number;
}

export interface ServerLimits {
  state: ServerState;
  maxBodyBytes: number;
  /** Invocations in progress, and how many may be. */
  inFlight: number;
  maxInFlight: number;
}

export type Route =
  | { kind: 'ping' }
  | { kind: 'invoke' }
  | { kind: 'reject'; status: number; message: string; headers?: Record<string, string> };

const reject = (status: number, message: string, headers?: Record<string, string>): Route => ({
  kind: 'reject',
  status,
  message,
  ...(headers ? { headers } : {}),
});

/** `image/JPEG; charset=x` -> `image/jpeg`. */
export function mediaTypeOf(contentType: string | undefined): string | undefined {
  const type = contentType?.split(';')[0]?.trim().toLowerCase();
  return type ? type : undefined;
}

function notReady(state: ServerState): Route {
  return reject(503, state === 'loading' ? 'the model is still loading' : 'the server is shutting down', {
    'Retry-After': '1',
  });
}

function routeInvocation(head: RequestHead, limits: ServerLimits): Route {
  if (head.method !== 'POST') {
    return reject(405, `${head.method} ${head.path}: use POST`, { Allow: 'POST' });
  }
  if (limits.state !== 'ready') return notReady(limits.state);
  const type = mediaTypeOf(head.contentType);
  if (!(INVOCATION_CONTENT_TYPES as readonly string[]).includes(type ?? '')) {
    const got = type === undefined ? 'no Content-Type' : `Content-Type '${type}'`;
    return reject(415, `${got}: expected one of ${INVOCATION_CONTENT_TYPES.join(', ')}`);
  }
  if (head.contentLength !== undefined && head.contentLength > limits.maxBodyBytes) {
    return reject(413, bodyTooLarge(limits.maxBodyBytes, head.contentLength));
  }
  if (head.contentLength === 0) return reject(400, EMPTY_BODY);
  if (limits.inFlight >= limits.maxInFlight) {
    return reject(503, `busy: ${limits.inFlight} invocations in progress`, { 'Retry-After': '1' });
  }
  return { kind: 'invoke' };
}

/** What to do with a request, from its head alone. */
export function routeRequest(head: RequestHead, limits: ServerLimits): Route {
  if (head.path === '/invocations') return routeInvocation(head, limits);
  if (head.path === '/ping') {
    if (head.method !== 'GET' && head.method !== 'HEAD') {
      return reject(405, `${head.method} ${head.path}: use GET`, { Allow: 'GET, HEAD' });
    }
    return limits.state === 'ready' ? { kind: 'ping' } : notReady(limits.state);
  }
  return reject(
    404,
    `no route for ${head.method} ${head.path} (this server has GET /ping and POST /invocations)`,
  );
}

export function bodyTooLarge(maxBodyBytes: number, sizeBytes?: number): string {
  const size = sizeBytes === undefined ? 'the request body' : `a ${sizeBytes}-byte body`;
  return `${size} is over the limit of ${maxBodyBytes} bytes (--max-body-mb)`;
}

/** The status for a failed invocation: the client's image (400) or our failure (500). */
export function statusOfError(err: unknown): number {
  return isClusterError(err, 'IMAGE') ? 400 : 500;
}

/** `{"error": "..."}` */
export function errorBody(message: string): string {
  return JSON.stringify({ error: message });
}
