import path from 'node:path';
import test from 'ava';
import { runCliProcess } from '../../helpers/cli-process.js';
import { writeSynthFixture } from '../../worker/train/trainer-fixtures.js';

/** The fields of the `backend ready` log line a run printed on stderr. */
function backendReady(stderr: string): { backend: string; threads: number } | undefined {
  const line = stderr.split('\n').find((l) => l.includes('"backend ready"'));
  return line === undefined ? undefined : JSON.parse(line);
}

// One process each: the wasm backend and its XNNPACK pool are per process.
for (const threads of [1, 2]) {
  test(`train --threads ${threads} runs the wasm backend with ${threads} XNNPACK thread(s)`, async (t) => {
    const fixture = await writeSynthFixture({ train: 8, validation: 0 });
    t.teardown(() => fixture.remove());
    const argv = ['train', '--train', fixture.train, '--num-classes', '5', '--num-training-samples', '8'];
    const flags = ['--base-network', 'tiny', '--image-shape', '64', '--mini-batch-size', '8'];
    const run = await runCliProcess(
      [
        ...argv,
        ...flags,
        '--epochs',
        '1',
        '--model-dir',
        path.join(fixture.dir, 'model'),
        '--backend',
        'wasm',
        ...(threads === 1 ? [] : ['--threads', String(threads)]),
      ],
      { signal: AbortSignal.timeout(120_000) },
    );
    t.is(run.code, 0, run.stderr.slice(-2000));
    t.like(backendReady(run.stderr), { backend: 'wasm', threads });
    t.is(JSON.parse(run.stdout.trim().split('\n').at(-1)!).images, 8);
  });
}
