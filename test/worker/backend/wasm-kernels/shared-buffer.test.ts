import * as tf from '@tensorflow/tfjs-core';
import test from 'ava';
import { initWasmAndCpu, relativeError, runOn, seeded, TIGHT } from '../backend-compare.js';

test.before(async () => {
  await initWasmAndCpu();
  await tf.setBackend('wasm');
});

const references = (dataId: object) => tf.engine().backend.refCount(dataId);

test.serial(
  'clone and same-dtype cast on wasm share the buffer and keep it until the last holder goes',
  (t) => {
    const x = tf.tensor1d([1.5, -2, 3]);
    const buffers = tf.memory().numDataBuffers;
    const copy = tf.clone(x);
    const same = tf.cast(x, 'float32');
    t.is(tf.memory().numDataBuffers, buffers, 'no new buffer');
    t.is(references(x.dataId), 3, 'one buffer, three references');
    x.dispose();
    t.deepEqual(Array.from(copy.dataSync()), [1.5, -2, 3]);
    copy.dispose();
    t.deepEqual(Array.from(same.dataSync()), [1.5, -2, 3]);
    t.is(references(x.dataId), 1);
    same.dispose();
    t.is(references(x.dataId), 0, 'freed with its last tensor');
  },
);

test.serial(
  'cast to another dtype on wasm converts into a buffer of its own, as the cpu backend does',
  async (t) => {
    const values = [1.7, -2.7, 0.2, 0, -0.5];
    const casts = () => [tf.cast(tf.tensor1d(values), 'int32'), tf.cast(tf.tensor1d(values), 'bool')];
    const [asInt, asBool] = await runOn('wasm', casts);
    t.deepEqual(Array.from(asInt!), [1, -2, 0, 0, 0]);
    t.deepEqual(Array.from(asBool!), [1, 1, 1, 0, 1]);
    const [cpuInt, cpuBool] = await runOn('cpu', casts);
    t.deepEqual(Array.from(asInt!), Array.from(cpuInt!));
    t.deepEqual(Array.from(asBool!), Array.from(cpuBool!));
    const x = tf.tensor1d(values);
    const y = tf.cast(x, 'int32');
    t.is(references(x.dataId), 1, 'the source keeps its one reference');
    tf.dispose([x, y]);
  },
);

test.serial('a variable assigned a clone keeps its value when the source is disposed', (t) => {
  const v = tf.variable(tf.zeros([4]));
  const source = tf.tensor1d([1, 2, 3, 4]);
  v.assign(tf.clone(source));
  source.dispose();
  t.deepEqual(Array.from(v.dataSync()), [1, 2, 3, 4]);
  v.dispose();
});

test.serial('gradients through saved (shared) activations match the cpu backend', async (t) => {
  const x = seeded([2, 6, 6, 4], 3);
  const w = seeded([3, 3, 4, 5], 4);
  const f = (input: tf.Tensor) => {
    const y = tf.relu(tf.conv2d(input as tf.Tensor4D, w as tf.Tensor4D, 1, 'same'));
    const { mean, variance } = tf.moments(y, [1, 2], true);
    return tf.sum(tf.mul(tf.sub(y, mean), tf.rsqrt(tf.add(variance, 1e-5))));
  };
  const [wasm] = await runOn('wasm', () => tf.grad(f)(x));
  const [cpu] = await runOn('cpu', () => tf.grad(f)(x));
  t.true(relativeError(wasm!, cpu!) < 10 * TIGHT);
  tf.dispose([x, w]);
});

test.serial('a clone of a variable keeps the old values through assign and dispose of the variable', (t) => {
  const backendBuffers = tf.engine().backend.numDataIds();
  const v = tf.tidy(() => tf.variable(tf.tensor1d([1, 2, 3])));
  const snapshot = tf.clone(v);
  tf.tidy(() => v.assign(tf.tensor1d([7, 8, 9])));
  t.deepEqual(Array.from(snapshot.dataSync()), [1, 2, 3]);
  t.deepEqual(Array.from(v.dataSync()), [7, 8, 9]);
  v.dispose();
  t.deepEqual(Array.from(snapshot.dataSync()), [1, 2, 3]);
  const inTidy = tf.tidy(() => tf.clone(snapshot));
  snapshot.dispose();
  t.deepEqual(Array.from(inTidy.dataSync()), [1, 2, 3], 'a clone returned from tidy outlives its source');
  inTidy.dispose();
  t.is(tf.engine().backend.numDataIds(), backendBuffers, 'every buffer freed with its last holder');
});

test.serial(
  'a filter shared with a disposed tensor convolves as its values, also after the freed memory is reused',
  async (t) => {
    const x = seeded([1, 6, 6, 3], 5);
    const w = seeded([3, 3, 3, 4], 6);
    const values = w.dataSync().slice();
    const shared = tf.clone(w);
    tf.dispose(tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, 'same')); // XNNPACK caches w's buffer id
    w.dispose();
    const scribble = tf.fill([3, 3, 3, 4], 1e6); // takes the freed memory if w's buffer had been freed
    const [wasm] = await runOn('wasm', () => tf.conv2d(x as tf.Tensor4D, shared as tf.Tensor4D, 1, 'same'));
    const [cpu] = await runOn('cpu', () =>
      tf.conv2d(x as tf.Tensor4D, tf.tensor4d(values, [3, 3, 3, 4]), 1, 'same'),
    );
    t.true(relativeError(wasm!, cpu!) < TIGHT);
    tf.dispose([x, shared, scribble]);
  },
);

test.serial('a gradient step through saved clones leaves no tensor or wasm buffer behind', (t) => {
  const x = seeded([2, 6, 6, 4], 9);
  const w = tf.tidy(() => tf.variable(seeded([3, 3, 4, 5], 10)));
  const tensors = tf.memory().numTensors;
  const backendBuffers = tf.engine().backend.numDataIds();
  const { value, grads } = tf.variableGrads(() => {
    const y = tf.relu(tf.conv2d(x as tf.Tensor4D, w as tf.Variable<tf.Rank.R4>, 1, 'same'));
    const { mean, variance } = tf.moments(y, [1, 2], true);
    return tf.sum(tf.div(tf.sub(y, mean), tf.sqrt(tf.add(variance, 1e-5)))) as tf.Scalar;
  });
  tf.tidy(() => w.assign(tf.sub(w, tf.mul(grads[w.name]!, 0.1))));
  tf.dispose([value, grads[w.name]!]);
  t.is(tf.memory().numTensors, tensors);
  t.is(tf.engine().backend.numDataIds(), backendBuffers);
  tf.dispose([x, w]);
});

test.serial('a clone of a string tensor on wasm shares its bytes and outlives its source', (t) => {
  const words = tf.tensor1d(['anchor', 'box']);
  const copy = tf.clone(words);
  words.dispose();
  t.deepEqual(copy.arraySync(), ['anchor', 'box']);
  copy.dispose();
  t.is(references(copy.dataId), 0);
});
