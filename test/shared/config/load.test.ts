import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import test, { type ExecutionContext } from 'ava';
import { HYPERPARAMETER_NAMES } from '../../../shared/config/hyperparameters.js';
import {
  hyperparameterOptions,
  loadHyperparameters,
  readHyperparameterFile,
} from '../../../shared/config/load.js';
import { ConfigError } from '../../../shared/errors.js';

async function tempFile(t: ExecutionContext, name: string, text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ssd-hp-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

/** Parses argv the way a command does: its own options plus the hyperparameter flags. */
function parseCommand(args: string[]) {
  return parseArgs({
    args,
    options: { ...hyperparameterOptions, workers: { type: 'string' }, help: { type: 'boolean' } },
    strict: true,
  }).values;
}

test('hyperparameterOptions has one dashed string flag per hyperparameter plus --hyperparameters', (t) => {
  const flags = Object.keys(hyperparameterOptions).sort();
  const expected = [...HYPERPARAMETER_NAMES.map((n) => n.replaceAll('_', '-')), 'hyperparameters'].sort();
  t.deepEqual(flags, expected);
  for (const option of Object.values(hyperparameterOptions)) t.is(option.type, 'string');
});

test('loadHyperparameters lets flags win over the file and the file over the defaults', async (t) => {
  const file = await tempFile(
    t,
    'hyperparameters.json',
    JSON.stringify({ num_classes: '2', num_training_samples: '64', mini_batch_size: '16', epochs: '50' }),
  );
  const values = parseCommand([
    '--hyperparameters',
    file,
    '--mini-batch-size',
    '8',
    '--lr-scheduler-step',
    '80,160',
    '--workers',
    '3',
  ]);
  const hp = await loadHyperparameters(values, {
    defaults: { epochs: 5, base_network: 'tiny', mini_batch_size: 4 },
  });
  t.is(hp.mini_batch_size, 8);
  t.is(hp.epochs, 50);
  t.is(hp.base_network, 'tiny');
  t.deepEqual(hp.lr_scheduler_step, [80, 160]);
  t.is(hp.num_classes, 2);
});

test('loadHyperparameters works from flags alone and ignores the command’s other flags', async (t) => {
  const values = parseCommand([
    '--num-classes',
    '5',
    '--num-training-samples',
    '10',
    '--workers',
    '2',
    '--help',
  ]);
  const hp = await loadHyperparameters(values);
  t.is(hp.num_classes, 5);
  t.is(hp.num_training_samples, 10);
  t.deepEqual(hp.extra, {});
});

test('loadHyperparameters names the flag or the file a bad value came from', async (t) => {
  const file = await tempFile(
    t,
    'hp.json',
    JSON.stringify({ num_classes: '2', epochs: 'ten', optimiser: 'sgd' }),
  );
  const values = parseCommand(['--hyperparameters', file, '--mini-batch-size', 'abc']);
  const err = await t.throwsAsync(loadHyperparameters(values), { instanceOf: ConfigError });
  t.deepEqual([...err.problems].sort(), [
    `epochs: must be an integer >= 1, got 'ten' (from ${file})`,
    "mini_batch_size: must be an integer >= 1, got 'abc' (from --mini-batch-size)",
    'num_training_samples: required, must be an integer >= 1',
    `optimiser: unknown hyperparameter (did you mean optimizer?) (from ${file})`,
  ]);
});

test('loadHyperparameters reads through an injected readFile', async (t) => {
  const read: string[] = [];
  const readFile = async (path: string) => {
    read.push(path);
    return '{"num_classes": 1, "num_training_samples": 1, "_kvstore": "device"}';
  };
  const hp = await loadHyperparameters({ hyperparameters: 's3://bucket/hp.json' }, { readFile });
  t.deepEqual(read, ['s3://bucket/hp.json']);
  t.deepEqual(hp.extra, { _kvstore: 'device' });
});

test('readHyperparameterFile names the file when it is missing', async (t) => {
  const path = join(tmpdir(), 'ssd-hp-does-not-exist', 'hp.json');
  const err = await t.throwsAsync(readHyperparameterFile(path), { instanceOf: ConfigError });
  t.regex(err.message, new RegExp(`^--hyperparameters ${path}: cannot read the file \\(.*ENOENT`));
  t.truthy(err.cause);
});

test('readHyperparameterFile names the file and the JSON problem', async (t) => {
  const path = await tempFile(t, 'broken.json', '{"epochs": "10",}');
  const err = await t.throwsAsync(readHyperparameterFile(path), { instanceOf: ConfigError });
  t.true(err.message.startsWith(`--hyperparameters ${path}: not valid JSON (`), err.message);
  t.true(err.cause instanceof SyntaxError);
});

test('readHyperparameterFile reads a file that starts with a UTF-8 byte-order mark', async (t) => {
  const path = await tempFile(t, 'bom.json', '\uFEFF{"epochs": "10"}');
  t.deepEqual(await readHyperparameterFile(path), { epochs: '10' });
});

test('readHyperparameterFile refuses JSON that is not an object', async (t) => {
  for (const [text, got] of [
    ['[1, 2]', 'an array'],
    ['null', 'null'],
    ['"epochs"', 'a string'],
  ] as const) {
    const path = await tempFile(t, 'hp.json', text);
    const err = await t.throwsAsync(readHyperparameterFile(path), { instanceOf: ConfigError });
    t.is(err.message, `--hyperparameters ${path}: must hold a JSON object of hyperparameters, got ${got}`);
  }
});
