import test from 'ava';
import { isClusterError } from '../../../shared/errors.js';
import { noopLogger } from '../../../shared/logging.js';
import { createRng, RNG_STREAM } from '../../../shared/random.js';
import { initBackend } from '../../../worker/backend/backend.js';
import { readTensorInto, readTensorsInto, uploadCopiesValues } from '../../../worker/backend/read-into.js';
import type { NamedArray } from '../../../worker/train/trainer-state.js';

// The tfjs engine is global: every test here is serial and picks its backend first.

function randomValues(n: number, key: number): Float32Array {
  const rng = createRng(3, RNG_STREAM.test, key);
  return Float32Array.from({ length: n }, () => rng.normal());
}

for (const name of ['wasm', 'cpu'] as const) {
  test.serial(
    `readTensorInto copies a ${name} tensor exactly into the given array, making no tensor`,
    async (t) => {
      const { tf } = await initBackend(name, { logger: noopLogger });
      const values = randomValues(4 * 5 * 3, 1);
      const tensor = tf.tensor(values, [4, 5, 3]);
      t.teardown(() => tensor.dispose());
      const target = new Float32Array(values.length);
      const before = tf.memory().numTensors;
      const dataSync = tensor.dataSync;
      // On wasm the values come straight out of the heap, not through dataSync's fresh array.
      if (name === 'wasm') tensor.dataSync = () => t.fail('dataSync called') as never;
      readTensorInto(tf, tensor, target);
      tensor.dataSync = dataSync;
      t.is(tf.memory().numTensors, before);
      t.deepEqual(target, values);
      target.fill(7);
      t.deepEqual(tensor.dataSync(), values, 'the target is a copy, not the tensor storage');
    },
  );
}

test.serial('readTensorInto reads a tensor another backend still holds through dataSync', async (t) => {
  const cpu = (await initBackend('cpu', { logger: noopLogger })).tf;
  const values = randomValues(33, 2);
  const tensor = cpu.tensor(values);
  t.teardown(() => tensor.dispose());
  const { tf } = await initBackend('wasm', { logger: noopLogger });
  const target = new Float32Array(33);
  readTensorInto(tf, tensor, target);
  t.deepEqual(target, values);
});

test.serial('readTensorInto rejects a target of another size, naming the shape and both sizes', async (t) => {
  const { tf } = await initBackend('wasm', { logger: noopLogger });
  const tensor = tf.zeros([2, 3]);
  t.teardown(() => tensor.dispose());
  const err = t.throws(() => readTensorInto(tf, tensor, new Float32Array(5)));
  t.true(isClusterError(err, 'INTERNAL'));
  t.regex(err!.message, /of shape \[2,3\] has 6 values, the target array 5/);
});

test.serial(
  'readTensorsInto reuses same-size arrays, reshapes them, and drops names no longer there',
  async (t) => {
    const { tf } = await initBackend('wasm', { logger: noopLogger });
    const a = tf.tensor(randomValues(6, 3), [2, 3]);
    const b = tf.tensor(randomValues(4, 4), [4]);
    t.teardown(() => tf.dispose([a, b]));
    const target = new Map<string, NamedArray>();
    readTensorsInto(
      tf,
      new Map([
        ['a', a],
        ['b', b],
        ['c', b],
      ]),
      target,
    );
    const [arrayA, arrayB] = [target.get('a')!.values, target.get('b')!.values];
    const reshaped = tf.reshape(a, [3, 2]);
    t.teardown(() => reshaped.dispose());
    t.is(
      readTensorsInto(
        tf,
        new Map([
          ['a', reshaped],
          ['b', b],
        ]),
        target,
      ),
      target,
    );
    t.deepEqual([...target.keys()], ['a', 'b']);
    t.is(target.get('a')!.values, arrayA, 'same array, new values in it');
    t.is(target.get('b')!.values, arrayB);
    t.deepEqual(target.get('a'), { shape: [3, 2], values: a.dataSync() as Float32Array });
    readTensorsInto(tf, new Map([['a', b]]), target);
    t.not(target.get('a')!.values, arrayA, 'another size: a new array');
    t.deepEqual(target.get('a'), { shape: [4], values: b.dataSync() as Float32Array });
  },
);

test.serial(
  'uploadCopiesValues is true on wasm and false on cpu, where a tensor keeps the array',
  async (t) => {
    for (const name of ['wasm', 'cpu'] as const) {
      const { tf } = await initBackend(name, { logger: noopLogger });
      const values = new Float32Array([1, 2, 3]);
      const tensor = tf.tensor(values);
      values[0] = 9;
      const seen = tensor.dataSync()[0];
      tensor.dispose();
      t.is(seen, name === 'wasm' ? 1 : 9);
      t.is(uploadCopiesValues(tf), seen === 1, `${name}: the tensor saw ${seen}`);
    }
  },
);
