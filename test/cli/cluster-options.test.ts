import test from 'ava';
import { compileClusterSettings, parseThreadsFlag } from '../../cli/cluster-options.js';

const JOB = {
  train: 'train.rec',
  'model-dir': '/tmp/model',
  'num-classes': '2',
  'num-training-samples': '64',
  'base-network': 'tiny',
} as const;

test('compileClusterSettings puts --threads into the job the workers receive', async (t) => {
  t.is((await compileClusterSettings({ ...JOB, threads: '2' })).spec.threads, 2);
  t.is((await compileClusterSettings(JOB)).spec.threads, 0, '0: each worker decides (its --threads, else 1)');
});

test('--threads outside 1..8 is a usage error naming the flag', async (t) => {
  await t.throwsAsync(compileClusterSettings({ ...JOB, threads: '0' }), {
    message: "--threads: expected an integer >= 1 and <= 8, got '0'",
  });
  t.throws(() => parseThreadsFlag('9'), { message: /--threads: .* <= 8, got '9'/ });
  t.throws(() => parseThreadsFlag('1.5'), { message: /--threads: expected an integer/ });
  t.is(parseThreadsFlag(undefined), undefined);
});
