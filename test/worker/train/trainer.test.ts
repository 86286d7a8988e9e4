import test from 'ava';
import type { Hyperparameters } from '../../../shared/config/hyperparameters.js';
import { ClusterError, isClusterError } from '../../../shared/errors.js';
import { createMemoryLogger } from '../../../shared/logging.js';
import { createStorage } from '../../../shared/storage/open-storage.js';
import type { Dataset } from '../../../worker/data/dataset.js';
import { openDataset } from '../../../worker/data/open-dataset.js';
import { createSsdModel } from '../../../worker/model/ssd.js';
import { type Collective, soloCollective } from '../../../worker/train/collective.js';
import { createTrainer, type TrainerOptions } from '../../../worker/train/trainer.js';
import { wasmTf, weightsOf } from './step-fixtures.js';
import { type SynthFixture, tinyHyperparameters, writeSynthFixture } from './trainer-fixtures.js';

// The tfjs engine is global: every test here is serial.
const tf = await wasmTf();
const storage = createStorage({ env: {} });
test.after.always(() => storage.close());

let fixture: SynthFixture | undefined;
let train: Dataset;
let validation: Dataset;
test.before(async () => {
  fixture = await writeSynthFixture({ train: 16, validation: 8 });
  train = await openDataset(fixture.train, { storage, numClasses: 5 });
  validation = await openDataset(fixture.validation, { storage, numClasses: 5 });
});
test.after.always(async () => {
  await train?.close();
  await validation?.close();
  await fixture?.remove();
});

function trainerFor(
  t: { teardown(fn: () => unknown): void },
  hp: Readonly<Hyperparameters>,
  seed: number,
  extra: Partial<TrainerOptions> = {},
) {
  const model = createSsdModel({ baseNetwork: 'tiny', imageShape: 64, numClasses: 5, seed });
  const trainer = createTrainer({ tf, model, hp, seed, train, host: 'algo-1', ...extra });
  t.teardown(async () => {
    await trainer.close();
    model.dispose();
  });
  return { model, trainer };
}

const signal = () => new AbortController().signal;

test.serial('two runs with the same seed give bit-identical weights; another seed does not', async (t) => {
  const hp = tinyHyperparameters();
  const runs = [];
  for (const seed of [7, 7, 8]) {
    const { model, trainer } = trainerFor(t, hp, seed);
    const summary = await trainer.run(signal());
    t.like(summary.progress, { epoch: 1, globalStep: 2, imagesTrained: 16, finished: true });
    runs.push(await weightsOf(model));
  }
  t.deepEqual(runs[0], runs[1]);
  t.notDeepEqual(runs[0], runs[2]);
});

test.serial(
  'a run aborted mid-epoch and resumed from getState() ends exactly like an uninterrupted one',
  async (t) => {
    const hp = tinyHyperparameters({ epochs: 2, optimizer: 'adam' });
    const whole = trainerFor(t, hp, 3);
    await whole.trainer.run(signal());

    const controller = new AbortController();
    const first = trainerFor(t, hp, 3, {
      lossLogEvery: 1,
      // Stop after the first step of the second epoch (its loss line is the third).
      metrics: (line) => {
        if (line.includes('epoch=1, batch=0 train smooth_l1')) controller.abort(new Error('preempted'));
      },
    });
    await t.throwsAsync(first.trainer.run(controller.signal), { message: 'preempted' });
    const state = await first.trainer.getState();
    t.like(state.progress, { epoch: 1, position: 8, globalStep: 3, finished: false });

    const second = trainerFor(t, hp, 3);
    second.trainer.setState(state);
    const summary = await second.trainer.run(signal());
    t.like(summary.progress, { epoch: 2, globalStep: 4, imagesTrained: 32 });
    t.deepEqual(await weightsOf(second.model), await weightsOf(whole.model));
    t.deepEqual(
      (await second.trainer.getState()).optimizer.slots,
      (await whole.trainer.getState()).optimizer.slots,
    );
  },
);

test.serial(
  'the trainer prints the SageMaker metric lines and validates every epoch, leaking no tensors',
  async (t) => {
    const lines: string[] = [];
    const before = tf.memory().numTensors;
    const hp = tinyHyperparameters({ epochs: 2 });
    const { model, trainer } = trainerFor(t, hp, 1, { validation, metrics: (line) => lines.push(line) });
    const summary = await trainer.run(signal());
    const count = (regex: RegExp) => lines.filter((l) => regex.test(l)).length;
    t.is(count(/^#quality_metric: host=algo-1, epoch=\d, batch=1 train cross_entropy <loss>=\d/), 2);
    t.is(count(/^#quality_metric: host=algo-1, epoch=\d, batch=1 train smooth_l1 <loss>=\d/), 2);
    t.is(count(/^#throughput_metric: host=algo-1, train throughput=\d+(\.\d+)? records\/second$/), 2);
    const maps = lines
      .filter((l) => l.includes('validation mAP'))
      .map((l) => Number(/<score>=\((\S+)\)/.exec(l)![1]));
    t.deepEqual(maps, [...summary.progress.validationMaps]);
    t.is(summary.validationMap, maps[1]!);
    t.true(maps.every((m) => m >= 0 && m <= 1));
    t.is(lines.at(-1), '#progress_metric: host=algo-1, completed 100 % of epochs');
    await trainer.close();
    model.dispose();
    t.is(tf.memory().numTensors, before);
  },
);

test.serial('the trainer refuses early_stopping without a validation channel', (t) => {
  const hp = tinyHyperparameters({ early_stopping: true });
  const model = createSsdModel({ baseNetwork: 'tiny', imageShape: 64, numClasses: 5, seed: 0 });
  t.teardown(() => model.dispose());
  const err = t.throws(() => createTrainer({ tf, model, hp, seed: 0, train, host: 'h' }));
  t.true(isClusterError(err, 'CONFIG'));
  t.regex(err!.message, /early_stopping: needs a validation channel/);
});

test.serial('setState refuses a state saved with another seed', async (t) => {
  const hp = tinyHyperparameters();
  const state = await trainerFor(t, hp, 1).trainer.getState();
  const err = t.throws(() => trainerFor(t, hp, 2).trainer.setState(state));
  t.true(isClusterError(err, 'CONFIG'));
  t.regex(err!.message, /--seed: is 2 but the saved training state was made with seed 1/);
});

test.serial(
  "an epoch retried after a failed step sums up only the retry's bad records, not the failed run's again",
  async (t) => {
    // num_classes 2 on data with 5 classes: most records are skipped, each with its class in the reason.
    const narrow = await openDataset(fixture!.train, { storage, numClasses: 2 });
    t.teardown(() => narrow.close());
    const logger = createMemoryLogger();
    const { trainer } = trainerFor(t, tinyHyperparameters(), 5, { train: narrow, logger });
    const failing: Collective = {
      ...soloCollective(tinyHyperparameters(), logger),
      afterStep: async () => {
        throw new ClusterError('PEER_LOST', 'ring receiver closed its stream');
      },
    };
    // The failed run trains step 0 (and loads step 1 ahead); the retry trains step 1 only.
    await t.throwsAsync(trainer.run(signal(), failing), { message: /ring receiver/ });
    let skipped = 0;
    let records = 0;
    const retry = soloCollective(tinyHyperparameters(), logger);
    await trainer.run(signal(), {
      ...retry,
      afterStep: async (info) => {
        skipped += info.skipped;
        records += info.images + info.skipped;
        return retry.afterStep(info);
      },
    });
    t.true(skipped > 0, 'the fixture has records with classes beyond 2');
    const summaries = logger.entries.filter((e) => /^skipped \d+ of \d+ records/.test(e.msg));
    t.deepEqual(
      summaries.map((e) => e.msg),
      [`skipped ${skipped} of ${records} records in epoch 0`],
    );
  },
);
