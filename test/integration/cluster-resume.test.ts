import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import test from 'ava';
import { createCheckpointStore } from '../../coordinator/checkpoint/store.js';
import { sleep } from '../../shared/abort.js';
import { createLocalStorage } from '../../shared/storage/local.js';
import { createStorage } from '../../shared/storage/open-storage.js';
import type { Storage } from '../../shared/storage/storage.js';
import { readWeights } from '../../worker/model/weights.js';
import { lastJsonLine, runCliProcess } from '../helpers/cli-process.js';
import { killAll, start } from '../helpers/logged-process.js';
import { startS3Server } from '../helpers/s3-server.js';

// Exact resume: a cluster whose every process is SIGKILLed and then resumed from its newest checkpoint
// ends with the weights of an uninterrupted run (same workers, same seed), bit for bit.
let dir: string;
const JOB = [
  '--num-classes',
  '5',
  '--num-training-samples',
  '48',
  '--base-network',
  'tiny',
  '--image-shape',
  '64',
  '--mini-batch-size',
  '2',
  '--epochs',
  '2',
  '--optimizer',
  'adam',
  '--learning-rate',
  '0.003',
  '--lr-warmup-steps',
  '3',
  '--seed',
  '11',
];

test.before(async () => {
  await tf.setBackend('cpu');
  dir = await mkdtemp(path.join(tmpdir(), 'ssd-resume-'));
  const synth = await runCliProcess([
    'synth',
    '--out',
    path.join(dir, 'data'),
    '--train',
    '48',
    '--validation',
    '4',
    '--image-size',
    '64',
    '--log-level',
    'warn',
  ]);
  if (synth.code !== 0) throw new Error(synth.stderr);
});

test.after.always(async () => {
  killAll();
  await rm(dir, { recursive: true, force: true });
});

const data = (name: string) => path.join(dir, 'data', name);

async function weights(modelDir: string): Promise<Map<string, Float32Array>> {
  const { tensors } = await readWeights(modelDir, createLocalStorage());
  return new Map(Object.entries(tensors).map(([n, t]) => [n, t.dataSync() as Float32Array]));
}

/** Waits (polling with a deadline) until a complete checkpoint at `minStep` or later is in `ckpt`. */
async function waitForCheckpoint(storage: Storage, ckpt: string, minStep: number, signal: AbortSignal) {
  const store = createCheckpointStore({ storage, dir: ckpt, keep: 3 });
  try {
    while ((await store.list(signal)).every((c) => c.globalStep < minStep)) await sleep(100, signal);
  } finally {
    await store.close();
  }
}

function cluster(tag: string, extra: string[], env?: NodeJS.ProcessEnv) {
  const coordinator = start(
    [
      'coordinator',
      '--metrics-port',
      '0',
      ...JOB,
      '--train',
      data('train.rec'),
      '--workers',
      '2',
      '--port',
      '0',
      '--model-dir',
      path.join(dir, `model-${tag}`),
      '--heartbeat-timeout',
      '3',
      '--log-level',
      'info',
      ...extra,
    ],
    env,
  );
  const workers = coordinator
    .waitFor((l) => l.msg === 'coordinator listening', 60_000, 'the coordinator')
    .then((l) =>
      [0, 1].map((i) =>
        start(
          [
            'worker',
            '--coordinator',
            `127.0.0.1:${l.port}`,
            '--backend',
            'wasm',
            '--worker-id',
            `${tag}${i}`,
            '--log-level',
            'warn',
            '--coordinator-timeout',
            '60',
          ],
          env,
        ),
      ),
    );
  return { coordinator, workers };
}

const exactResume = test.macro(async (t, where: 'local' | 's3') => {
  const s3 = where === 's3' ? await startS3Server(t) : undefined;
  const storage = s3
    ? createStorage({ s3Endpoint: s3.endpoint, s3Credentials: s3.credentials, env: {} })
    : createLocalStorage();
  t.teardown(() => storage.close());
  const ckpt = s3 ? `s3://${s3.bucket}/cluster/ckpt` : path.join(dir, 'ckpt');
  const env = s3 && {
    AWS_ACCESS_KEY_ID: s3.env.AWS_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY: s3.env.AWS_SECRET_ACCESS_KEY,
  };
  const flags = [
    '--checkpoint-dir',
    ckpt,
    '--checkpoint-frequency',
    '1',
    ...(s3 ? ['--s3-endpoint', s3.endpoint] : []),
  ];
  const reference = cluster(`ref-${where}`, []);
  const first = cluster(`cut-${where}`, flags, env);
  await waitForCheckpoint(storage, ckpt, 5, AbortSignal.timeout(120_000));
  first.coordinator.child.kill('SIGKILL');
  for (const w of await first.workers) w.child.kill('SIGKILL');
  const resumed = cluster(`res-${where}`, [...flags, '--resume'], env);
  t.is(await resumed.coordinator.exited, 0);
  t.is(await reference.coordinator.exited, 0);
  const from = resumed.coordinator.lines.find((l) => l.msg === 'resuming from checkpoint');
  t.truthy(from, 'the coordinator resumed from a checkpoint');
  t.true((from!.globalStep as number) >= 5);
  const summary = lastJsonLine(resumed.coordinator.stdout());
  t.is(
    summary.images,
    (24 - (from!.globalStep as number)) * 4,
    'the summary counts only the images this run trained',
  );
  t.is(summary.epochs, 2);
  const [a, b] = [
    await weights(path.join(dir, `model-ref-${where}`)),
    await weights(path.join(dir, `model-res-${where}`)),
  ];
  t.is(a.size, b.size);
  for (const [name, va] of a) t.deepEqual(b.get(name), va, name);
});

test(
  'a cluster killed with SIGKILL and resumed from its newest checkpoint ends bit-identical to an uninterrupted run',
  exactResume,
  'local',
);
test('the same with checkpoints in an S3-compatible server', exactResume, 's3');

test('a killed coordinator restarted with --resume picks the job up again while the workers keep their state', async (t) => {
  const ckpt = path.join(dir, 'ckpt-coord');
  // Four epochs: the coordinator is killed with most of the job still to run.
  const first = cluster('co', ['--checkpoint-dir', ckpt, '--checkpoint-frequency', '2', '--epochs', '4']);
  const workers = await first.workers;
  await waitForCheckpoint(createLocalStorage(), ckpt, 4, AbortSignal.timeout(120_000));
  first.coordinator.child.kill('SIGKILL');
  // Same port is not needed: the workers were told the old one, so restart it there.
  const port = (
    first.coordinator.lines.find((l) => l.msg === 'coordinator listening')!.port as number
  ).toString();
  const again = start([
    'coordinator',
    '--metrics-port',
    '0',
    ...JOB,
    '--train',
    data('train.rec'),
    '--workers',
    '2',
    '--port',
    port,
    '--model-dir',
    path.join(dir, 'model-co'),
    '--checkpoint-dir',
    ckpt,
    '--resume',
    '--epochs',
    '4',
    '--log-level',
    'info',
  ]);
  t.is(await again.exited, 0, again.lines.map((l) => JSON.stringify(l)).join('\n'));
  t.true(
    again.lines.some((l) => l.msg === 'step committed' || l.msg === 'epoch done'),
    'the restarted coordinator saw training, so the job was not over when the first one died',
  );
  t.is(await workers[0]!.exited, 0);
  t.is(await workers[1]!.exited, 0);
  const summary = lastJsonLine(again.stdout());
  t.is(summary.epochs, 4);
  t.is(summary.workers, 2);
});
