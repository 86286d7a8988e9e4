import test from 'ava';
import { readTraceFile } from '../../shared/timeline.js';
import { runCliProcess } from '../helpers/cli-process.js';
import { synthFixture, tinySsdFlags } from '../helpers/synth-fixture.js';

const data = synthFixture(test, { train: 16, validation: 4 });

test('local --timeline writes one valid Chrome trace with the steps of every rank', async (t) => {
  const trace = data.path('trace.json');
  const run = await runCliProcess(
    [
      ...['local', '--workers', '2', '--train', data.train, ...tinySsdFlags(data)],
      ...['--mini-batch-size', '2', '--epochs', '1', '--backend', 'wasm', '--port', '0'],
      ...['--model-dir', data.path('model'), '--run-dir', data.path('run')],
      ...['--metrics-port', '0', '--timeline', trace, '--log-level', 'warn'],
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
