import { open, readFile } from 'node:fs/promises';
import test from 'ava';
import { parseIndexFile } from '../../shared/recordio/index-file.js';
import { lastJsonLine, runCliProcess } from '../helpers/cli-process.js';
import { synthFixture, tinySsdFlags } from '../helpers/synth-fixture.js';

const data = synthFixture(test, { train: 16, validation: 4 });

test('a corrupt record is skipped with a warning naming file and offset, counted, and the cluster job still finishes', async (t) => {
  const index = parseIndexFile(await readFile(data.data('train.idx'), 'utf8'), 'train.idx');
  const victim = index[5]!.offset;
  const file = await open(data.train, 'r+');
  await file.write(Buffer.from([0xde, 0xad, 0xbe, 0xef]), 0, 4, victim); // destroy the record's magic
  await file.close();
  const run = await runCliProcess(
    [
      ...['local', '--workers', '2', '--train', data.train, ...tinySsdFlags(data)],
      ...['--mini-batch-size', '4', '--epochs', '1', '--backend', 'wasm', '--port', '0'],
      ...['--model-dir', data.path('model'), '--run-dir', data.path('run')],
    ],
    { signal: AbortSignal.timeout(120_000) },
  );
  t.is(run.code, 0, run.stderr);
  const summary = lastJsonLine(run.stdout);
  t.is(summary.images, 15, 'one of the 16 samples was skipped');
  const finished = run.stderr.split('\n').find((l) => l.includes('"training finished"'));
  t.is(JSON.parse(finished!).badRecords, 1);
  const logs = await Promise.all(
    [0, 1].map((i) => readFile(data.path('run', 'logs', `worker-${i}.log`), 'utf8')),
  );
  t.regex(logs.join('\n'), new RegExp(`train\\.rec@${victim}`));
});
