import test from 'ava';
import {
  type CheckpointMeta,
  decodeCheckpoint,
  encodeCheckpoint,
} from '../../../coordinator/checkpoint/format.js';
import { TENSOR_ALIGN_BYTES, type TensorEntry } from '../../../coordinator/checkpoint/tensor-table.js';
import { isClusterError } from '../../../shared/errors.js';
import type { OptimizerName } from '../../../worker/train/optimizers.js';
import { afterStep, type TrainerState } from '../../../worker/train/trainer-state.js';
import { assertSameState, makeMeta, makeState, SPECIAL_WORDS } from './fixtures.js';

// biome-ignore lint/suspicious/noExplicitAny: the tests edit parsed state.json freely
type EditableJson = any;

const CKPT = 's3://bucket/run/ckpt-000000000120';

function encodeToBytes(state: TrainerState, meta: CheckpointMeta = makeMeta()) {
  const encoded = encodeCheckpoint(state, meta);
  return { ...encoded, tensors: Buffer.concat(encoded.tensorChunks) };
}

function stateJsonOf(bytes: Uint8Array): EditableJson {
  return JSON.parse(Buffer.from(bytes).toString('utf8'));
}

const roundTrip = test.macro<[OptimizerName]>({
  exec(t, optimizer) {
    const state = makeState({ optimizer });
    const meta = makeMeta();
    const { stateJson, tensors } = encodeToBytes(state, meta);
    const decoded = decodeCheckpoint(CKPT, stateJson, tensors);
    assertSameState(t, decoded.state, state);
    t.deepEqual(decoded.meta, meta);
    const kernel = decoded.state.weights.get('conv1_1/kernel')!.values;
    // The decoded values may be a view at any offset of the tensors buffer.
    const first = new Uint32Array(kernel.buffer, kernel.byteOffset, 5);
    t.deepEqual([...first], SPECIAL_WORDS, 'NaN payloads, the signalling NaN, -0 and subnormals kept');
  },
  title: (_, optimizer) =>
    `encodeCheckpoint then decodeCheckpoint returns a ${optimizer} state bit for bit, Map order included`,
});
for (const optimizer of ['sgd', 'adam', 'adadelta'] as const) test(roundTrip, optimizer);

test('decodeCheckpoint returns progress that the trainer-state functions accept', (t) => {
  const state = makeState();
  const { stateJson, tensors } = encodeToBytes(state);
  const { progress } = decodeCheckpoint(CKPT, stateJson, tensors).state;
  t.true(Object.isFrozen(progress));
  t.deepEqual(afterStep(progress, 100, 8, 0), afterStep(state.progress, 100, 8, 0));
});

test('tensors.bin puts every entry at a multiple of 64 bytes, zero-pads, and has exactly tensorsBytes', (t) => {
  const state = makeState();
  const { stateJson, tensors, tensorsBytes } = encodeToBytes(state);
  const table = stateJsonOf(stateJson).tensors as { weights: TensorEntry[]; slots: TensorEntry[] };
  const entries = [...table.weights, ...table.slots];
  t.is(entries.length, state.weights.size + state.optimizer.slots.size);
  let expectedOffset = 0;
  for (const e of entries) {
    t.is(e.offsetBytes, expectedOffset, `${e.name} starts where the previous padded entry ends`);
    t.is(e.offsetBytes % TENSOR_ALIGN_BYTES, 0);
    t.is(e.lengthBytes, 4 * e.shape.reduce((n, d) => n * d, 1));
    const padEnd = Math.ceil((e.offsetBytes + e.lengthBytes) / TENSOR_ALIGN_BYTES) * TENSOR_ALIGN_BYTES;
    t.true(
      tensors.subarray(e.offsetBytes + e.lengthBytes, padEnd).every((b) => b === 0),
      `${e.name} padding`,
    );
    expectedOffset = padEnd;
  }
  t.is(tensors.length, tensorsBytes);
  t.is(tensorsBytes, expectedOffset);
  const bias = state.weights.get('conv1_1/bias')!.values;
  const entry = table.weights.find((e) => e.name === 'conv1_1/bias')!;
  t.is(tensors.readUInt32LE(entry.offsetBytes + 8), new Uint32Array(bias.buffer)[2]!, 'little-endian words');
});

test('decodeCheckpoint copies tensors that sit at an unaligned address in memory', (t) => {
  const state = makeState();
  const { stateJson, tensors } = encodeToBytes(state);
  const shifted = Buffer.alloc(tensors.length + 1);
  tensors.copy(shifted, 1);
  const decoded = decodeCheckpoint(CKPT, stateJson, shifted.subarray(1));
  assertSameState(t, decoded.state, state);
  shifted.fill(0);
  assertSameState(t, decoded.state, state); // copies: clearing the input changed nothing
});

test('encodeCheckpoint refuses non-finite progress or meta values, naming every field', (t) => {
  const state = makeState();
  const bad = { ...state, progress: { ...state.progress, validationMaps: [0.5, Number.NaN] } };
  const meta = { ...makeMeta(), lossScale: Number.POSITIVE_INFINITY };
  const err = t.throws(() => encodeCheckpoint(bad, meta));
  t.true(isClusterError(err, 'INTERNAL'));
  t.regex(err!.message, /progress\.validationMaps\[1\]: NaN is not finite/);
  t.regex(err!.message, /meta\.lossScale: Infinity is not finite/);
});

test('encodeCheckpoint refuses a shape that does not hold its values and a slot without its weight', (t) => {
  const state = makeState();
  state.weights.set('head/kernel', { shape: [5, 6], values: state.weights.get('head/kernel')!.values });
  state.optimizer.slots.set('gone/kernel/momentum', { shape: [1], values: new Float32Array(1) });
  const err = t.throws(() => encodeCheckpoint(state, makeMeta()));
  t.regex(err!.message, /weights 'head\/kernel': shape \[5,6\] does not hold 35 values/);
  t.regex(err!.message, /'gone\/kernel\/momentum' does not name a weight/);
});

test('encodeCheckpoint refuses a meta without an ISO-8601 createdAt', (t) => {
  const err = t.throws(() => encodeCheckpoint(makeState(), { ...makeMeta(), createdAt: 'tuesday' }));
  t.regex(err!.message, /meta\.createdAt: expected an ISO-8601 time/);
});

/** A change to state.json (or tensors.bin) and the field the error must name. */
const corrupt = test.macro<[(json: EditableJson) => void, RegExp, ((tensors: Buffer) => Buffer)?]>({
  exec(t, editJson, expected, editTensors = (b) => b) {
    const { stateJson, tensors } = encodeToBytes(makeState());
    const json = stateJsonOf(stateJson);
    editJson(json);
    const bytes = Buffer.from(JSON.stringify(json));
    const err = t.throws(() => decodeCheckpoint(CKPT, bytes, editTensors(tensors)));
    t.true(isClusterError(err, 'CHECKPOINT_CORRUPT'), String(err));
    t.true(err!.message.startsWith(`checkpoint ${CKPT}: `), err!.message);
    t.regex(err!.message, expected);
  },
  title: (provided) => `decodeCheckpoint rejects ${provided}`,
});

const none = () => {};
test('a tensors.bin one byte short', corrupt, none, /tensors\.bin: is \d+ bytes, state\.json says/, (b) =>
  b.subarray(0, b.length - 1),
);
test(
  'an unknown progress field',
  corrupt,
  (j) => (j.progress.learningRate = 0.1),
  /progress\.learningRate: unknown/,
);
test('a missing progress field', corrupt, (j) => delete j.progress.position, /progress\.position: .*missing/);
test(
  'a negative epoch',
  corrupt,
  (j) => (j.progress.epoch = -1),
  /progress\.epoch: expected an integer >= 0/,
);
test(
  'a non-boolean flag',
  corrupt,
  (j) => (j.progress.finished = 0),
  /progress\.finished: expected true or false/,
);
test(
  'an unknown early-stopping field',
  corrupt,
  (j) => (j.progress.earlyStopping.best = 1),
  /progress\.earlyStopping\.best: unknown/,
);
test('an unknown optimizer', corrupt, (j) => (j.optimizer.name = 'lamb'), /optimizer\.name: expected one of/);
test('another format', corrupt, (j) => (j.format = 'tfjs'), /state\.json: format: expected/);
test('a newer version', corrupt, (j) => (j.version = 2), /version: unsupported version 2/);
test('a meta without createdAt', corrupt, (j) => delete j.meta.createdAt, /meta\.createdAt: .*missing/);
test(
  'a moved tensor offset',
  corrupt,
  (j) => (j.tensors.weights[1].offsetBytes += 64),
  /tensors\.weights\[1\]\.offsetBytes: is \d+, expected \d+/,
);
test(
  'a shape that disagrees with the byte length',
  corrupt,
  (j) => (j.tensors.weights[3].shape = [5, 8]),
  /tensors\.weights\[3\]\.lengthBytes: is 140, expected 160/,
);
test(
  'a fractional dimension',
  corrupt,
  (j) => (j.tensors.weights[0].shape[0] = 1.5),
  /tensors\.weights\[0\]\.shape\[0\]: expected an integer/,
);
test(
  'a duplicate tensor name',
  corrupt,
  (j) => (j.tensors.weights[2].name = j.tensors.weights[1].name),
  /tensors\.weights\[2\]\.name: duplicate tensor 'conv1_1\/bias'/,
);
test(
  'a dtype other than float32',
  corrupt,
  (j) => (j.tensors.slots[0].dtype = 'float16'),
  /slots\[0\]\.dtype/,
);
test(
  'a slot whose weight is not in the table',
  corrupt,
  (j) => (j.tensors.slots[0].name = 'conv9/kernel/momentum'),
  /tensors\.slots\[0\]\.name: 'conv9\/kernel\/momentum' does not name a weight/,
);
test(
  'a tensorsBytes that disagrees with the table',
  corrupt,
  (j) => (j.tensorsBytes += 64),
  /tensorsBytes: is \d+, the table ends at \d+/,
);

test('decodeCheckpoint rejects a truncated state.json as invalid JSON, naming the checkpoint', (t) => {
  const { stateJson, tensors } = encodeToBytes(makeState());
  const err = t.throws(() => decodeCheckpoint(CKPT, stateJson.subarray(0, stateJson.length >> 1), tensors));
  t.true(isClusterError(err, 'CHECKPOINT_CORRUPT'));
  t.regex(err!.message, /^checkpoint s3:\/\/bucket\/run\/ckpt-000000000120: state\.json: not valid JSON/);
});

test('decodeCheckpoint rejects a state.json that is not UTF-8', (t) => {
  const { tensors } = encodeToBytes(makeState());
  const err = t.throws(() => decodeCheckpoint(CKPT, Buffer.from([0x7b, 0xff, 0x7d]), tensors));
  t.regex(err!.message, /state\.json: not valid JSON/);
});
