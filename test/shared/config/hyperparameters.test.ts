import test from 'ava';
import {
  describeHyperparameters,
  HYPERPARAMETER_NAMES,
  HYPERPARAMETER_SCHEMA,
} from '../../../shared/config/hyperparameters.js';

test('describeHyperparameters lists every hyperparameter with what it allows and its default', (t) => {
  const text = describeHyperparameters();
  for (const name of HYPERPARAMETER_NAMES) {
    const line = text.split('\n').find((l) => l.trimStart().startsWith(`${name} `));
    t.truthy(line, name);
    t.true(line!.includes(HYPERPARAMETER_SCHEMA[name].type.allowed), name);
  }
  t.regex(text, /num_classes +an integer >= 1; required/);
  t.regex(text, /mini_batch_size +an integer >= 1; default 32/);
  t.regex(text, /freeze_layer_pattern .*; default ''/);
});

test('describeHyperparameters marks the ssd-cluster extensions', (t) => {
  const text = describeHyperparameters();
  const notes = (name: string) => {
    const lines = text.split('\n');
    const i = lines.findIndex((l) => l.trimStart().startsWith(`${name} `));
    return lines[i + 1] ?? '';
  };
  t.regex(notes('lr_warmup_steps'), /\[ssd-cluster extension\]/);
  t.regex(notes('clip_gradient_norm'), /\[ssd-cluster extension\]/);
  t.notRegex(notes('learning_rate'), /extension/);
  t.regex(notes('base_network'), /'tiny' is an ssd-cluster extension/);
  t.regex(notes('image_shape'), /tiny \(extension\): a multiple of 32 >= 64/);
});

test('the schema requires exactly num_classes and num_training_samples', (t) => {
  const required = HYPERPARAMETER_NAMES.filter((n) => HYPERPARAMETER_SCHEMA[n].default === undefined);
  t.deepEqual(required, ['num_classes', 'num_training_samples']);
});
