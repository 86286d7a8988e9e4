import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'ava';
import { lastJsonLine, runCliProcess } from '../helpers/cli-process.js';
import { killAll, start } from '../helpers/logged-process.js';

test.after.always(() => killAll());

// A coordinator and 3 worker processes train to completion; the model they write detects the synthetic
// objects: VOC07 mAP on the images it trained on (the validation channel here) far above an untrained
// model's (< 0.01 for the same configuration).
test('a coordinator and 3 worker processes train to completion and the model they write detects the objects', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'ssd-three-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const synth = await runCliProcess([
    'synth',
    '--out',
    dir,
    '--train',
    '48',
    '--validation',
    '4',
    '--image-size',
    '64',
    '--classes',
    '1',
    '--log-level',
    'warn',
  ]);
  t.is(synth.code, 0, synth.stderr);
  const train = path.join(dir, 'train.rec');
  const modelDir = path.join(dir, 'model');
  const coordinator = start([
    'coordinator',
    '--metrics-port',
    '0',
    '--train',
    train,
    '--validation',
    train,
    '--num-classes',
    '1',
    '--num-training-samples',
    '48',
    '--base-network',
    'tiny',
    '--image-shape',
    '64',
    '--mini-batch-size',
    '4',
    '--epochs',
    '25',
    '--optimizer',
    'adam',
    '--learning-rate',
    '0.005',
    '--lr-warmup-steps',
    '10',
    '--workers',
    '3',
    '--port',
    '0',
    '--model-dir',
    modelDir,
  ]);
  const listening = await coordinator.waitFor(
    (l) => l.msg === 'coordinator listening',
    60_000,
    'the coordinator',
  );
  const workers = [0, 1, 2].map((i) =>
    start([
      'worker',
      '--coordinator',
      `127.0.0.1:${listening.port}`,
      '--backend',
      'wasm',
      '--worker-id',
      `w${i}`,
      '--log-level',
      'warn',
    ]),
  );
  t.is(await coordinator.exited, 0);
  for (const w of workers) t.is(await w.exited, 0);
  const summary = lastJsonLine(coordinator.stdout());
  t.is(summary.workers, 3);
  t.is(summary.epochs, 25);
  t.log(`validation mAP ${summary.validationMap}`);
  t.true((summary.validationMap as number) >= 0.1, `mAP ${summary.validationMap}`);
  t.true((await readdir(modelDir)).includes('model.json'));
});
