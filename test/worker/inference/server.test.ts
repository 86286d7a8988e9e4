import { EventEmitter, once } from 'node:events';
import http from 'node:http';
import test from 'ava';
import { deferred, raceAbort } from '../../../shared/abort.js';
import { createMemoryLogger, noopLogger } from '../../../shared/logging.js';
import { createLocalStorage } from '../../../shared/storage/local.js';
import { loadPredictor, type Predictor } from '../../../worker/inference/predictor.js';
import { type InferenceServerOptions, startInferenceServer } from '../../../worker/inference/server.js';
import { createTempDir, makeImage, wasmTf, writeTinyModel } from './fixtures.js';

const storage = createLocalStorage();
let predictor: Predictor;
let removeModel: (() => Promise<void>) | undefined;

test.before(async () => {
  await wasmTf();
  const { dir, remove } = await createTempDir('server-');
  removeModel = remove;
  await writeTinyModel(storage, dir);
  predictor = await loadPredictor(dir, { storage, backend: 'wasm', logger: noopLogger });
});
test.after.always(async () => {
  await predictor?.close();
  await storage.close();
  await removeModel?.();
});

type Teardown = { teardown(fn: () => unknown): void };

async function serve(t: Teardown, options: Partial<InferenceServerOptions> = {}) {
  const logger = createMemoryLogger();
  const server = await startInferenceServer({
    host: '127.0.0.1',
    port: 0,
    maxBodyBytes: 1 << 20,
    logger,
    ...options,
  });
  t.teardown(() => server.close());
  return { server, logger };
}

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

/**
 * One request over node:http (headers exactly as given). `chunks` are written one by one (chunked
 * encoding unless a Content-Length is given). Errors after the answer arrived (the server dropping a
 * body it refused) are ignored.
 */
function request(
  url: string,
  init: {
    method?: string;
    headers?: Record<string, string>;
    chunks?: Uint8Array[];
    signal?: AbortSignal;
  } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = http.request(
      url,
      { method: init.method ?? 'GET', headers: init.headers, signal: init.signal },
      (res) => {
        answered = true;
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, text }));
        res.on('error', reject);
      },
    );
    req.on('error', (err) => (answered ? undefined : reject(err)));
    for (const chunk of init.chunks ?? []) req.write(chunk);
    req.end();
  });
}

const post = (url: string, type: string | undefined, body: Uint8Array) =>
  request(`${url}/invocations`, {
    method: 'POST',
    headers: { ...(type ? { 'Content-Type': type } : {}), 'Content-Length': String(body.length) },
    chunks: [body],
  });

test.serial('/ping answers 503 while the model loads and 200 once the server is ready', async (t) => {
  const { server } = await serve(t);
  const loading = await request(`${server.url}/ping`);
  t.is(loading.status, 503);
  t.is(loading.headers['retry-after'], '1');
  t.regex(JSON.parse(loading.text).error, /still loading/);
  t.is((await post(server.url, 'image/jpeg', await makeImage('jpeg', 20, 20))).status, 503);
  server.ready(predictor);
  const ready = await request(`${server.url}/ping`);
  t.is(ready.status, 200);
  t.deepEqual(JSON.parse(ready.text), { status: 'ok' });
  t.throws(() => server.ready(predictor), { message: /ready\(\) in state ready/ });
});

test.serial(
  '/invocations answers image/jpeg, image/png and application/x-image with the predictor rows',
  async (t) => {
    const { server } = await serve(t);
    server.ready(predictor);
    const cases: [string, Buffer][] = [
      ['image/jpeg', await makeImage('jpeg', 80, 60)],
      ['image/png', await makeImage('png', 50, 90, 4)],
      ['application/x-image', await makeImage('png', 64, 64, 1)],
      ['image/jpeg; charset=binary', await makeImage('jpeg', 33, 33)],
    ];
    for (const [type, image] of cases) {
      const reply = await post(server.url, type, image);
      t.is(reply.status, 200, type);
      t.is(reply.headers['content-type'], 'application/json');
      t.regex(reply.text, /^\{"prediction": \[\[\d+\.0, /);
      t.deepEqual(JSON.parse(reply.text), { prediction: await predictor.predict(image) });
    }
  },
);

test.serial('/invocations gives a JSON 4xx for every bad request and keeps serving', async (t) => {
  const { server } = await serve(t);
  server.ready(predictor);
  const image = await makeImage('jpeg', 30, 30);
  const cases: [Promise<Reply>, number, RegExp][] = [
    [
      post(server.url, 'text/plain', image),
      415,
      /Content-Type 'text\/plain': expected one of image\/jpeg, image\/png, application\/x-image/,
    ],
    [post(server.url, undefined, image), 415, /no Content-Type/],
    [post(server.url, 'image/png', new Uint8Array(0)), 400, /request body is empty/],
    [
      post(server.url, 'image/png', Buffer.from('GIF89a not a png at all')),
      400,
      /request body: not a JPEG or PNG image/,
    ],
    [
      post(server.url, 'image/jpeg', image.subarray(0, 200)),
      400,
      /request body: cannot decode the jpeg image/,
    ],
    [request(`${server.url}/invocations`), 405, /GET \/invocations: use POST/],
    [request(`${server.url}/models`), 404, /no route for GET \/models/],
  ];
  for (const [reply, status, message] of cases) {
    const { status: got, headers, text } = await reply;
    t.is(got, status, text);
    t.is(headers['content-type'], 'application/json');
    t.regex(JSON.parse(text).error, message);
  }
  t.is((await post(server.url, 'image/jpeg', image)).status, 200);
});

test.serial(
  '/invocations answers 413 to a body over the limit, declared or chunked, and the server stays up',
  async (t) => {
    const { server } = await serve(t, { maxBodyBytes: 4096 });
    server.ready(predictor);
    const big = await makeImage('png', 64, 64, 3, 1);
    t.true(big.length > 4096);
    const declared = await post(server.url, 'image/png', big);
    t.is(declared.status, 413);
    t.regex(
      JSON.parse(declared.text).error,
      new RegExp(`a ${big.length}-byte body is over the limit of 4096 bytes`),
    );
    const chunks = Array.from({ length: 8 }, (_, i) => big.subarray(i * 1024, (i + 1) * 1024));
    const chunked = await request(`${server.url}/invocations`, {
      method: 'POST',
      headers: { 'Content-Type': 'image/png' },
      chunks,
    });
    t.is(chunked.status, 413);
    t.regex(JSON.parse(chunked.text).error, /the request body is over the limit of 4096 bytes/);
    t.is((await request(`${server.url}/ping`)).status, 200);
  },
);

test.serial('/invocations serves concurrent requests, each with its own rows', async (t) => {
  const { server } = await serve(t);
  server.ready(predictor);
  const images = await Promise.all([20, 40, 60, 80, 100, 120].map((w) => makeImage('jpeg', w, 50)));
  const replies = await Promise.all(images.map((image) => post(server.url, 'image/jpeg', image)));
  for (const [i, reply] of replies.entries()) {
    t.is(reply.status, 200);
    t.deepEqual(JSON.parse(reply.text).prediction, await predictor.predict(images[i]!));
  }
});

/** The real predictor behind a gate the test opens; it announces each call with its signal. */
function gated() {
  const calls = new EventEmitter();
  const gate = deferred<void>();
  const wrapped: Pick<Predictor, 'predict'> = {
    async predict(image, options = {}) {
      calls.emit('call', options.signal);
      await raceAbort(gate.promise, options.signal);
      return predictor.predict(image, options);
    },
  };
  const nextCall = () =>
    once(calls, 'call', { signal: AbortSignal.timeout(30_000) }).then(([s]) => s as AbortSignal);
  return { wrapped, open: () => gate.resolve(), nextCall };
}

test.serial('/invocations answers 503 busy past maxInFlight invocations in progress', async (t) => {
  const { server } = await serve(t, { maxInFlight: 1 });
  const g = gated();
  server.ready(g.wrapped);
  const image = await makeImage('jpeg', 40, 40);
  const called = g.nextCall();
  const first = post(server.url, 'image/jpeg', image);
  await called;
  const busy = await post(server.url, 'image/jpeg', image);
  t.is(busy.status, 503);
  t.regex(JSON.parse(busy.text).error, /busy: 1 invocations in progress/);
  g.open();
  t.is((await first).status, 200);
  t.is((await post(server.url, 'image/jpeg', image)).status, 200);
});

test.serial('a client that goes away aborts its invocation, which is logged as 499', async (t) => {
  const { server, logger } = await serve(t);
  const g = gated();
  server.ready(g.wrapped);
  const client = new AbortController();
  const called = g.nextCall();
  const image = await makeImage('jpeg', 40, 40);
  const reply = request(`${server.url}/invocations`, {
    method: 'POST',
    headers: { 'Content-Type': 'image/jpeg' },
    chunks: [image],
    signal: client.signal,
  });
  const signal = await called;
  client.abort();
  await t.throwsAsync(reply, { name: 'AbortError' });
  await once(signal, 'abort', { signal: AbortSignal.timeout(30_000) });
  t.regex(String(signal.reason), /the client closed the connection/);
  await server.close(); // waits for the handler, so its log line is written
  t.like(logger.entries.at(-1)?.fields, { path: '/invocations', status: 499, bytes: image.length });
});

test.serial('close lets an invocation in progress finish, then refuses new connections', async (t) => {
  const { server, logger } = await serve(t);
  const g = gated();
  server.ready(g.wrapped);
  const image = await makeImage('jpeg', 40, 40);
  const called = g.nextCall();
  const inProgress = post(server.url, 'image/jpeg', image);
  await called;
  let closed = false;
  const closing = server.close().then(() => (closed = true));
  t.is(server.state, 'closing');
  t.false(closed);
  g.open();
  const reply = await inProgress;
  t.is(reply.status, 200);
  t.is(reply.headers.connection, 'close');
  await closing;
  t.is(server.state, 'closed');
  await t.throwsAsync(request(`${server.url}/ping`), { code: 'ECONNREFUSED' });
  t.deepEqual(
    logger.entries.map((e) => [e.msg, e.fields.path, e.fields.status]),
    [['request', '/invocations', 200]],
  );
});

test.serial('close cuts invocations still running after the grace period', async (t) => {
  const { server } = await serve(t, { closeGraceMs: 50 });
  const g = gated();
  server.ready(g.wrapped);
  const called = g.nextCall();
  const stuck = post(server.url, 'image/jpeg', await makeImage('jpeg', 40, 40));
  const signal = await called;
  const cut = t.throwsAsync(stuck, { code: 'ECONNRESET' }); // attached before it rejects
  await server.close();
  await cut;
  t.true(signal.aborted);
  g.open();
});

test.serial(
  'the server logs one line per request with method, path, status, bytes and duration',
  async (t) => {
    const { server, logger } = await serve(t);
    server.ready(predictor);
    const image = await makeImage('jpeg', 40, 40);
    await request(`${server.url}/ping`);
    await post(server.url, 'image/jpeg', image);
    await post(server.url, 'text/plain', image);
    t.deepEqual(
      logger.entries.map(({ msg, fields: { method, path, status, bytes } }) => ({
        msg,
        method,
        path,
        status,
        bytes,
      })),
      [
        { msg: 'request', method: 'GET', path: '/ping', status: 200, bytes: undefined },
        { msg: 'request', method: 'POST', path: '/invocations', status: 200, bytes: image.length },
        { msg: 'request', method: 'POST', path: '/invocations', status: 415, bytes: undefined },
      ],
    );
    t.true(logger.entries.every((e) => typeof e.fields.ms === 'number' && e.fields.ms >= 0));
  },
);

test.serial('startInferenceServer names the address when it cannot listen', async (t) => {
  const { server } = await serve(t);
  await t.throwsAsync(
    startInferenceServer({ host: '127.0.0.1', port: server.port, maxBodyBytes: 10, logger: noopLogger }),
    {
      message: new RegExp(`--host 127\\.0\\.0\\.1 --port ${server.port}: cannot listen \\(.*EADDRINUSE`),
    },
  );
});
