import { readdir } from 'node:fs/promises';
import test from 'ava';
import { lastJsonLine } from '../helpers/cli-process.js';
import { coordinatorPort, startCoordinator, startWorker } from '../helpers/cluster-processes.js';
import { killAll } from '../helpers/logged-process.js';
import { synthFixture, tinySsdFlags } from '../helpers/synth-fixture.js';

const data = synthFixture(test, { train: 48, validation: 4, classes: 1 });

test.after.always(() => killAll());

// A coordinator and 3 worker processes train to completion; the model they write detects the synthetic
// objects: VOC07 mAP on the images it trained on (the validation channel here) far above an untrained
// model's (< 0.01 for the same configuration).
test('a coordinator and 3 worker processes train to completion and the model they write detects the objects', async (t) => {
  const modelDir = data.path('model');
  const coordinator = startCoordinator([
    ...['--train', data.train, '--validation', data.train, ...tinySsdFlags(data)],
    ...['--mini-batch-size', '4', '--epochs', '25', '--optimizer', 'adam', '--learning-rate', '0.005'],
    ...['--lr-warmup-steps', '10', '--workers', '3', '--model-dir', modelDir],
  ]);
  const port = await coordinatorPort(coordinator);
  const workers = ['w0', 'w1', 'w2'].map((id) => startWorker(port, id));
  t.is(await coordinator.exited, 0);
  for (const w of workers) t.is(await w.exited, 0);
  const summary = lastJsonLine(coordinator.stdout());
  t.is(summary.workers, 3);
  t.is(summary.epochs, 25);
  t.log(`validation mAP ${summary.validationMap}`);
  t.true((summary.validationMap as number) >= 0.1, `mAP ${summary.validationMap}`);
  t.true((await readdir(modelDir)).includes('model.json'));
});
