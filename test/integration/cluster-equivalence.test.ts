import test from 'ava';
import { lastJsonLine, runCliProcess } from '../helpers/cli-process.js';
import { readModelWeights } from '../helpers/model-weights.js';
import { synthFixture, tinySsdFlags } from '../helpers/synth-fixture.js';

// N workers with per-worker batch b must compute what one process computes with batch N*b:
// same global batches (sharding plan), same augmentation (seeded per sample), loss normalised by the
// global number of positives. Only the order of float additions in the all-reduce differs.
const TRAIN = 36;
const data = synthFixture(test, { train: TRAIN, validation: 6 });

function jobFlags(): string[] {
  return [
    ...tinySsdFlags(data),
    ...['--epochs', '1', '--optimizer', 'sgd', '--learning-rate', '0.01', '--lr-warmup-steps', '2'],
    ...['--seed', '7', '--train', data.train, '--validation', data.validation],
    ...['--backend', 'wasm', '--log-level', 'warn'],
  ];
}

/**
 * The worst per-tensor relative difference ||a - b|| / ||a|| (L2). Per tensor rather than per element:
 * float32 sums in another order differ by ~1e-7 of the tensor's scale, which is a huge relative error
 * on an element that happens to sit near zero.
 */
function maxRelativeDifference(a: Map<string, Float32Array>, b: Map<string, Float32Array>): number {
  if (a.size !== b.size) throw new Error(`the models have ${a.size} and ${b.size} weights`);
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

const matchesTrain = test.macro(async (t, workers: number) => {
  const perWorker = 2;
  const trainDir = data.path(`train-${workers}`);
  const localDir = data.path(`local-${workers}`);
  const signal = AbortSignal.timeout(150_000);
  const [single, cluster] = await Promise.all([
    runCliProcess(
      ['train', ...jobFlags(), '--mini-batch-size', String(workers * perWorker), '--model-dir', trainDir],
      { signal },
    ),
    runCliProcess(
      [
        ...['local', '--workers', String(workers), ...jobFlags(), '--mini-batch-size', String(perWorker)],
        ...['--model-dir', localDir, '--run-dir', data.path(`run-${workers}`), '--port', '0'],
      ],
      { signal },
    ),
  ]);
  t.is(single.code, 0, single.stderr);
  t.is(cluster.code, 0, cluster.stderr);
  const summary = lastJsonLine(cluster.stdout);
  t.is(summary.workers, workers);
  t.is(summary.images, TRAIN - (TRAIN % (workers * perWorker)));
  const diff = maxRelativeDifference(await readModelWeights(trainDir), await readModelWeights(localDir));
  t.log(`max relative weight difference, ${workers} workers vs one process: ${diff}`);
  t.true(diff <= 1e-5, `max relative difference ${diff}`);
});

test('local with 2 workers of batch 2 reaches the weights train reaches with batch 4', matchesTrain, 2);
test('local with 3 workers of batch 2 reaches the weights train reaches with batch 6', matchesTrain, 3);
