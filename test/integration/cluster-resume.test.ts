import test from 'ava';
import { createCheckpointStore } from '../../coordinator/checkpoint/store.js';
import { sleep } from '../../shared/abort.js';
import { createLocalStorage } from '../../shared/storage/local.js';
import { createStorage } from '../../shared/storage/open-storage.js';
import type { Storage } from '../../shared/storage/storage.js';
import { lastJsonLine } from '../helpers/cli-process.js';
import { coordinatorPort, startCoordinator, startWorker } from '../helpers/cluster-processes.js';
import { killAll } from '../helpers/logged-process.js';
import { readModelWeights, weightsThatDiffer } from '../helpers/model-weights.js';
import { startS3Server } from '../helpers/s3-server.js';
import { synthFixture, tinySsdFlags } from '../helpers/synth-fixture.js';

// Exact resume: a cluster whose every process is SIGKILLed and then resumed from its newest checkpoint
// ends with the weights of an uninterrupted run (same workers, same seed), bit for bit.
const data = synthFixture(test, { train: 48, validation: 4 });

test.after.always(() => killAll());

/** Two epochs of batch 2 per worker (12 steps each with 2 workers), adam with warm-up. */
function jobFlags(model: string): string[] {
  return [
    ...['--train', data.train, ...tinySsdFlags(data), '--mini-batch-size', '2', '--epochs', '2'],
    ...['--optimizer', 'adam', '--learning-rate', '0.003', '--lr-warmup-steps', '3', '--seed', '11'],
    ...['--workers', '2', '--model-dir', data.path(model), '--log-level', 'info'],
  ];
}

/** Waits (polling with a deadline) until a complete checkpoint at `minStep` or later is in `ckpt`. */
async function waitForCheckpoint(storage: Storage, ckpt: string, minStep: number, signal: AbortSignal) {
  const store = createCheckpointStore({ storage, dir: ckpt, keep: 3 });
  try {
    while ((await store.list(signal)).every((c) => c.globalStep < minStep)) await sleep(100, signal);
  } finally {
    await store.close();
  }
}

function cluster(tag: string, extra: string[], env?: NodeJS.ProcessEnv) {
  const coordinator = startCoordinator([...jobFlags(`model-${tag}`), '--heartbeat-timeout', '3', ...extra], {
    env,
  });
  const workers = coordinatorPort(coordinator).then((port) =>
    [0, 1].map((i) => startWorker(port, `${tag}${i}`, { env, flags: ['--coordinator-timeout', '60'] })),
  );
  return { coordinator, workers };
}

const exactResume = test.macro(async (t, where: 'local' | 's3') => {
  const s3 = where === 's3' ? await startS3Server(t) : undefined;
  const storage = s3
    ? createStorage({ s3Endpoint: s3.endpoint, s3Credentials: s3.credentials, env: {} })
    : createLocalStorage();
  t.teardown(() => storage.close());
  const ckpt = s3 ? `s3://${s3.bucket}/cluster/ckpt` : data.path('ckpt');
  const env = s3 && {
    AWS_ACCESS_KEY_ID: s3.env.AWS_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY: s3.env.AWS_SECRET_ACCESS_KEY,
  };
  const flags = [
    '--checkpoint-dir',
    ckpt,
    '--checkpoint-frequency',
    '1',
    ...(s3 ? ['--s3-endpoint', s3.endpoint] : []),
  ];
  const reference = cluster(`ref-${where}`, []);
  const first = cluster(`cut-${where}`, flags, env);
  await waitForCheckpoint(storage, ckpt, 5, AbortSignal.timeout(120_000));
  first.coordinator.child.kill('SIGKILL');
  for (const w of await first.workers) w.child.kill('SIGKILL');
  const resumed = cluster(`res-${where}`, [...flags, '--resume'], env);
  t.is(await resumed.coordinator.exited, 0);
  t.is(await reference.coordinator.exited, 0);
  const from = resumed.coordinator.lines.find((l) => l.msg === 'resuming from checkpoint');
  t.truthy(from, 'the coordinator resumed from a checkpoint');
  t.true((from!.globalStep as number) >= 5);
  const summary = lastJsonLine(resumed.coordinator.stdout());
  t.is(
    summary.images,
    (24 - (from!.globalStep as number)) * 4,
    'the summary counts only the images this run trained',
  );
  t.is(summary.epochs, 2);
  const [a, b] = [
    await readModelWeights(data.path(`model-ref-${where}`)),
    await readModelWeights(data.path(`model-res-${where}`)),
  ];
  t.true(a.size > 0);
  t.deepEqual(weightsThatDiffer(a, b), [], 'weights that differ from the uninterrupted run');
});

test(
  'a cluster killed with SIGKILL and resumed from its newest checkpoint ends bit-identical to an uninterrupted run',
  exactResume,
  'local',
);
test('the same with checkpoints in an S3-compatible server', exactResume, 's3');

test('a killed coordinator restarted with --resume picks the job up again while the workers keep their state', async (t) => {
  const ckpt = data.path('ckpt-coord');
  // Four epochs: the coordinator is killed with most of the job still to run.
  const first = cluster('co', ['--checkpoint-dir', ckpt, '--checkpoint-frequency', '2', '--epochs', '4']);
  const workers = await first.workers;
  await waitForCheckpoint(createLocalStorage(), ckpt, 4, AbortSignal.timeout(120_000));
  first.coordinator.child.kill('SIGKILL');
  // Same port: the workers were told the old one, so restart it there.
  const port = await coordinatorPort(first.coordinator);
  const again = startCoordinator(
    [...jobFlags('model-co'), '--checkpoint-dir', ckpt, '--resume', '--epochs', '4'],
    { port },
  );
  t.is(await again.exited, 0, again.lines.map((l) => JSON.stringify(l)).join('\n'));
  t.true(
    again.lines.some((l) => l.msg === 'step committed' || l.msg === 'epoch done'),
    'the restarted coordinator saw training, so the job was not over when the first one died',
  );
  t.is(await workers[0]!.exited, 0);
  t.is(await workers[1]!.exited, 0);
  const summary = lastJsonLine(again.stdout());
  t.is(summary.epochs, 4);
  t.is(summary.workers, 2);
});
