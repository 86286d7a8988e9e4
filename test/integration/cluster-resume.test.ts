import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import test from 'ava';
import { sleep } from '../../shared/abort.js';
import { createLocalStorage } from '../../shared/storage/local.js';
import { readWeights } from '../../worker/model/weights.js';
import { lastJsonLine, runCliProcess } from '../helpers/cli-process.js';
import { killAll, start } from '../helpers/logged-process.js';

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

/** Checkpoint folders that have their manifest (complete), by global step. */
async function completeCheckpoints(ckpt: string): Promise<number[]> {
  const names = await readdir(ckpt).catch(() => [] as string[]);
  const done: number[] = [];
  for (const name of names) {
    const files = await readdir(path.join(ckpt, name)).catch(() => [] as string[]);
    if (files.includes('manifest.json')) done.push(Number(name.replace('ckpt-', '')));
  }
  return done;
}

async function waitForCheckpoint(ckpt: string, minStep: number, signal: AbortSignal): Promise<void> {
  while ((await completeCheckpoints(ckpt)).every((s) => s < minStep)) await sleep(100, signal);
}

function cluster(tag: string, extra: string[]) {
  const coordinator = start([
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
  ]);
  const workers = coordinator
    .waitFor((l) => l.msg === 'coordinator listening', 60_000, 'the coordinator')
    .then((l) =>
      [0, 1].map((i) =>
        start([
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
        ]),
      ),
    );
  return { coordinator, workers };
}

test('a cluster killed with SIGKILL and resumed from its newest checkpoint ends bit-identical to an uninterrupted run', async (t) => {
  const reference = cluster('ref', []);
  const ckpt = path.join(dir, 'ckpt');
  const first = cluster('cut', ['--checkpoint-dir', ckpt, '--checkpoint-frequency', '1']);
  await waitForCheckpoint(ckpt, 5, AbortSignal.timeout(120_000));
  first.coordinator.child.kill('SIGKILL');
  for (const w of await first.workers) w.child.kill('SIGKILL');
  const resumed = cluster('res', ['--checkpoint-dir', ckpt, '--checkpoint-frequency', '1', '--resume']);
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
  const [a, b] = [await weights(path.join(dir, 'model-ref')), await weights(path.join(dir, 'model-res'))];
  t.is(a.size, b.size);
  for (const [name, va] of a) t.deepEqual(b.get(name), va, name);
});

test('a killed coordinator restarted with --resume picks the job up again while the workers keep their state', async (t) => {
  const ckpt = path.join(dir, 'ckpt-coord');
  const first = cluster('co', ['--checkpoint-dir', ckpt, '--checkpoint-frequency', '2']);
  const workers = await first.workers;
  await waitForCheckpoint(ckpt, 4, AbortSignal.timeout(120_000));
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
    '--log-level',
    'info',
  ]);
  t.is(await again.exited, 0, again.lines.map((l) => JSON.stringify(l)).join('\n'));
  t.is(await workers[0]!.exited, 0);
  t.is(await workers[1]!.exited, 0);
  const summary = lastJsonLine(again.stdout());
  t.is(summary.epochs, 2);
  t.is(summary.workers, 2);
});
