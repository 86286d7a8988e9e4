import test from 'ava';
import { LEARN_HYPERPARAMETERS, shellWord, synthCacheDir } from '../../../cli/commands/bench/learn.js';
import { compileHyperparameters } from '../../../shared/config/compile.js';
import { SYNTH_DEFAULTS } from '../../../shared/synth/synth-image.js';

test('shellWord leaves plain words alone and single-quotes the rest', (t) => {
  t.is(shellWord('/tmp/synth/train.rec'), '/tmp/synth/train.rec');
  t.is(shellWord('s3://bucket/key'), 's3://bucket/key');
  t.is(shellWord(''), "''");
  t.is(shellWord('9, 12'), "'9, 12'");
  t.is(shellWord("it's"), "'it'\\''s'");
});

test('synthCacheDir names one folder per synth configuration', (t) => {
  const a = synthCacheDir('/cache', SYNTH_DEFAULTS);
  t.regex(a, /^\/cache\/synth-[0-9a-f]{10}$/);
  t.is(synthCacheDir('/cache', { ...SYNTH_DEFAULTS }), a);
  t.not(synthCacheDir('/cache', { ...SYNTH_DEFAULTS, train: SYNTH_DEFAULTS.train + 1 }), a);
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
