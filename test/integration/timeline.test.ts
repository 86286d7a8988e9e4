import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'ava';
import { readTraceFile } from '../../shared/timeline.js';
import { runCliProcess } from '../helpers/cli-process.js';

test('local --timeline writes one valid Chrome trace with the steps of every rank', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'ssd-trace-'));
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
  const trace = path.join(dir, 'trace.json');
  const run = await runCliProcess(
    [
      'local',
      '--workers',
      '2',
      '--train',
      path.join(dir, 'train.rec'),
      '--num-classes',
      '5',
      '--num-training-samples',
      '16',
      '--base-network',
      'tiny',
      '--image-shape',
      '64',
      '--mini-batch-size',
      '2',
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
      '--metrics-port',
      '0',
      '--timeline',
      trace,
      '--log-level',
      'warn',
    ],
    { signal: AbortSignal.timeout(120_000) },
  );
  t.is(run.code, 0, run.stderr);
  const parsed = await readTraceFile(trace);
  const steps = parsed.traceEvents.filter((e) => e.ph === 'X' && e.name.startsWith('step '));
  t.deepEqual([...new Set(steps.map((e) => e.pid))].sort(), [0, 1], 'both ranks are in the trace');
  t.is(steps.length, 2 * 4, '4 steps of 2 ranks');
  t.true(parsed.traceEvents.some((e) => e.name === 'allreduce'));
});
