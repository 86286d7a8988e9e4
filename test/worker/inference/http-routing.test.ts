import test from 'ava';
import { ClusterError } from '../../../shared/errors.js';
import {
  mediaTypeOf,
  type RequestHead,
  type Route,
  routeRequest,
  type ServerLimits,
  statusOfError,
} from '../../../worker/inference/http-routing.js';

const ready: ServerLimits = { state: 'ready', maxBodyBytes: 1000, inFlight: 0, maxInFlight: 2 };
const jpeg: RequestHead = {
  method: 'POST',
  path: '/invocations',
  contentType: 'image/jpeg',
  contentLength: 10,
};

const statusOf = (route: Route) => (route.kind === 'reject' ? route.status : route.kind);

const routes = test.macro({
  exec(t, head: RequestHead, limits: ServerLimits, expected: number | 'ping' | 'invoke', message?: RegExp) {
    const route = routeRequest(head, limits);
    t.is(statusOf(route), expected);
    if (message && route.kind === 'reject') t.regex(route.message, message);
  },
  title: (given, _head, _limits, expected) => `routeRequest answers ${expected} to ${given}`,
});

test('GET /ping once ready', routes, { method: 'GET', path: '/ping' }, ready, 'ping');
test('HEAD /ping once ready', routes, { method: 'HEAD', path: '/ping' }, ready, 'ping');
test(
  'GET /ping while loading',
  routes,
  { method: 'GET', path: '/ping' },
  { ...ready, state: 'loading' },
  503,
  /loading/,
);
test(
  'GET /ping while closing',
  routes,
  { method: 'GET', path: '/ping' },
  { ...ready, state: 'closing' },
  503,
  /shutting down/,
);
test('POST /ping', routes, { method: 'POST', path: '/ping' }, ready, 405, /use GET/);
for (const type of ['image/jpeg', 'image/png', 'application/x-image', 'Image/PNG; charset=binary']) {
  test(`POST /invocations of ${type}`, routes, { ...jpeg, contentType: type }, ready, 'invoke');
}
test(
  'POST /invocations of a chunked body (no Content-Length)',
  routes,
  { ...jpeg, contentLength: undefined },
  ready,
  'invoke',
);
test('GET /invocations', routes, { ...jpeg, method: 'GET' }, ready, 405, /use POST/);
test(
  'POST /invocations of application/json',
  routes,
  { ...jpeg, contentType: 'application/json' },
  ready,
  415,
  /'application\/json': expected one of image\/jpeg, image\/png, application\/x-image/,
);
test(
  'POST /invocations without a Content-Type',
  routes,
  { ...jpeg, contentType: undefined },
  ready,
  415,
  /no Content-Type/,
);
test(
  'POST /invocations over the body limit',
  routes,
  { ...jpeg, contentLength: 1001 },
  ready,
  413,
  /1001-byte body is over the limit of 1000 bytes/,
);
test('POST /invocations at the body limit', routes, { ...jpeg, contentLength: 1000 }, ready, 'invoke');
test('POST /invocations with an empty body', routes, { ...jpeg, contentLength: 0 }, ready, 400, /empty/);
test('POST /invocations while loading', routes, jpeg, { ...ready, state: 'loading' }, 503);
test('POST /invocations when busy', routes, jpeg, { ...ready, inFlight: 2 }, 503, /busy: 2 invocations/);
test('GET /', routes, { method: 'GET', path: '/' }, ready, 404, /no route for GET \//);
test('POST /invocations/extra', routes, { ...jpeg, path: '/invocations/extra' }, ready, 404);

test('routeRequest checks the content type before the size, and the size before being busy', (t) => {
  const head = { ...jpeg, contentType: 'text/plain', contentLength: 5000 };
  t.is(statusOf(routeRequest(head, { ...ready, inFlight: 9 })), 415);
  t.is(statusOf(routeRequest({ ...head, contentType: 'image/png' }, { ...ready, inFlight: 9 })), 413);
});

test('routeRequest tells a client that is refused for a method which one to use, and a busy one when to retry', (t) => {
  const wrong = routeRequest({ ...jpeg, method: 'PUT' }, ready);
  t.deepEqual(wrong.kind === 'reject' && wrong.headers, { Allow: 'POST' });
  const busy = routeRequest(jpeg, { ...ready, inFlight: 2 });
  t.deepEqual(busy.kind === 'reject' && busy.headers, { 'Retry-After': '1' });
});

test('mediaTypeOf drops parameters and case; statusOfError makes image problems 400 and the rest 500', (t) => {
  t.is(mediaTypeOf(' Image/JPEG ;q=1'), 'image/jpeg');
  t.is(mediaTypeOf(''), undefined);
  t.is(mediaTypeOf(undefined), undefined);
  t.is(statusOfError(new ClusterError('IMAGE', 'x')), 400);
  t.is(statusOfError(new ClusterError('MODEL', 'x')), 500);
  t.is(statusOfError(new Error('x')), 500);
});
