import test, { type ExecutionContext } from 'ava';
import {
  type CheckpointMeta,
  encodeCheckpoint,
  STATE_FILE,
  TENSORS_FILE,
} from '../../../coordinator/checkpoint/format.js';
import { createCheckpointStore } from '../../../coordinator/checkpoint/store.js';
import { deferred } from '../../../shared/abort.js';
import { FakeClock } from '../../../shared/clock.js';
import { ConfigError, StorageError } from '../../../shared/errors.js';
import { createMemoryLogger } from '../../../shared/logging.js';
import { createMemoryStorage } from '../../../shared/storage/memory.js';
import type { Storage } from '../../../shared/storage/storage.js';
import { SSD_CLUSTER_VERSION } from '../../../shared/version.js';
import {
  createCheckpointer,
  isCheckpointDue,
  startCheckpointing,
  type WrittenCheckpoint,
} from '../../../worker/train/checkpointing.js';
import {
  checkpointMeta,
  resumeProblems,
  trainDataWarning,
  versionWarning,
} from '../../../worker/train/resume.js';
import {
  copyTrainerState,
  type TrainerState,
  type TrainingProgress,
} from '../../../worker/train/trainer-state.js';
import { assertSameState, makeState } from '../../coordinator/checkpoint/fixtures.js';
import { tinyHyperparameters, tinyTrainer } from './trainer-fixtures.js';

/**
 * The checkpointer over the real checkpoint store on in-memory storage, with a stand-in trainer whose
 * state the test sets (states from the store's fixtures, seed 42). Storage wrappers hold writes back
 * or make them fail, so the background write and its policies can be observed without timing.
 */
const DIR = 'mem/checkpoints';
const SEED = 42;
const hp = tinyHyperparameters();
const signal = () => new AbortController().signal;

function fakeTrainer(initial: TrainerState, events: string[] = []) {
  let state = initial;
  return {
    /** What the checkpointer reads: like Trainer.readStateInto() without a target, a fresh copy. */
    readStateInto: () => {
      events.push(`snapshot ${state.progress.globalStep}`);
      return copyTrainerState(state);
    },
    /** The live state, for the tests' own checks (its arrays are the trainer's). */
    getState: async () => state,
    setState: (s: TrainerState) => {
      state = s;
    },
    /** Moves the trainer to `globalStep` (a fresh state) and returns its progress. */
    advance(globalStep: number): TrainingProgress {
      state = makeState({ globalStep });
      return state.progress;
    },
  };
}

/** Storage whose writes wait until open() (the background write stays in progress until then). */
function gatedStorage(inner: Storage) {
  const gate = deferred<void>();
  const storage: Storage = {
    ...inner,
    write: async (url, body, options) => {
      await gate.promise;
      return inner.write(url, body, options);
    },
  };
  return { storage, open: () => gate.resolve() };
}

/** Storage whose writes fail while `failing` is true. */
function failingStorage(inner: Storage) {
  const control = { failing: true };
  const storage: Storage = {
    ...inner,
    write: async (url, body, options) => {
      if (control.failing) throw new StorageError(url, 'write failed: disk full (test)');
      return inner.write(url, body, options);
    },
  };
  return { storage, control };
}

function setup(t: ExecutionContext, storage: Storage = createMemoryStorage(), frequency = 1) {
  const store = createCheckpointStore({ storage, dir: DIR, keep: 10 });
  const clock = new FakeClock(Date.parse('2025-06-01T10:00:00.000Z'));
  const logger = createMemoryLogger();
  const events: string[] = [];
  const trainer = fakeTrainer(makeState({ globalStep: 0 }), events);
  const written: WrittenCheckpoint[] = [];
  const checkpointer = createCheckpointer({
    store,
    trainer,
    frequency,
    meta: checkpointMeta(hp, SEED, { workers: 1 }),
    clock,
    logger,
    ioSliceMs: 1,
    onWritten: (w) => {
      written.push(w);
      events.push(`written ${w.globalStep}`);
    },
  });
  t.teardown(async () => {
    await checkpointer.close();
    await store.close();
  });
  return { store, clock, logger, trainer, written, events, checkpointer };
}

test('isCheckpointDue saves at every epoch end, and every N global steps only when N > 0', (t) => {
  const steps = Array.from({ length: 10 }, (_, i) => makeState({ globalStep: i + 1 }).progress);
  const due = (frequency: number, epochEnd: boolean) =>
    steps.filter((p) => isCheckpointDue(p, epochEnd, frequency)).map((p) => p.globalStep);
  t.deepEqual(due(0, false), []);
  t.deepEqual(due(3, false), [3, 6, 9]);
  t.deepEqual(due(1, false), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  t.deepEqual(due(0, true), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  t.throws(() => createCheckpointer({ ...setupless(), frequency: -1 }), { instanceOf: ConfigError });
});

function setupless() {
  const store = createCheckpointStore({ storage: createMemoryStorage(), dir: DIR, keep: 1 });
  return { store, trainer: fakeTrainer(makeState()), frequency: 0, meta: {} };
}

test('the checkpointer writes at due steps and epoch ends only, with the run meta and the clock time', async (t) => {
  const { store, clock, trainer, written, checkpointer } = setup(t, createMemoryStorage(), 2);
  const results = [];
  for (const step of [1, 2, 3, 4]) {
    clock.advance(1000);
    results.push(await checkpointer.maybeCheckpoint(trainer.advance(step), { epochEnd: false }, signal()));
    await checkpointer.flush();
  }
  clock.advance(1000);
  results.push(await checkpointer.maybeCheckpoint(trainer.advance(5), { epochEnd: true }, signal()));
  t.deepEqual(await checkpointer.flush(), { written: 3, skipped: 0, failed: 0 });
  t.deepEqual(results, [false, true, false, true, true]);
  t.deepEqual(
    (await store.list()).map((c) => c.globalStep),
    [5, 4, 2],
  );
  t.deepEqual(
    written.map((w) => [w.globalStep, w.timestampMs]),
    [
      [2, Date.parse('2025-06-01T10:00:02.000Z')],
      [4, Date.parse('2025-06-01T10:00:04.000Z')],
      [5, Date.parse('2025-06-01T10:00:05.000Z')],
    ],
  );
  t.is(checkpointer.lastSuccessMs, clock.now());
  const newest = await store.load(written[2]!.url);
  t.is(newest.meta.createdAt, '2025-06-01T10:00:05.000Z');
  t.like(newest.meta, { workers: 1, seed: SEED, hyperparameters: { epochs: String(hp.epochs) } });
  assertSameState(t, newest.state, await trainer.getState());
});

test('the checkpoint holds the state of its step boundary although training changes the arrays before the write', async (t) => {
  const gated = gatedStorage(createMemoryStorage());
  const { store, trainer, checkpointer } = setup(t, gated.storage);
  const progress = trainer.advance(3);
  const expected = makeState({ globalStep: 3 }); // the same values, untouched
  t.true(await checkpointer.maybeCheckpoint(progress, { epochEnd: false }, signal()));
  const live = await trainer.getState();
  for (const { values } of [...live.weights.values(), ...live.optimizer.slots.values()]) values.fill(7);
  gated.open();
  await checkpointer.flush();
  const [saved] = await store.list();
  assertSameState(t, (await store.load(saved!.url)).state, expected);
});

test('a step checkpoint due while a write runs is skipped and logged; an epoch end waits for it, then writes', async (t) => {
  const gated = gatedStorage(createMemoryStorage());
  const { store, logger, trainer, events, checkpointer } = setup(t, gated.storage);
  t.true(await checkpointer.maybeCheckpoint(trainer.advance(1), { epochEnd: false }, signal()));
  t.false(await checkpointer.maybeCheckpoint(trainer.advance(2), { epochEnd: false }, signal()));
  t.deepEqual(checkpointer.stats, { written: 0, skipped: 1, failed: 0 });
  t.like(
    logger.entries.find((e) => e.msg.startsWith('checkpoint skipped')),
    {
      level: 'info',
      fields: { dir: DIR, globalStep: 2 },
    },
  );
  // The lent slice (1 ms) runs out before the gate opens: only a checkpointer that waits for the
  // running write snapshots step 3 after step 1 is written.
  const epochEnd = checkpointer.maybeCheckpoint(trainer.advance(3), { epochEnd: true }, signal());
  setTimeout(gated.open, 20);
  t.true(await epochEnd);
  await checkpointer.flush();
  t.deepEqual(events, ['snapshot 1', 'written 1', 'snapshot 3', 'written 3']);
  t.deepEqual(
    (await store.list()).map((c) => c.globalStep),
    [3, 1],
  );
});

test('a failed write is logged with its reason and counted; training goes on and the next write succeeds', async (t) => {
  const failing = failingStorage(createMemoryStorage());
  const { store, logger, trainer, checkpointer } = setup(t, failing.storage);
  t.true(await checkpointer.maybeCheckpoint(trainer.advance(1), { epochEnd: false }, signal()));
  t.deepEqual(await checkpointer.flush(), { written: 0, skipped: 0, failed: 1 });
  const logged = logger.entries.find((e) => e.msg === 'checkpoint write failed');
  t.like(logged, { level: 'error', fields: { dir: DIR, globalStep: 1, aborted: false } });
  t.regex(String(logged?.fields.error), /ckpt-000000000001\/tensors\.bin: write failed: disk full/);
  t.true(checkpointer.lastError instanceof StorageError);
  t.is(checkpointer.lastSuccessMs, null);
  failing.control.failing = false;
  t.true(await checkpointer.maybeCheckpoint(trainer.advance(2), { epochEnd: false }, signal()));
  t.deepEqual(await checkpointer.flush(), { written: 1, skipped: 0, failed: 1 });
  t.deepEqual(
    (await store.list()).map((c) => c.globalStep),
    [2],
  );
});

test('close waits for the write in progress, refuses later checkpoints, and can be called twice', async (t) => {
  const gated = gatedStorage(createMemoryStorage());
  const { store, trainer, checkpointer } = setup(t, gated.storage);
  await checkpointer.maybeCheckpoint(trainer.advance(1), { epochEnd: false }, signal());
  const closed = checkpointer.close().then(() => checkpointer.stats.written);
  gated.open();
  t.is(await closed, 1);
  await checkpointer.close();
  await t.throwsAsync(checkpointer.maybeCheckpoint(trainer.advance(2), { epochEnd: true }, signal()), {
    message: /checkpointer for mem\/checkpoints: closed/,
  });
  t.is((await store.list()).length, 1);
});

test('an aborted signal stops maybeCheckpoint before any snapshot', async (t) => {
  const { checkpointer, trainer } = setup(t);
  const controller = new AbortController();
  controller.abort(new Error('stop (test)'));
  await t.throwsAsync(
    checkpointer.maybeCheckpoint(trainer.advance(1), { epochEnd: true }, controller.signal),
    {
      message: 'stop (test)',
    },
  );
  t.deepEqual(checkpointer.stats, { written: 0, skipped: 0, failed: 0 });
});

test('resumeProblems names every changed hyperparameter and the seed, and lets epochs grow only', (t) => {
  const meta: CheckpointMeta = { createdAt: '2025-06-01T10:00:00.000Z', ...checkpointMeta(hp, SEED) };
  const url = 'mem/ckpt-000000000004';
  t.deepEqual(resumeProblems(url, meta, hp, SEED), []);
  t.deepEqual(resumeProblems(url, meta, tinyHyperparameters({ epochs: hp.epochs + 4 }), SEED), []);
  const changed = tinyHyperparameters({ learning_rate: 0.5 });
  t.deepEqual(resumeProblems(url, meta, changed, SEED), [
    `learning_rate: is 0.5 but checkpoint ${url} was made with "0.01"`,
  ]);
  const fewer = {
    ...meta,
    hyperparameters: { ...(meta.hyperparameters as Record<string, string>), epochs: '5' },
  };
  t.deepEqual(resumeProblems(url, fewer, hp, SEED + 1), [
    `--seed: is ${SEED + 1} but checkpoint ${url} was made with seed ${SEED}`,
    `epochs: is ${hp.epochs} but checkpoint ${url} was made with "5" (epochs may only grow)`,
  ]);
  t.deepEqual(resumeProblems(url, { createdAt: meta.createdAt, seed: SEED }, hp, SEED), [
    `checkpoint ${url}: its meta has no hyperparameters to check this run against`,
  ]);
});

test('--resume with an empty checkpoint directory starts fresh with an info line', async (t) => {
  const logger = createMemoryLogger();
  const trainer = fakeTrainer(makeState({ globalStep: 0 }));
  const storage = createMemoryStorage();
  const run = { storage, dir: DIR, resume: true, hp, seed: SEED, trainer, logger, signal: signal() };
  const checkpointing = await startCheckpointing(run);
  t.teardown(() => checkpointing.close());
  t.is(checkpointing.resumed, undefined);
  t.like(
    logger.entries.find((e) => e.msg === 'no checkpoint to resume from; starting fresh'),
    {
      level: 'info',
      fields: { dir: DIR },
    },
  );
  await t.throwsAsync(startCheckpointing({ ...run, dir: undefined }), {
    instanceOf: ConfigError,
    message: /--resume: needs --checkpoint-dir/,
  });
});

test('startCheckpointing restores the newest valid checkpoint, refuses one made with other hyperparameters, and keeps writing', async (t) => {
  const storage = createMemoryStorage();
  const saved = makeState({ globalStep: 4 });
  const store = createCheckpointStore({ storage, dir: DIR, keep: 3 });
  t.teardown(() => store.close());
  const createdAt = '2025-06-01T10:00:00.000Z';
  const url = await store.write(saved, { createdAt, ...checkpointMeta(hp, SEED) });
  const trainer = fakeTrainer(makeState({ globalStep: 0 }));
  const run = { storage, dir: DIR, resume: true, hp, seed: SEED, trainer, signal: signal() };

  const other = tinyHyperparameters({ mini_batch_size: 4 });
  await t.throwsAsync(startCheckpointing({ ...run, hp: other }), {
    instanceOf: ConfigError,
    message: `mini_batch_size: is 4 but checkpoint ${url} was made with "8"`,
  });
  t.is((await trainer.getState()).progress.globalStep, 0, 'nothing restored from a refused checkpoint');

  const checkpointing = await startCheckpointing(run);
  t.teardown(() => checkpointing.close());
  t.deepEqual(checkpointing.resumed, { url, progress: saved.progress });
  assertSameState(t, await trainer.getState(), saved);
  await checkpointing.onCheckpointPoint({ progress: trainer.advance(5), epochEnd: true }, signal());
  await checkpointing.checkpointer!.flush();
  t.deepEqual(
    (await store.list()).map((c) => c.globalStep),
    [5, 4],
  );
  const resumedFrom = await startCheckpointing({ ...run, resume: false, resumeFrom: `${url}/manifest.json` });
  t.teardown(() => resumedFrom.close());
  t.is(resumedFrom.resumed?.url, url);
});

test("a real trainer's checkpoint holds the bytes of its step boundary although training goes on before the write", async (t) => {
  const adam = tinyHyperparameters({ optimizer: 'adam' }); // two slots per variable, 2 steps in the epoch
  const gated = gatedStorage(createMemoryStorage());
  const store = createCheckpointStore({ storage: gated.storage, dir: DIR, keep: 10 });
  const clock = new FakeClock(Date.parse('2025-06-01T10:00:00.000Z'));
  const meta = { ...checkpointMeta(adam, SEED), createdAt: new Date(clock.now()).toISOString() };
  const expected = new Map<number, { stateJson: Uint8Array; tensors: Buffer }>();
  const trainer = await tinyTrainer(t, {
    hp: adam,
    seed: SEED,
    async onCheckpointPoint(point, s) {
      // What getState + a copy (the read the checkpointer made before) gives at this point.
      const encoded = encodeCheckpoint(copyTrainerState(await trainer.getState()), meta);
      expected.set(point.progress.globalStep, { ...encoded, tensors: Buffer.concat(encoded.tensorChunks) });
      if (point.epochEnd) gated.open(); // step 1's write starts only now, after step 2 changed the weights
      await checkpointer.maybeCheckpoint(point.progress, point, s);
    },
  });
  const checkpointer = createCheckpointer({ store, trainer, frequency: 1, meta, clock });
  t.teardown(async () => {
    await checkpointer.close();
    await store.close();
  });
  await trainer.run(signal());
  await checkpointer.flush();
  const saved = await store.list();
  t.deepEqual(
    saved.map((c) => c.globalStep),
    [2, 1],
  );
  for (const { url, globalStep } of saved) {
    const want = expected.get(globalStep)!;
    t.true(Buffer.from(want.stateJson).equals(await gated.storage.read(`${url}/${STATE_FILE}`)), url);
    t.true(want.tensors.equals(await gated.storage.read(`${url}/${TENSORS_FILE}`)), url);
  }
  t.false(expected.get(1)!.tensors.equals(expected.get(2)!.tensors), 'step 2 changed the weights');
});

test('a checkpoint records the ssd-cluster version; one from another version or none resumes with a warning naming both', async (t) => {
  const meta: CheckpointMeta = { createdAt: '2025-06-01T10:00:00.000Z', ...checkpointMeta(hp, SEED) };
  t.is(meta.ssdClusterVersion, SSD_CLUSTER_VERSION);
  const url = 'mem/checkpoints/ckpt-000000000004';
  t.is(versionWarning(url, meta), null);
  t.is(
    versionWarning(url, { ...meta, ssdClusterVersion: '0.0.9' }),
    `checkpoint ${url} was written by ssd-cluster 0.0.9; this is ssd-cluster ${SSD_CLUSTER_VERSION}`,
  );

  const { ssdClusterVersion: _dropped, ...unversioned } = meta;
  const { written, resumed, warnings } = await resumeFromCheckpoint(t, unversioned);
  t.is(resumed, written, 'the state still loads');
  t.deepEqual(warnings, [
    `checkpoint ${written} was written by an ssd-cluster build that did not record its version; this is ssd-cluster ${SSD_CLUSTER_VERSION}`,
  ]);
});

/** Writes a checkpoint with `meta` to a fresh store, resumes a run with `runMeta` from it, and returns the warnings. */
async function resumeFromCheckpoint(
  t: ExecutionContext,
  meta: CheckpointMeta,
  runMeta?: Record<string, string>,
) {
  const storage = createMemoryStorage();
  const store = createCheckpointStore({ storage, dir: DIR, keep: 3 });
  t.teardown(() => store.close());
  const written = await store.write(makeState({ globalStep: 4 }), meta);
  const logger = createMemoryLogger();
  const checkpointing = await startCheckpointing({
    storage,
    dir: DIR,
    resume: true,
    hp,
    seed: SEED,
    meta: runMeta,
    trainer: fakeTrainer(makeState({ globalStep: 0 })),
    logger,
    signal: signal(),
  });
  t.teardown(() => checkpointing.close());
  const warnings = logger.entries.filter((e) => e.level === 'warn').map((e) => e.msg);
  return { written, resumed: checkpointing.resumed?.url, warnings };
}

test('resuming with another --train than the checkpoint was made with warns naming both; the same one does not', async (t) => {
  const meta = {
    createdAt: '2025-06-01T10:00:00.000Z',
    ...checkpointMeta(hp, SEED, { train: 'data/train.rec' }),
  };
  t.deepEqual((await resumeFromCheckpoint(t, meta, { train: 'data/train.rec' })).warnings, []);
  const other = await resumeFromCheckpoint(t, meta, { train: 'other/train.rec' });
  t.deepEqual(other.warnings, [trainDataWarning(other.written, meta, 'other/train.rec')]);
  t.regex(
    other.warnings[0] ?? '',
    /was made with --train data\/train\.rec, this run reads other\/train\.rec: fine for a moved copy/,
  );
});
