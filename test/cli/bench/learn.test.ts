import test from 'ava';
import { LEARN_HYPERPARAMETERS, shellWord } from '../../../cli/commands/bench/learn.js';
import { compileHyperparameters } from '../../../shared/config/compile.js';
import { SYNTH_DEFAULTS } from '../../../shared/synth/synth-image.js';

test('shellWord leaves plain words alone and single-quotes the rest', (t) => {
  t.is(shellWord('/tmp/synth/train.rec'), '/tmp/synth/train.rec');
  t.is(shellWord('s3://bucket/key'), 's3://bucket/key');
  t.is(shellWord(''), "''");
  t.is(shellWord('9, 12'), "'9, 12'");
  t.is(shellWord("it's"), "'it'\\''s'");
});

test('the learn recipe is a valid set of hyperparameters for the synthetic data set', (t) => {
  const hp = compileHyperparameters({
    ...LEARN_HYPERPARAMETERS,
    num_classes: SYNTH_DEFAULTS.classCount,
    num_training_samples: SYNTH_DEFAULTS.train,
  });
  t.is(hp.base_network, 'tiny');
  t.true(hp.mini_batch_size <= SYNTH_DEFAULTS.train);
});
