import type { ExecutionContext } from 'ava';
import type { CheckpointMeta } from '../../../coordinator/checkpoint/format.js';
import { createRng, RNG_STREAM } from '../../../shared/random.js';
import type { OptimizerName, OptimizerState } from '../../../worker/train/optimizers.js';
import { initialProgress, type NamedArray, type TrainerState } from '../../../worker/train/trainer-state.js';

/**
 * Training states built in code. Values are random 32-bit patterns reinterpreted as float32, so they
 * include NaNs with payloads, infinities, -0 and subnormals: anything that goes through a number
 * instead of its bytes shows up as a difference.
 */
const SLOTS: Record<OptimizerName, string[]> = {
  sgd: ['momentum'],
  adam: ['mean', 'variance'],
  rmsprop: ['n'],
  adadelta: ['acc_g', 'acc_delta'],
};

/** name -> [shape, trainable]: a kernel, a bias, an untrained BatchNorm statistic and an empty tensor. */
const VARIABLES: [string, number[], boolean][] = [
  ['conv1_1/kernel', [3, 3, 3, 4], true],
  ['conv1_1/bias', [4], true],
  ['bn0/moving_mean', [4], false],
  ['head/kernel', [5, 7], true],
  ['head/empty', [0, 3], true],
];

/** Quiet NaN with a payload, negative signalling NaN, +Infinity, -0, the smallest subnormal. */
export const SPECIAL_WORDS = [0x7fc00001, 0xffa00000, 0x7f800000, 0x80000000, 0x00000001];

/** Random bit patterns, starting with SPECIAL_WORDS (as many as fit). */
export function randomArray(shape: number[], ...keys: number[]): NamedArray {
  const rng = createRng(11, RNG_STREAM.test, ...keys);
  const words = new Uint32Array(shape.reduce((n, d) => n * d, 1)).map(() => rng.nextUint32());
  words.set(SPECIAL_WORDS.slice(0, words.length));
  return { shape, values: new Float32Array(words.buffer) };
}

export interface StateOptions {
  globalStep?: number;
  optimizer?: OptimizerName;
  /** Extra elements in the head kernel, to make tensors.bin large. */
  largeFloats?: number;
}

export function makeState({
  globalStep = 120,
  optimizer = 'sgd',
  largeFloats,
}: StateOptions = {}): TrainerState {
  const weights = new Map<string, NamedArray>();
  const slots: OptimizerState['slots'] = new Map();
  for (const [i, [name, shape, trainable]] of VARIABLES.entries()) {
    const big = largeFloats !== undefined && name === 'head/kernel' ? [largeFloats] : shape;
    weights.set(name, randomArray(big, globalStep, i));
    if (!trainable) continue;
    for (const [k, slot] of SLOTS[optimizer].entries())
      slots.set(`${name}/${slot}`, randomArray(big, globalStep, i, k + 1));
  }
  const progress = Object.freeze({
    ...initialProgress(42),
    epoch: 1 + Math.floor(globalStep / 100),
    position: (globalStep % 100) * 8,
    globalStep,
    imagesTrained: globalStep * 8,
    skippedRecords: 2,
    earlyStopping: Object.freeze({ bestMap: 0.4125, bestEpoch: 0, epochsWithoutImprovement: 0 }),
    validationMaps: Object.freeze([0.4125]),
  });
  return { progress, weights, optimizer: { name: optimizer, updates: globalStep, slots } };
}

export function makeMeta(createdAt = '2025-03-01T12:00:00.000Z'): CheckpointMeta {
  return {
    createdAt,
    hyperparameters: { mini_batch_size: '32', learning_rate: '0.001', optimizer: 'sgd', epochs: '3' },
    workers: 3,
    layoutHash: '5f0c6a7e',
    backend: 'cpu',
  };
}

function bytesOf(values: Float32Array): Buffer {
  return Buffer.from(values.buffer, values.byteOffset, values.byteLength);
}

function sameArrays(t: ExecutionContext, actual: Map<string, NamedArray>, expected: Map<string, NamedArray>) {
  t.deepEqual([...actual.keys()], [...expected.keys()], 'same names in the same order');
  for (const [name, want] of expected) {
    const got = actual.get(name)!;
    t.deepEqual(got.shape, want.shape, `${name}: shape`);
    t.true(got.values instanceof Float32Array, `${name}: a Float32Array`);
    t.true(bytesOf(got.values).equals(bytesOf(want.values)), `${name}: the same bits`);
  }
}

/** Progress, optimizer header and every tensor equal bit for bit, Map order included. */
export function assertSameState(t: ExecutionContext, actual: TrainerState, expected: TrainerState): void {
  t.deepEqual(actual.progress, expected.progress);
  t.is(actual.optimizer.name, expected.optimizer.name);
  t.is(actual.optimizer.updates, expected.optimizer.updates);
  sameArrays(t, actual.weights, expected.weights);
  sameArrays(t, actual.optimizer.slots, expected.optimizer.slots);
}
