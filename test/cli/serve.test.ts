import net from 'node:net';
import path from 'node:path';
import test from 'ava';
import { createLocalStorage } from '../../shared/storage/local.js';
import { runCli } from '../helpers/run-cli.js';
import { createTempDir, makeImage, wasmTf, writeTinyModel } from '../worker/inference/fixtures.js';
import { startServeCli } from '../worker/inference/serve-fixture.js';

/** `ssd-cluster serve` through cli/main.ts on 127.0.0.1:0, with an untrained tiny model (known objects: test/worker/inference). */
const storage = createLocalStorage();
let dir: string;
let removeDir: (() => Promise<void>) | undefined;
let modelDir: string;
let archive: string;

test.before(async () => {
  await wasmTf();
  ({ dir, remove: removeDir } = await createTempDir('serve-cli-'));
  modelDir = path.join(dir, 'model');
  archive = (await writeTinyModel(storage, modelDir, { archive: true })).archive!;
});
test.after.always(async () => {
  await storage.close();
  await removeDir?.();
});

const LOCAL = ['--port', '0', '--host', '127.0.0.1', '--backend', 'wasm'];

/** Resolves when nothing listens on the port any more. */
function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

test.serial(
  'serve prints its address, answers /ping and /invocations, and exits 0 when stopped',
  async (t) => {
    for (const model of [modelDir, archive]) {
      const serve = await startServeCli(['--model', model, ...LOCAL]);
      t.teardown(() => serve.stop());
      t.regex(serve.url, /^http:\/\/127\.0\.0\.1:\d+$/);
      await serve.serving;
      const ping = await fetch(`${serve.url}/ping`);
      t.is(ping.status, 200);
      const reply = await fetch(`${serve.url}/invocations`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-image' },
        body: await makeImage('png', 48, 32),
      });
      t.is(reply.status, 200);
      t.true(Array.isArray(((await reply.json()) as { prediction: unknown }).prediction));
      t.is(await serve.stop(), 0, serve.stderr());
      t.true(await refused(serve.port));
      const requests = serve.logs.filter((e) => e.msg === 'request');
      t.deepEqual(
        requests.map((e) => [e.fields.path, e.fields.status]),
        [
          ['/ping', 200],
          ['/invocations', 200],
        ],
      );
    }
  },
);

test.serial('serve --max-body-mb refuses larger bodies with 413', async (t) => {
  const serve = await startServeCli(['--model', modelDir, '--max-body-mb', '0.001', ...LOCAL]);
  t.teardown(() => serve.stop());
  await serve.serving;
  const image = await makeImage('png', 40, 40, 3, 7);
  t.true(image.length > 1048);
  const reply = await fetch(`${serve.url}/invocations`, {
    method: 'POST',
    headers: { 'Content-Type': 'image/png' },
    body: image,
  });
  t.is(reply.status, 413);
  t.regex(
    ((await reply.json()) as { error: string }).error,
    /over the limit of 1048 bytes \(--max-body-mb\)/,
  );
});

test.serial('serve with a model that is not there exits 1 naming it, and frees its port', async (t) => {
  const serve = await startServeCli(['--model', path.join(dir, 'nowhere'), ...LOCAL]);
  t.is(await serve.exit, 1);
  t.regex(serve.stderr(), /--model .*nowhere: no model\.json or model\.tar\.gz there/);
  t.true(await refused(serve.port));
});

test.serial('serve stopped right after it starts listening exits 0 and frees its port', async (t) => {
  const serve = await startServeCli(['--model', modelDir, ...LOCAL]);
  t.is(await serve.stop(), 0, serve.stderr());
  t.true(await refused(serve.port));
});

const usage = test.macro({
  async exec(t, args: string[], message: RegExp, env: NodeJS.ProcessEnv = {}) {
    const run = await runCli(['serve', ...args], { env });
    t.is(run.code, 2);
    t.regex(run.stderr, message);
    t.is(run.stdout, '');
  },
  title: (what) => `serve refuses ${what} as a usage error`,
});

test.serial('a missing --model', usage, ['--port', '0'], /--model is required/);
test.serial(
  'a --port out of range',
  usage,
  ['--model', 'm', '--port', '70000'],
  /--port: expected an integer >= 0 and <= 65535/,
);
test.serial(
  'a bad SAGEMAKER_BIND_TO_PORT when no --port is given',
  usage,
  ['--model', 'm'],
  /SAGEMAKER_BIND_TO_PORT: .*got 'eighty'/,
  { SAGEMAKER_BIND_TO_PORT: 'eighty' },
);
test.serial(
  'a bad --port even when SAGEMAKER_BIND_TO_PORT is set',
  usage,
  ['--model', 'm', '--port', ''],
  /--port: expected an integer/,
  { SAGEMAKER_BIND_TO_PORT: '8080' },
);
test.serial(
  'a --max-body-mb of 0',
  usage,
  ['--model', 'm', '--max-body-mb', '0'],
  /--max-body-mb: expected a number in \(0, 1024\]/,
);
test.serial(
  'a --max-in-flight of 0',
  usage,
  ['--model', 'm', '--max-in-flight', '0'],
  /--max-in-flight: expected an integer >= 1/,
);
