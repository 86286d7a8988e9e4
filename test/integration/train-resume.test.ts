import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import {
  type CheckpointInfo,
  createCheckpointStore,
  loadCheckpoint,
} from '../../coordinator/checkpoint/store.js';
import { deadline, sleep } from '../../shared/abort.js';
import { createStorage } from '../../shared/storage/open-storage.js';
import type { Storage } from '../../shared/storage/storage.js';
import { lastJsonLine, runCliProcess } from '../helpers/cli-process.js';
import { readModelWeights, weightsThatDiffer } from '../helpers/model-weights.js';
import { runCli } from '../helpers/run-cli.js';
import { startS3Server } from '../helpers/s3-server.js';
import { synthFixture, tinySsdFlags } from '../helpers/synth-fixture.js';

/**
 * Exact resume of `ssd-cluster train` after SIGKILL, as real processes: a run checkpointing every
 * step is killed once the checkpoint directory holds what the test needs, a second run resumes with
 * --resume, and its model must equal, bit for bit, the model of an uninterrupted run with the same
 * seed (which wrote no checkpoints at all). Adam, warm-up and a step decay at epoch 1 make the
 * optimizer slots, the update count and the schedule position matter.
 */
const TRAIN = 24;
const BATCH = 4;
// Long enough that a mid-epoch checkpoint lands before the end even when writes are slow (loaded CI).
const EPOCHS = 6;
const data = synthFixture(test, { train: TRAIN, validation: 4 });
/** Checkpoints, kills and resumes each finish well within this. */
const DEADLINE_MS = 90_000;

let reference: Map<string, Float32Array>;
const local = createStorage({ env: {} });

test.before(async () => {
  const run = await runCliProcess(trainArgs('reference'), { signal: AbortSignal.timeout(DEADLINE_MS) });
  if (run.code !== 0) throw new Error(run.stderr);
  reference = await readModelWeights(data.path('reference'), local);
});

test.after.always(() => local.close());

function trainArgs(model: string, ...extra: string[]): string[] {
  return [
    ...['train', ...tinySsdFlags(data), '--mini-batch-size', String(BATCH), '--epochs', String(EPOCHS)],
    ...['--optimizer', 'adam', '--learning-rate', '0.01', '--lr-warmup-steps', '3'],
    ...['--lr-scheduler-step', '1', '--lr-scheduler-factor', '0.5', '--seed', '13', '--backend', 'wasm'],
    ...['--train', data.train, '--validation', data.validation, '--model-dir', data.path(model)],
    ...['--log-level', 'info', ...extra],
  ];
}

function assertBitIdentical(t: ExecutionContext, actual: Map<string, Float32Array>) {
  t.deepEqual([...actual.keys()].sort(), [...reference.keys()].sort());
  t.deepEqual(weightsThatDiffer(reference, actual), [], 'weights that differ from the uninterrupted run');
}

/** The JSON log lines of a run's stderr with message `msg`. */
function logLines(stderr: string, msg: string): Record<string, unknown>[] {
  return stderr
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((entry) => entry.msg === msg);
}

interface Setup {
  storage: Storage;
  checkpointDir: string;
  /** Extra flags and environment for the child processes. */
  flags: string[];
  env: NodeJS.ProcessEnv;
}

/**
 * Starts a checkpointing run, polls the directory's complete checkpoints (a deadline, no fixed sleep)
 * until `enough` holds, then SIGKILLs it. Returns the complete checkpoints after the kill, newest first.
 */
async function killOnceCheckpointed(
  t: ExecutionContext,
  s: Setup,
  model: string,
  enough: (complete: CheckpointInfo[]) => boolean,
): Promise<CheckpointInfo[]> {
  const store = createCheckpointStore({ storage: s.storage, dir: s.checkpointDir, keep: 3 });
  t.teardown(() => store.close());
  const kill = new AbortController();
  const args = trainArgs(
    model,
    '--checkpoint-dir',
    s.checkpointDir,
    '--checkpoint-frequency',
    '1',
    ...s.flags,
  );
  const child = runCliProcess(args, { env: s.env, signal: kill.signal });
  let exited = false;
  void child.finally(() => (exited = true));
  using limit = deadline(undefined, DEADLINE_MS);
  while (!enough(await store.list(limit.signal))) {
    if (exited) throw new Error(`the run ended before it was killed:\n${(await child).stderr.slice(-2000)}`);
    await sleep(25, limit.signal);
  }
  kill.abort();
  const killed = await child;
  t.is(killed.code, 128, 'the run was killed, not finished');
  t.notRegex(killed.stdout, /"images"/, 'the killed run printed no summary');
  return store.list();
}

/** Resumes with --resume to the end; checks the summary and the weights; returns the run. */
async function resumeToTheEnd(t: ExecutionContext, s: Setup, model: string, expectedUrl: string) {
  const args = trainArgs(model, '--checkpoint-dir', s.checkpointDir, '--resume', ...s.flags);
  // Read first: the resumed run's own checkpoints may prune it.
  const { state } = await loadCheckpoint(s.storage, expectedUrl);
  const run = await runCliProcess(args, { env: s.env, signal: AbortSignal.timeout(DEADLINE_MS) });
  t.is(run.code, 0, run.stderr.slice(-3000));
  const [resumed] = logLines(run.stderr, 'resuming from checkpoint');
  t.is(resumed?.url, expectedUrl);
  const { epoch, position, globalStep } = state.progress;
  t.log(
    `resumed from ${path.basename(expectedUrl)}: epoch ${epoch}, position ${position}, step ${globalStep}`,
  );
  const summary = lastJsonLine(run.stdout);
  t.is(summary.epochs, EPOCHS);
  t.is(summary.images, EPOCHS * TRAIN - state.progress.imagesTrained, 'only the images this run trained');
  assertBitIdentical(t, await readModelWeights(data.path(model), local));
  return run;
}

/** Flips one byte in the middle of the checkpoint's tensors.bin. */
async function corruptTensors(storage: Storage, checkpoint: CheckpointInfo): Promise<void> {
  const url = `${checkpoint.url}/tensors.bin`;
  const bytes = await storage.read(url);
  bytes[bytes.length >> 1]! ^= 0x40;
  await storage.write(url, bytes);
}

/** Kills after >= 2 complete checkpoints, corrupts the newest, resumes from the one before. */
async function corruptNewestAndResume(t: ExecutionContext, s: Setup, model: string) {
  const complete = await killOnceCheckpointed(t, s, `${model}-killed`, (c) => c.length >= 2);
  const [newest, previous] = complete;
  await corruptTensors(s.storage, newest!);
  const run = await resumeToTheEnd(t, s, model, previous!.url);
  // The killed run may have begun the next checkpoint: that folder has no manifest and is skipped too.
  const skipped = logLines(run.stderr, 'skipping checkpoint');
  const corrupt = skipped.filter((w) => w.url === newest!.url);
  t.is(corrupt.length, 1, 'the corrupted checkpoint is skipped once');
  const [{ reason, level } = {}] = corrupt;
  t.regex(String(reason), /tensors\.bin: sha256 [0-9a-f]{64} does not match the manifest/);
  t.is(level, 40, 'a warning');
  for (const other of skipped.filter((w) => w.url !== newest!.url)) {
    t.regex(String(other.reason), /no manifest\.json \(incomplete write\)/, String(other.url));
    t.true(String(other.url) > newest!.url, `${other.url} is newer than ${newest!.url}`);
  }
}

const localSetup = (name: string): Setup => ({
  storage: local,
  checkpointDir: data.path(name),
  flags: [],
  env: {},
});

test.serial(
  'train killed with SIGKILL and resumed with --resume ends bit-identical to an uninterrupted run',
  async (t) => {
    const s = localSetup('ckpt-kill');
    // Killed once a checkpoint past step 2 with at least an epoch still to train is complete. Mid-epoch
    // ones are best, but a loaded machine may skip every one of them (a write still running); an
    // epoch-end one still resumes into a whole epoch that must come out bit-identical.
    const stepsPerEpoch = TRAIN / BATCH;
    const resumable = (c: CheckpointInfo) =>
      c.globalStep >= 2 && c.globalStep <= stepsPerEpoch * (EPOCHS - 1);
    const complete = await killOnceCheckpointed(t, s, 'killed', (c) => c.some(resumable));
    t.true(complete[0]!.globalStep >= 2);
    await resumeToTheEnd(t, s, 'resumed', complete[0]!.url);
  },
);

test.serial(
  'a corrupt newest checkpoint is skipped with a warning and the resume from the one before ends bit-identical',
  async (t) => {
    await corruptNewestAndResume(t, localSetup('ckpt-corrupt'), 'corrupt');
  },
);

test.serial(
  'checkpoints in an S3-compatible server: killed, newest corrupted, resumed bit-identical',
  async (t) => {
    const s3 = await startS3Server(t);
    const storage = createStorage({ s3Endpoint: s3.endpoint, s3Credentials: s3.credentials, env: {} });
    t.teardown(() => storage.close());
    const s: Setup = {
      storage,
      checkpointDir: `s3://${s3.bucket}/jobs/resume/checkpoints`,
      flags: ['--s3-endpoint', s3.endpoint],
      env: {
        AWS_ACCESS_KEY_ID: s3.env.AWS_ACCESS_KEY_ID,
        AWS_SECRET_ACCESS_KEY: s3.env.AWS_SECRET_ACCESS_KEY,
      },
    };
    await corruptNewestAndResume(t, s, 's3');
  },
);

test('train refuses checkpoint flags that cannot work together, naming them', async (t) => {
  const cases: [string[], RegExp][] = [
    [['--resume'], /--resume: needs --checkpoint-dir URL/],
    [['--checkpoint-frequency', '5'], /--checkpoint-frequency: needs --checkpoint-dir URL/],
    [
      ['--checkpoint-dir', data.dir, '--resume', '--resume-from', data.dir],
      /either --resume or --resume-from/,
    ],
    [
      ['--checkpoint-dir', data.dir, '--keep-checkpoints', '0'],
      /--keep-checkpoints: expected an integer >= 1/,
    ],
  ];
  for (const [flags, message] of cases) {
    const run = await runCli(trainArgs('never', ...flags));
    t.not(run.code, 0);
    t.regex(run.stderr, message);
  }
});
