import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'ava';
import { parseIndexFile } from '../../shared/recordio/index-file.js';
import { lastJsonLine, runCliProcess } from '../helpers/cli-process.js';

test('a corrupt record is skipped with a warning naming file and offset, counted, and the cluster job still finishes', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'ssd-bad-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const synth = await runCliProcess([
    'synth',
    '--out',
    dir,
    '--train',
    '16',
    '--validation',
    '4',
    '--image-size',
    '64',
    '--log-level',
    'warn',
  ]);
  t.is(synth.code, 0, synth.stderr);
  const rec = path.join(dir, 'train.rec');
  const index = parseIndexFile(await readFile(path.join(dir, 'train.idx'), 'utf8'), 'train.idx');
  const victim = index[5]!.offset;
  const file = await open(rec, 'r+');
  await file.write(Buffer.from([0xde, 0xad, 0xbe, 0xef]), 0, 4, victim); // destroy the record's magic
  await file.close();
  const run = await runCliProcess(
    [
      'local',
      '--workers',
      '2',
      '--train',
      rec,
      '--num-classes',
      '5',
      '--num-training-samples',
      '16',
      '--base-network',
      'tiny',
      '--image-shape',
      '64',
      '--mini-batch-size',
      '4',
      '--epochs',
      '1',
      '--model-dir',
      path.join(dir, 'model'),
      '--run-dir',
      path.join(dir, 'run'),
      '--backend',
      'wasm',
      '--port',
      '0',
    ],
    { signal: AbortSignal.timeout(120_000) },
  );
  t.is(run.code, 0, run.stderr);
  const summary = lastJsonLine(run.stdout);
  t.is(summary.images, 15, 'one of the 16 samples was skipped');
  const finished = run.stderr.split('\n').find((l) => l.includes('"training finished"'));
  t.is(JSON.parse(finished!).badRecords, 1);
  const logs = await Promise.all(
    [0, 1].map((i) => readFile(path.join(dir, 'run', 'logs', `worker-${i}.log`), 'utf8')),
  );
  t.regex(logs.join('\n'), new RegExp(`train\\.rec@${victim}`));
});
