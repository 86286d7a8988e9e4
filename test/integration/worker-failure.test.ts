import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'ava';
import { lastJsonLine, runCliProcess } from '../helpers/cli-process.js';
import { killAll, start } from '../helpers/logged-process.js';

let dir: string;

test.before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'ssd-fail-'));
  const synth = await runCliProcess([
    'synth',
    '--out',
    dir,
    '--train',
    '96',
    '--validation',
    '6',
    '--image-size',
    '64',
    '--log-level',
    'warn',
  ]);
  if (synth.code !== 0) throw new Error(synth.stderr);
});

test.after.always(async () => {
  killAll();
  await rm(dir, { recursive: true, force: true });
});

test('a worker killed with SIGKILL mid-epoch is dropped and the job finishes with the survivors', async (t) => {
  const coordinator = start([
    'coordinator',
    '--metrics-port',
    '0',
    '--train',
    path.join(dir, 'train.rec'),
    '--validation',
    path.join(dir, 'validation.rec'),
    '--num-classes',
    '5',
    '--num-training-samples',
    '96',
    '--base-network',
    'tiny',
    '--image-shape',
    '64',
    '--mini-batch-size',
    '2',
    '--epochs',
    '3',
    '--workers',
    '3',
    '--min-workers',
    '2',
    '--port',
    '0',
    '--heartbeat-timeout',
    '2',
    '--model-dir',
    path.join(dir, 'model'),
    '--log-level',
    'debug',
  ]);
  const listening = await coordinator.waitFor(
    (l) => l.msg === 'coordinator listening',
    60_000,
    'the coordinator',
  );
  const address = `127.0.0.1:${listening.port}`;
  const workers = [0, 1, 2].map((i) =>
    start([
      'worker',
      '--coordinator',
      address,
      '--backend',
      'wasm',
      '--worker-id',
      `w${i}`,
      '--log-level',
      'warn',
    ]),
  );
  await coordinator.waitFor(
    (l) => l.msg === 'step committed' && (l.globalStep as number) >= 3,
    120_000,
    'step 3',
  );
  const killedAt = performance.now();
  workers[2]!.child.kill('SIGKILL');
  const reformed = await coordinator.waitFor(
    (l) => l.msg === 'membership ring-formed' && (l.ring as string[]).length === 2,
    30_000,
    'the ring to re-form with 2 workers',
  );
  const resumed = await coordinator.waitFor(
    (l) => l.msg === 'step committed' && (l.at as number) > (reformed.at as number),
    60_000,
    'a step committed by the new ring',
  );
  t.log(
    `detected in ${Math.round((reformed.at as number) - killedAt)} ms, training again after ${Math.round((resumed.at as number) - killedAt)} ms`,
  );
  t.is(await coordinator.exited, 0);
  const summary = lastJsonLine(coordinator.stdout());
  t.is(summary.workers, 2);
  t.is(summary.epochs, 3);
  t.is(await workers[0]!.exited, 0);
  t.is(await workers[1]!.exited, 0);
  t.true(coordinator.lines.some((l) => l.msg === 'membership lost' && l.workerId === 'w2'));
});

test('a worker that joins a running job copies the current state and trains with the ring to the end', async (t) => {
  const coordinator = start([
    'coordinator',
    '--metrics-port',
    '0',
    '--train',
    path.join(dir, 'train.rec'),
    '--num-classes',
    '5',
    '--num-training-samples',
    '96',
    '--base-network',
    'tiny',
    '--image-shape',
    '64',
    '--mini-batch-size',
    '2',
    '--epochs',
    '3',
    '--workers',
    '2',
    '--min-workers',
    '2',
    '--max-workers',
    '3',
    '--port',
    '0',
    '--heartbeat-timeout',
    '3',
    '--model-dir',
    path.join(dir, 'model-join'),
    '--log-level',
    'debug',
  ]);
  const listening = await coordinator.waitFor(
    (l) => l.msg === 'coordinator listening',
    60_000,
    'the coordinator',
  );
  const address = `127.0.0.1:${listening.port}`;
  const worker = (id: string) =>
    start([
      'worker',
      '--coordinator',
      address,
      '--backend',
      'wasm',
      '--worker-id',
      id,
      '--log-level',
      'info',
    ]);
  const first = [worker('j0'), worker('j1')];
  await coordinator.waitFor(
    (l) => l.msg === 'step committed' && (l.globalStep as number) >= 3,
    120_000,
    'step 3',
  );
  const late = worker('j2');
  await coordinator.waitFor(
    (l) => l.msg === 'membership ring-formed' && (l.ring as string[]).length === 3,
    60_000,
    'the ring to admit the third worker',
  );
  const copied = await late.waitFor((l) => l.msg === 'state copied', 60_000, 'the state transfer');
  t.true((copied.globalStep as number) >= 3);
  t.is(await coordinator.exited, 0);
  for (const w of [...first, late]) t.is(await w.exited, 0);
  const summary = lastJsonLine(coordinator.stdout());
  t.is(summary.workers, 3);
  t.is(summary.epochs, 3);
});
