import test from 'ava';
import {
  checkNumTrainingSamples,
  compileHyperparameters,
  freezeLayerRegExp,
  toSageMakerHyperparams,
} from '../../../shared/config/compile.js';
import { ConfigError } from '../../../shared/errors.js';

/**
 * hyperparams.json from a real SageMaker object-detection model artifact (every value a string), from
 * aws-samples/amazon-sagemaker-aws-greengrass-custom-object-detection-model:
 * greengrass/run_model/resources/ml/od/hyperparams.json (SPEC 1.1).
 */
const SAGEMAKER_ARTIFACT = {
  label_width: '150',
  early_stopping_min_epochs: '10',
  epochs: '50',
  overlap_threshold: '0.5',
  lr_scheduler_factor: '0.1',
  _num_kv_servers: 'auto',
  weight_decay: '0.0005',
  mini_batch_size: '16',
  use_pretrained_model: '1',
  freeze_layer_pattern: '',
  lr_scheduler_step: '10',
  early_stopping: 'False',
  early_stopping_patience: '5',
  momentum: '0.9',
  num_training_samples: '1408',
  optimizer: 'sgd',
  _tuning_objective_metric: '',
  early_stopping_tolerance: '0.0',
  learning_rate: '0.001',
  kv_store: 'device',
  nms_threshold: '0.45',
  num_classes: '4',
  base_network: 'resnet-50',
  nms_topk: '400',
  _kvstore: 'device',
  image_shape: '512',
};

const REQUIRED = { num_classes: '3', num_training_samples: '100' };

function problemsOf(raw: Record<string, unknown>): readonly string[] {
  try {
    compileHyperparameters(raw);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

test('compileHyperparameters parses the strings of a real SageMaker hyperparams.json', (t) => {
  const hp = compileHyperparameters(SAGEMAKER_ARTIFACT);
  t.like(hp, {
    num_classes: 4,
    num_training_samples: 1408,
    base_network: 'resnet-50',
    use_pretrained_model: 1,
    epochs: 50,
    learning_rate: 0.001,
    lr_scheduler_factor: 0.1,
    optimizer: 'sgd',
    momentum: 0.9,
    weight_decay: 0.0005,
    mini_batch_size: 16,
    image_shape: 512,
    label_width: 150,
    overlap_threshold: 0.5,
    nms_threshold: 0.45,
    nms_topk: 400,
    freeze_layer_pattern: '',
    kv_store: 'device',
    early_stopping: false,
    early_stopping_min_epochs: 10,
    early_stopping_patience: 5,
    early_stopping_tolerance: 0,
  });
  t.deepEqual(hp.lr_scheduler_step, [10]);
  t.deepEqual(hp.extra, { _num_kv_servers: 'auto', _tuning_objective_metric: '', _kvstore: 'device' });
});

test('compileHyperparameters fills every default of SPEC 1.1 when only the required keys are given', (t) => {
  const hp = compileHyperparameters(REQUIRED);
  t.deepEqual(
    { ...hp },
    {
      num_classes: 3,
      num_training_samples: 100,
      base_network: 'vgg-16',
      use_pretrained_model: 1,
      epochs: 30,
      learning_rate: 0.001,
      lr_scheduler_step: [],
      lr_scheduler_factor: 0.1,
      optimizer: 'sgd',
      momentum: 0.9,
      weight_decay: 0.0005,
      mini_batch_size: 32,
      image_shape: 300,
      label_width: 350,
      overlap_threshold: 0.5,
      nms_threshold: 0.45,
      nms_topk: 400,
      freeze_layer_pattern: '',
      kv_store: '-',
      early_stopping: false,
      early_stopping_min_epochs: 10,
      early_stopping_patience: 5,
      early_stopping_tolerance: 0,
      lr_warmup_steps: 0,
      clip_gradient_norm: 0,
      extra: {},
    },
  );
});

test('compileHyperparameters treats JSON numbers and booleans like the strings SageMaker writes', (t) => {
  const fromJson = compileHyperparameters({
    num_classes: 3,
    num_training_samples: 100,
    mini_batch_size: 8,
    learning_rate: 0.01,
    early_stopping: true,
    lr_scheduler_step: [5, 9],
  });
  const fromStrings = compileHyperparameters({
    ...REQUIRED,
    mini_batch_size: '8',
    learning_rate: '0.01',
    early_stopping: 'True',
    lr_scheduler_step: '5, 9',
  });
  t.deepEqual(fromJson, fromStrings);
});

// Every key: values on both sides of each boundary of SPEC 1.1 (and the extensions).
const RANGES: [key: string, good: unknown[], bad: unknown[]][] = [
  ['num_classes', ['1', 20], ['0', '-1', '1.5', 'abc', '']],
  ['num_training_samples', ['1', 16551], ['0', '2.5', 'many']],
  ['base_network', ['vgg-16', 'resnet-50', 'tiny'], ['vgg16', 'resnet-101', '']],
  ['use_pretrained_model', ['0', '1', 0, 1], ['2', '-1', 'yes']],
  ['epochs', ['1', '240'], ['0', '-3', '1.5']],
  ['learning_rate', ['1', '0.5', '1e-6', 0.001], ['0', '1.01', '-0.1', 'abc', '', '0x10', 'Infinity']],
  ['lr_scheduler_factor', ['0.5', '0.99'], ['0', '1', '1.5']],
  ['optimizer', ['sgd', 'adam', 'rmsprop', 'adadelta'], ['SGD', 'adagrad', '']],
  ['momentum', ['1', '0.9', '0.001'], ['0', '1.1']],
  ['weight_decay', ['0.0005', '0.999'], ['0', '1', '2']],
  ['mini_batch_size', ['1', '64'], ['0', 'abc', '3.5', '']],
  ['image_shape', ['300', '512', 600], ['299', '0', 'abc', '300.5']],
  ['label_width', ['7', '350'], ['6', '0', 'wide']],
  ['overlap_threshold', ['1', '0.5'], ['0', '1.5']],
  ['nms_threshold', ['1', '0.45'], ['0', '-0.45']],
  ['nms_topk', ['400', '1', '-1', -1], ['0', '-2', '1.5']],
  ['freeze_layer_pattern', ['', '^(conv1_|conv2_).*'], ['(', '[a-']],
  ['kv_store', ['dist_sync', 'device', 'local', '-'], ['dist_async', 'nccl', '']],
  ['early_stopping', ['True', 'False', 'true', 'false', '1', '0', true, false, 1, 0], ['yes', 'TRUE', 2]],
  ['early_stopping_min_epochs', ['1', '10'], ['0', 'x']],
  ['early_stopping_patience', ['1', '5'], ['0', '-5']],
  ['early_stopping_tolerance', ['0', '0.0', '1', '0.05'], ['-0.01', '1.01', 'none']],
  ['lr_warmup_steps', ['0', '500'], ['-1', '2.5']],
  ['clip_gradient_norm', ['0', '10', '0.5'], ['-1', 'off']],
  [
    'lr_scheduler_step',
    ['', '80, 160', '80,160', '[80,160]', [80, 160], ['10']],
    ['160,80', '0', '1.5', '80,', 'x'],
  ],
];

for (const [key, good, bad] of RANGES) {
  test(`compileHyperparameters accepts ${key} inside its range and names key and value outside it`, (t) => {
    for (const value of good)
      t.deepEqual(problemsOf({ ...REQUIRED, [key]: value }), [], `${key}=${String(value)}`);
    for (const value of bad) {
      const problems = problemsOf({ ...REQUIRED, [key]: value });
      t.is(problems.length, 1, `${key}=${String(value)}`);
      t.true(problems[0]!.startsWith(`${key}: `), problems[0]);
      const shown = typeof value === 'string' ? `'${value}'` : JSON.stringify(value);
      t.true(problems[0]!.includes(shown), problems[0]);
    }
  });
}

test('compileHyperparameters reports the allowed range in the message', (t) => {
  t.deepEqual(problemsOf({ ...REQUIRED, mini_batch_size: 'abc' }), [
    "mini_batch_size: must be an integer >= 1, got 'abc'",
  ]);
  t.deepEqual(problemsOf({ ...REQUIRED, learning_rate: '2' }), [
    "learning_rate: must be a number in (0, 1], got '2'",
  ]);
});

test('compileHyperparameters collects every problem into one ConfigError', (t) => {
  const err = t.throws(
    () =>
      compileHyperparameters({
        num_classes: '0',
        mini_batch_size: 'abc',
        optimizer: 'adagrad',
        mini_batch: '8',
        _internal: { nested: true },
      }),
    { instanceOf: ConfigError },
  );
  const keys = err.problems.map((p) => p.split(':')[0]).sort();
  t.deepEqual(keys, [
    '_internal',
    'mini_batch',
    'mini_batch_size',
    'num_classes',
    'num_training_samples',
    'optimizer',
  ]);
  t.is(err.code, 'CONFIG');
  t.true(err.message.includes('num_training_samples: required'));
});

test('compileHyperparameters suggests the closest known name for an unknown key', (t) => {
  t.deepEqual(problemsOf({ ...REQUIRED, mini_batch: '8' }), [
    'mini_batch: unknown hyperparameter (did you mean mini_batch_size?)',
  ]);
  t.deepEqual(problemsOf({ ...REQUIRED, 'learning-rate': '0.1' }), [
    'learning-rate: unknown hyperparameter (did you mean learning_rate?)',
  ]);
  t.deepEqual(problemsOf({ ...REQUIRED, zzz: '1' }), ['zzz: unknown hyperparameter']);
});

test('compileHyperparameters refuses kv_store dist_async because training is synchronous', (t) => {
  const [problem] = problemsOf({ ...REQUIRED, kv_store: 'dist_async' });
  t.regex(
    problem!,
    /^kv_store: 'dist_async' is not supported \(ssd-cluster trains synchronously; use dist_sync\)/,
  );
});

test('compileHyperparameters keeps _-prefixed SageMaker internals as strings in extra', (t) => {
  const hp = compileHyperparameters({ ...REQUIRED, _kvstore: 'device', _num_kv_servers: 2, _flag: true });
  t.deepEqual(hp.extra, { _kvstore: 'device', _num_kv_servers: '2', _flag: 'true' });
  t.deepEqual(problemsOf({ ...REQUIRED, _bad: [1] }), ['_bad: must be a string, number or boolean, got [1]']);
});

test('compileHyperparameters reports a null value instead of taking the default', (t) => {
  t.deepEqual(problemsOf({ ...REQUIRED, epochs: null }), ['epochs: must be an integer >= 1, got null']);
});

test('compileHyperparameters gives tiny a 128 default image_shape and any multiple of 32 from 64', (t) => {
  t.is(compileHyperparameters({ ...REQUIRED, base_network: 'tiny' }).image_shape, 128);
  for (const side of ['64', '96', '128', '256']) {
    t.is(
      compileHyperparameters({ ...REQUIRED, base_network: 'tiny', image_shape: side }).image_shape,
      Number(side),
    );
  }
  for (const side of ['32', '100', '300']) {
    t.deepEqual(problemsOf({ ...REQUIRED, base_network: 'tiny', image_shape: side }), [
      `image_shape: must be a multiple of 32 >= 64 for base_network 'tiny', got '${side}'`,
    ]);
  }
});

test('compileHyperparameters keeps SageMaker image_shape >= 300 for vgg-16 and resnet-50', (t) => {
  t.is(
    compileHyperparameters({ ...REQUIRED, base_network: 'resnet-50', image_shape: '300' }).image_shape,
    300,
  );
  t.deepEqual(problemsOf({ ...REQUIRED, image_shape: '256' }), [
    "image_shape: must be an integer >= 300 for base_network 'vgg-16', got '256'",
  ]);
  t.deepEqual(problemsOf({ ...REQUIRED, base_network: 'resnet-50', image_shape: 128 }), [
    "image_shape: must be an integer >= 300 for base_network 'resnet-50', got 128",
  ]);
});

test('compileHyperparameters reads use_pretrained_model as 0 for tiny without an error', (t) => {
  t.is(
    compileHyperparameters({ ...REQUIRED, base_network: 'tiny', use_pretrained_model: '1' })
      .use_pretrained_model,
    0,
  );
  t.is(compileHyperparameters({ ...REQUIRED, base_network: 'vgg-16' }).use_pretrained_model, 1);
  t.is(compileHyperparameters({ ...REQUIRED, use_pretrained_model: '0' }).use_pretrained_model, 0);
});

test('compileHyperparameters returns a deeply frozen object', (t) => {
  const hp = compileHyperparameters(SAGEMAKER_ARTIFACT);
  t.true(Object.isFrozen(hp));
  t.true(Object.isFrozen(hp.lr_scheduler_step));
  t.true(Object.isFrozen(hp.extra));
  t.throws(() => {
    (hp as { epochs: number }).epochs = 1;
  });
  t.throws(() => {
    (hp.lr_scheduler_step as number[]).push(99);
  });
  t.is(hp.epochs, 50);
});

test('compileHyperparameters does not share the input array of lr_scheduler_step', (t) => {
  const steps = [3, 6];
  const hp = compileHyperparameters({ ...REQUIRED, lr_scheduler_step: steps });
  steps.push(9);
  t.deepEqual(hp.lr_scheduler_step, [3, 6]);
});

test('toSageMakerHyperparams writes every value as a string that compiles back to the same object', (t) => {
  const cases = [
    compileHyperparameters(SAGEMAKER_ARTIFACT),
    compileHyperparameters({
      ...REQUIRED,
      base_network: 'tiny',
      image_shape: 96,
      early_stopping: true,
      lr_scheduler_step: [2, 4],
      learning_rate: 1e-7,
      lr_warmup_steps: 50,
      clip_gradient_norm: 2.5,
      nms_topk: -1,
      freeze_layer_pattern: '^conv1_.*',
    }),
  ];
  for (const hp of cases) {
    const written = toSageMakerHyperparams(hp);
    for (const [key, value] of Object.entries(written)) t.is(typeof value, 'string', key);
    t.deepEqual(compileHyperparameters(written), hp);
  }
  const written = toSageMakerHyperparams(cases[1]!);
  t.is(written.early_stopping, 'True');
  t.is(written.lr_scheduler_step, '2,4');
  t.is(written.use_pretrained_model, '0');
});

test('freezeLayerRegExp compiles the pattern and is undefined for none', (t) => {
  const hp = compileHyperparameters({ ...REQUIRED, freeze_layer_pattern: '^(conv1_|conv2_).*' });
  const re = freezeLayerRegExp(hp);
  t.true(re?.test('conv2_1_weight'));
  t.false(re?.test('conv3_1_weight'));
  t.is(freezeLayerRegExp(compileHyperparameters(REQUIRED)), undefined);
});

test('checkNumTrainingSamples names both counts when they differ', (t) => {
  const hp = compileHyperparameters(SAGEMAKER_ARTIFACT);
  t.is(checkNumTrainingSamples(hp, 1408), undefined);
  const message = checkNumTrainingSamples(hp, 1400);
  t.regex(message ?? '', /num_training_samples: is 1408 but the train data has 1400 records/);
  t.regex(message ?? '', /corrupt records count too/, 'train and coordinator both say so');
  const empty = checkNumTrainingSamples(hp, 0) ?? '';
  t.regex(empty, /^num_training_samples: the train data has no usable records/);
  t.notRegex(empty, /set num_training_samples to 0/, 'num_training_samples must be >= 1');
});
