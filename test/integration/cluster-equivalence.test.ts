import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import test from 'ava';
import { createLocalStorage } from '../../shared/storage/local.js';
import { readWeights } from '../../worker/model/weights.js';
import { lastJsonLine, runCliProcess } from '../helpers/cli-process.js';

// N workers with per-worker batch b must compute what one process computes with batch N*b:
// same global batches (sharding plan), same augmentation (seeded per sample), loss normalised by the
// global number of positives. Only the order of float additions in the all-reduce differs.
const TRAIN = 36;
const HP = [
  '--num-classes',
  '5',
  '--num-training-samples',
  String(TRAIN),
  '--base-network',
  'tiny',
  '--image-shape',
  '64',
  '--epochs',
  '1',
  '--optimizer',
  'sgd',
  '--learning-rate',
  '0.01',
  '--lr-warmup-steps',
  '2',
  '--seed',
  '7',
];

let dir: string;

test.before(async () => {
  await tf.setBackend('cpu');
  dir = await mkdtemp(path.join(tmpdir(), 'ssd-eq-'));
  const synth = await runCliProcess([
    'synth',
    '--out',
    path.join(dir, 'data'),
    '--train',
    String(TRAIN),
    '--validation',
    '6',
    '--image-size',
    '64',
    '--log-level',
    'warn',
  ]);
  if (synth.code !== 0) throw new Error(synth.stderr);
});

test.after.always(async () => {
  if (!process.env.KEEP_TEST_DIR) await rm(dir, { recursive: true, force: true });
});

async function weightsOf(modelDir: string): Promise<Map<string, Float32Array>> {
  const { tensors } = await readWeights(modelDir, createLocalStorage());
  const out = new Map<string, Float32Array>();
  for (const [name, t] of Object.entries(tensors)) {
    out.set(name, (await t.data()) as Float32Array);
    t.dispose();
  }
  return out;
}

/**
 * The worst per-tensor relative difference ||a - b|| / ||a|| (L2). Per tensor rather than per element:
 * float32 sums in another order differ by ~1e-7 of the tensor's scale, which is a huge relative error
 * on an element that happens to sit near zero.
 */
function maxRelativeDifference(a: Map<string, Float32Array>, b: Map<string, Float32Array>): number {
  let worst = 0;
  for (const [name, va] of a) {
    const vb = b.get(name);
    if (!vb || vb.length !== va.length) throw new Error(`weight ${name} differs in presence or size`);
    let diff2 = 0;
    let norm2 = 0;
    for (let i = 0; i < va.length; i++) {
      diff2 += (va[i]! - vb[i]!) ** 2;
      norm2 += va[i]! ** 2;
    }
    worst = Math.max(worst, Math.sqrt(diff2 / Math.max(norm2, 1e-30)));
  }
  return worst;
}

const data = (name: string) => path.join(dir, 'data', name);

const matchesTrain = test.macro(async (t, workers: number) => {
  const perWorker = 2;
  const trainDir = path.join(dir, `train-${workers}`);
  const localDir = path.join(dir, `local-${workers}`);
  const signal = AbortSignal.timeout(150_000);
  const [single, cluster] = await Promise.all([
    runCliProcess(
      [
        'train',
        ...HP,
        '--mini-batch-size',
        String(workers * perWorker),
        '--train',
        data('train.rec'),
        '--validation',
        data('validation.rec'),
        '--model-dir',
        trainDir,
        '--backend',
        'wasm',
        '--log-level',
        'warn',
      ],
      { signal },
    ),
    runCliProcess(
      [
        'local',
        '--workers',
        String(workers),
        ...HP,
        '--mini-batch-size',
        String(perWorker),
        '--train',
        data('train.rec'),
        '--validation',
        data('validation.rec'),
        '--model-dir',
        localDir,
        '--run-dir',
        path.join(dir, `run-${workers}`),
        '--backend',
        'wasm',
        '--log-level',
        'warn',
        '--port',
        '0',
      ],
      { signal },
    ),
  ]);
  t.is(single.code, 0, single.stderr);
  t.is(cluster.code, 0, cluster.stderr);
  const summary = lastJsonLine(cluster.stdout);
  t.is(summary.workers, workers);
  t.is(summary.images, TRAIN - (TRAIN % (workers * perWorker)));
  const diff = maxRelativeDifference(await weightsOf(trainDir), await weightsOf(localDir));
  t.log(`max relative weight difference, ${workers} workers vs one process: ${diff}`);
  t.true(diff <= 1e-5, `max relative difference ${diff}`);
});

test('local with 2 workers of batch 2 reaches the weights train reaches with batch 4', matchesTrain, 2);
test('local with 3 workers of batch 2 reaches the weights train reaches with batch 6', matchesTrain, 3);
