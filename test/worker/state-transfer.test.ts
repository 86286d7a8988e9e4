import test from 'ava';
import { encodeCheckpoint } from '../../coordinator/checkpoint/format.js';
import { createRpcClient } from '../../shared/rpc/client.js';
import { RpcServer } from '../../shared/rpc/server.js';
import { fetchState, StateProvider, stateProto } from '../../worker/state-transfer.js';
import { copyTrainerState, type TrainerState } from '../../worker/train/trainer-state.js';
import { tinyHyperparameters, tinyTrainer } from './train/trainer-fixtures.js';

/**
 * The state service on a real gRPC server on 127.0.0.1:0, offering a real trainer's state; states
 * are compared as their checkpoint encoding (state.json and tensors.bin), byte for byte.
 */
const SEED = 5;
const signal = () => new AbortController().signal;

async function servedProvider(t: { teardown(fn: () => unknown): void }) {
  const provider = new StateProvider();
  const server = new RpcServer();
  t.teardown(() => server.close());
  server.addService(stateProto().service, provider.implementation());
  const address = `127.0.0.1:${await server.listen('127.0.0.1:0')}`;
  const client = createRpcClient(address);
  t.teardown(() => client.close());
  const fetch = (generation: number, globalStep: number) =>
    fetchState(client, { generation, globalStep }, address, signal());
  return { provider, fetch };
}

function encoded(state: TrainerState) {
  const { stateJson, tensorChunks } = encodeCheckpoint(state, { createdAt: new Date(0).toISOString() });
  return { stateJson: Buffer.from(stateJson), tensors: Buffer.concat(tensorChunks) };
}

test.serial(
  'a fetched state is the one offered, byte for byte, although training goes on after the offer',
  async (t) => {
    const { provider, fetch } = await servedProvider(t);
    let atOffer: ReturnType<typeof encoded> | undefined;
    const trainer = await tinyTrainer(t, {
      hp: tinyHyperparameters({ optimizer: 'adam' }),
      seed: SEED,
      async onCheckpointPoint(point) {
        if (point.progress.globalStep !== 1) return;
        // As a member at a generation's start offers it; the old read (getState + a copy) is the reference.
        atOffer = encoded(copyTrainerState(await trainer.getState()));
        provider.offerState(3, 1, trainer);
      },
    });
    await trainer.run(signal()); // step 2 changes every weight and slot after the offer
    const fetched = encoded(await fetch(3, 1));
    t.true(fetched.stateJson.equals(atOffer!.stateJson), 'state.json');
    t.true(fetched.tensors.equals(atOffer!.tensors), 'tensors');
    t.false(encoded(trainer.readStateInto()).tensors.equals(atOffer!.tensors), 'the trainer moved on');
  },
);

test.serial(
  'an offer of a state read through getState() serves the same bytes, and a replaced offer is refused as stale',
  async (t) => {
    const { provider, fetch } = await servedProvider(t);
    const trainer = await tinyTrainer(t, { hp: tinyHyperparameters({ optimizer: 'sgd' }), seed: SEED });
    await trainer.run(signal());
    const viaGetState = await trainer.getState();
    provider.offerState(1, 2, { readStateInto: () => viaGetState });
    const fromPromise = encoded(await fetch(1, 2));
    provider.offerState(2, 2, trainer);
    const fromTrainer = encoded(await fetch(2, 2));
    t.true(fromPromise.stateJson.equals(fromTrainer.stateJson));
    t.true(fromPromise.tensors.equals(fromTrainer.tensors));
    await t.throwsAsync(fetch(1, 2), {
      message: /state of generation 1 step 2 asked; this worker offers generation 2 step 2/,
    });
  },
);
