import test, { type ExecutionContext } from 'ava';
import { noopLogger } from '../../shared/logging.js';
import { createStorage } from '../../shared/storage/open-storage.js';
import { initBackend } from '../../worker/backend/backend.js';
import type { Dataset } from '../../worker/data/dataset.js';
import { openDataset } from '../../worker/data/open-dataset.js';
import { createSsdModel } from '../../worker/model/ssd.js';
import { RollbackSnapshots } from '../../worker/rollback.js';
import { type Collective, createTrainer, type Trainer } from '../../worker/train/trainer.js';
import {
  copyTrainerState,
  initialProgress,
  type NamedArray,
  type TrainerState,
} from '../../worker/train/trainer-state.js';
import { assertSameState } from '../coordinator/checkpoint/fixtures.js';
import { type SynthFixture, tinyHyperparameters, writeSynthFixture } from './train/trainer-fixtures.js';

// The tfjs engine is global: every test here is serial and picks its backend first.
const storage = createStorage({ env: {} });
test.after.always(() => storage.close());

let fixture: SynthFixture | undefined;
let train: Dataset;
test.before(async () => {
  fixture = await writeSynthFixture({ train: 16, validation: 0 });
  train = await openDataset(fixture.train, { storage, numClasses: 5 });
});
test.after.always(async () => {
  await train?.close();
  await fixture?.remove();
});

/** tiny at 64 px with adam (two slots per variable), 2 epochs of 2 steps. */
async function trainerOn(t: ExecutionContext, backend: 'wasm' | 'cpu') {
  const { tf } = await initBackend(backend, { logger: noopLogger });
  const hp = tinyHyperparameters({ epochs: 2, optimizer: 'adam' });
  const model = createSsdModel({ baseNetwork: 'tiny', imageShape: 64, numClasses: 5, seed: 4 });
  const trainer = createTrainer({ tf, model, hp, seed: 4, train, host: 'algo-1' });
  t.teardown(async () => {
    await trainer.close();
    model.dispose();
  });
  return { tf, trainer };
}

/** Records a snapshot after every step, as the cluster worker does, and keeps getState()'s copy of each. */
function recordingCollective(trainer: Trainer, snapshots: RollbackSnapshots) {
  const byStep = new Map<number, TrainerState>();
  const collective: Collective = {
    rank: 0,
    worldSize: 1,
    async afterStep(info) {
      snapshots.record(trainer);
      byStep.set(info.progress.globalStep, await trainer.getState());
      return true;
    },
    decideEpoch: async () => ({ validationMap: null, stop: false }),
  };
  return { collective, byStep };
}

test.serial(
  'RollbackSnapshots puts a trainer one step back exactly, and it trains on like a run that never went ahead',
  async (t) => {
    const { tf, trainer } = await trainerOn(t, 'wasm');
    const snapshots = new RollbackSnapshots();
    const first = recordingCollective(trainer, snapshots);
    await trainer.run(new AbortController().signal, first.collective);
    const [step2, step3, step4] = [2, 3, 4].map((s) => first.byStep.get(s)!) as [
      TrainerState,
      TrainerState,
      TrainerState,
    ];

    t.false(snapshots.restore(trainer, step2.progress), 'only the last two steps are kept');
    const tensors = tf.memory().numTensors;
    t.true(snapshots.restore(trainer, step3.progress));
    t.is(tf.memory().numTensors, tensors, 'the restored state replaces the old tensors');
    t.like(trainer.progress, { epoch: 1, position: 8, globalStep: 3, finished: false });
    assertSameState(t, await trainer.getState(), step3);

    // The step that follows writes into the snapshot arrays again: the trainer must not share them.
    const again = recordingCollective(trainer, snapshots);
    await trainer.run(new AbortController().signal, again.collective);
    assertSameState(t, again.byStep.get(4)!, step4);
    t.true(snapshots.restore(trainer, step4.progress));
    assertSameState(t, await trainer.getState(), step4);
  },
);

/** The trainer's weights plus adam slots for every weight (in getState's order), each with values of its own. */
function stateWithSlots(trainer: Trainer): TrainerState {
  const state = trainer.readStateInto();
  const slots = [...state.weights].flatMap(([name, { shape, values }], k) =>
    ['mean', 'variance'].map((slot, j) => {
      const fill = Float32Array.from(values, (v) => v * 0.5 + (2 * k + j) * 1e-3);
      return [`${name}/${slot}`, { shape: [...shape], values: fill }] as [string, NamedArray];
    }),
  );
  slots.sort(([a], [b]) => (a < b ? -1 : 1));
  state.optimizer.slots = new Map(slots);
  state.optimizer.updates = 5;
  return state;
}

test.serial(
  'Trainer.readStateInto fills the given state in place with exactly what getState reads',
  async (t) => {
    const { tf, trainer } = await trainerOn(t, 'wasm');
    trainer.setState(stateWithSlots(trainer));
    const fresh = trainer.readStateInto();
    assertSameState(t, fresh, await trainer.getState());
    const named = () => [...fresh.weights.values(), ...fresh.optimizer.slots.values()];
    const arrays = named().map((a) => a.values);
    for (const values of arrays) values.fill(0.25);
    const tensors = tf.memory().numTensors;
    t.is(trainer.readStateInto(fresh), fresh);
    t.is(tf.memory().numTensors, tensors);
    t.true(
      named().every((a, i) => a.values === arrays[i]),
      'the same arrays',
    );
    assertSameState(t, fresh, await trainer.getState());
  },
);

for (const backend of ['wasm', 'cpu'] as const) {
  test.serial(`Trainer.setState on ${backend} keeps no reference to the arrays it was given`, async (t) => {
    const { trainer } = await trainerOn(t, backend);
    const given = stateWithSlots(trainer);
    const expected = copyTrainerState(given);
    trainer.setState(given);
    for (const { values } of [...given.weights.values(), ...given.optimizer.slots.values()]) values.fill(-3);
    const actual = await trainer.getState();
    assertSameState(t, { ...actual, progress: expected.progress }, expected);
  });
}

test('RollbackSnapshots records into the arrays of the oldest snapshot, and of cleared ones', (t) => {
  const given: (TrainerState | undefined)[] = [];
  let made = 0;
  const trainer = {
    readStateInto(into?: TrainerState): TrainerState {
      given.push(into);
      return into ?? { ...stateAt(made++) };
    },
  };
  const snapshots = new RollbackSnapshots();
  for (let i = 0; i < 4; i++) snapshots.record(trainer);
  t.is(made, 2, 'two slots');
  t.deepEqual(given.slice(0, 2), [undefined, undefined]);
  const [slotA, slotB] = [given[2]!, given[3]!];
  t.not(slotA, slotB);
  snapshots.record(trainer);
  t.is(given[4], slotA, 'the oldest slot again');
  snapshots.clear();
  snapshots.record(trainer);
  snapshots.record(trainer);
  snapshots.record(trainer);
  t.is(made, 2, 'cleared slots are reused, not replaced');
  t.deepEqual(new Set(given.slice(5)), new Set([slotA, slotB]));
});

function stateAt(globalStep: number): TrainerState {
  return {
    progress: { ...initialProgress(0), globalStep },
    weights: new Map(),
    optimizer: { name: 'sgd', updates: globalStep, slots: new Map() },
  };
}
