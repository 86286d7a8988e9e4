import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import test from 'ava';
import { isClusterError } from '../../../shared/errors.js';
import { createMemoryLogger, noopLogger } from '../../../shared/logging.js';
import { initBackend, parseBackendName } from '../../../worker/backend/backend.js';

// The tfjs engine is global: every test here is serial, in file order.

test.serial('initBackend tensorflow-gpu fails naming tfjs-node-gpu, the npm command and CUDA', async (t) => {
  const err = await t.throwsAsync(initBackend('tensorflow-gpu', { logger: noopLogger }));
  t.true(isClusterError(err, 'BACKEND'));
  t.regex(err!.message, /^--backend tensorflow-gpu: @tensorflow\/tfjs-node-gpu is not installed/);
  t.regex(err!.message, /npm install @tensorflow\/tfjs-node-gpu@4\.22\.0/);
  t.regex(err!.message, /CUDA/);
});

test.serial('initBackend tensorflow fails naming tfjs-node and the npm command', async (t) => {
  const err = await t.throwsAsync(initBackend('tensorflow', { logger: noopLogger }));
  t.true(isClusterError(err, 'BACKEND'));
  t.regex(
    err!.message,
    /^--backend tensorflow: @tensorflow\/tfjs-node is not installed; install it with `npm install @tensorflow\/tfjs-node@4\.22\.0`/,
  );
});

test.serial('initBackend auto skips the absent native backends, picks wasm and logs why', async (t) => {
  const logger = createMemoryLogger();
  const backend = await initBackend('auto', { logger });
  t.is(backend.name, 'wasm');
  t.is(tf.getBackend(), 'wasm');
  t.is(backend.threads, 1);
  const selected = logger.entries.find((e) => e.msg === 'backend auto-selected');
  const skipped = selected?.fields.skipped as { backend: string; reason: string }[];
  t.deepEqual(
    skipped.map((s) => s.backend),
    ['tensorflow-gpu', 'tensorflow'],
  );
  t.true(skipped.every((s) => s.reason.includes('is not installed')));
});

test.serial(
  'initBackend readies the engine for training: tf.grad through conv, relu and a mask works',
  async (t) => {
    const backend = await initBackend('wasm', { logger: noopLogger });
    const x = tf.tensor4d([-2, -0.5, 0.5, 2], [1, 2, 2, 1]);
    const w = tf.ones([1, 1, 1, 1]) as tf.Tensor4D;
    // smooth L1 of relu(conv(x)): d/dx = 0 where x < 0, x where |x| < 1, 1 above.
    const dx = tf.grad((v: tf.Tensor) => {
      const y = tf.relu(tf.conv2d(v as tf.Tensor4D, w, 1, 'same'));
      const a = tf.abs(y);
      return tf.sum(tf.where(tf.less(a, 1), tf.mul(0.5, tf.square(y)), tf.sub(a, 0.5)));
    })(x);
    t.deepEqual(Array.from(dx.dataSync()), [0, 0, 0.5, 1]);
    t.is(backend.tf, tf);
    tf.dispose([x, w, dx]);
  },
);

test.serial('initBackend is idempotent and switches between loaded backends', async (t) => {
  const first = await initBackend('wasm', { logger: noopLogger });
  const again = await initBackend('wasm', { logger: noopLogger });
  t.is(again.name, first.name);
  t.is(tf.getBackend(), 'wasm');
  const cpu = await initBackend('cpu', { logger: noopLogger });
  t.is(cpu.name, 'cpu');
  t.is(tf.getBackend(), 'cpu');
  await initBackend('wasm', { logger: noopLogger });
  t.is(tf.getBackend(), 'wasm');
});

test.serial('initBackend rejects a thread count outside 1..8 naming the option', async (t) => {
  for (const threads of [0, 9, 1.5]) {
    const err = await t.throwsAsync(initBackend('wasm', { logger: noopLogger, threads }));
    t.true(isClusterError(err, 'CONFIG'));
    t.regex(err!.message, new RegExp(`threads: must be an integer from 1 to 8, got ${threads}`));
  }
});

test.serial('parseBackendName accepts the five names and rejects others naming the flag', (t) => {
  for (const name of ['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu']) {
    t.is(parseBackendName(name) as string, name);
  }
  const err = t.throws(() => parseBackendName('webgl'));
  t.true(isClusterError(err, 'CONFIG'));
  t.is(err!.message, "--backend: must be one of auto, tensorflow-gpu, tensorflow, wasm, cpu, got 'webgl'");
});

test.serial('closing a backend frees it once and a later initBackend of it says it was closed', async (t) => {
  const cpu = await initBackend('cpu', { logger: noopLogger });
  await cpu.close();
  await cpu[Symbol.asyncDispose]();
  t.falsy(tf.findBackend('cpu'));
  const err = await t.throwsAsync(initBackend('cpu', { logger: noopLogger }));
  t.regex(err!.message, /^--backend cpu: already closed in this process/);
});

/**
 * A process like a worker on --backend cpu: initBackend, then tensors. It re-registers a kernel last,
 * which tfjs answers with a warning: the banner's silencing must not silence tfjs's other warnings.
 */
const CPU_PROCESS = `
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from ${JSON.stringify(new URL('../../../worker/backend/backend.ts', import.meta.url).href)};
import { noopLogger } from ${JSON.stringify(new URL('../../../shared/logging.ts', import.meta.url).href)};
await initBackend('cpu', { logger: noopLogger });
const sum = tf.tidy(() => tf.scalar(1).add(tf.scalar(2)).dataSync()[0]);
tf.registerKernel(tf.getKernel('Add', 'cpu'));
console.log(JSON.stringify({ backend: tf.getBackend(), sum }));
`;

test.serial(
  'a process on the cpu backend prints no tfjs banner but still prints tfjs warnings',
  async (t) => {
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', CPU_PROCESS],
      { timeout: 60_000 },
    );
    t.deepEqual(JSON.parse(stdout), { backend: 'cpu', sum: 3 }, 'it computed on the cpu backend');
    t.notRegex(stderr, /looks like you are running TensorFlow\.js in Node\.js/i);
    t.regex(stderr, /The kernel 'Add' for backend 'cpu' is already registered/);
  },
);
