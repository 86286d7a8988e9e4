import { PassThrough } from 'node:stream';
import test from 'ava';
import { main } from '../../../cli/main.js';
import type { TrainingSummary } from '../../../coordinator/coordinator.js';
import { withScaling } from '../../../coordinator/main.js';
import { createCoordinatorStats } from '../../../coordinator/stats.js';
import { FakeClock } from '../../../shared/clock.js';
import { noopLogger } from '../../../shared/logging.js';
import { portInUse, runCliCatchingStderr } from '../../helpers/port-in-use.js';
import { synthFixture, tinySsdFlags } from '../../helpers/synth-fixture.js';

async function helpOf(command: string): Promise<string> {
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  const code = await main([command, '--help'], { stdout: out, stderr: out, logger: noopLogger });
  if (code !== 0) throw new Error(`${command} --help exited ${code}: ${Buffer.concat(chunks)}`);
  return Buffer.concat(chunks).toString();
}

test('coordinator --help names every field of the summary line it prints', async (t) => {
  // Typed as the coordinator's summary, so a field added there must be added here (and to the help).
  const trained: TrainingSummary = {
    images: 64,
    seconds: 2,
    imagesPerSecond: 32,
    workers: 2,
    epochs: 1,
    validationMap: null,
    modelDir: '/tmp/model',
  };
  const fields = Object.keys(withScaling(trained, createCoordinatorStats(new FakeClock(0))));
  t.true(fields.includes('speedup') && fields.includes('scalingEfficiency'));
  const help = (await helpOf('coordinator')).replace(/\s+/g, ' ');
  t.deepEqual(
    fields.filter((field) => !help.includes(`"${field}"`)),
    [],
  );
});

const data = synthFixture(test, { train: 8, validation: 0 });

for (const flag of ['--port', '--metrics-port'] as const) {
  test.serial(
    `coordinator ${flag} on a port in use prints only its error, naming the flag and port`,
    async (t) => {
      const port = await portInUse(t);
      const run = await runCliCatchingStderr([
        ...['coordinator', '--train', data.train, ...tinySsdFlags(data), '--model-dir', data.path('model')],
        ...(flag === '--port' ? ['--port', String(port)] : ['--port', '0', '--metrics-port', String(port)]),
      ]);
      t.is(run.code, 1);
      t.is(run.stdout, '');
      t.regex(
        run.stderr,
        new RegExp(
          `^ssd-cluster coordinator: ${flag} ${port}: .*cannot listen on 0\\.0\\.0\\.0:${port}: .*EADDRINUSE[^\\n]*\\n$`,
        ),
      );
      t.is(run.processStderr, '', 'nothing else on stderr (grpc-js logged the failed bind there)');
    },
  );
}
