import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import test from 'ava';
import {
  createLayout,
  packGradients,
  readExtras,
  scaleGradients,
  unpackGradients,
} from '../../../worker/train/tensor-pack.js';

test.before(async () => {
  await tf.setBackend('cpu');
});

const params = [
  { name: 'conv/kernel', shape: [2, 3] },
  { name: 'conv/bias', shape: [3] },
];

test('createLayout places tensors back to back and hashes names and shapes', (t) => {
  const layout = createLayout(params, ['numPositives']);
  t.deepEqual(
    layout.entries.map((e) => [e.name, e.offset, e.size]),
    [
      ['conv/kernel', 0, 6],
      ['conv/bias', 6, 3],
    ],
  );
  t.is(layout.totalSize, 10);
  t.is(layout.hash, createLayout(params, ['numPositives']).hash);
  t.not(layout.hash, createLayout([params[0]!, { name: 'conv/bias', shape: [4] }], ['numPositives']).hash);
  t.not(layout.hash, createLayout(params, []).hash);
});

test('packGradients and unpackGradients round-trip the values and the extras', async (t) => {
  const layout = createLayout(params, ['a', 'b']);
  const grads = new Map<string, tf.Tensor>([
    ['conv/kernel', tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3])],
    ['conv/bias', tf.tensor1d([7, 8, 9])],
  ]);
  const buffer = packGradients(tf, layout, grads, [10, 11]);
  t.deepEqual([...buffer], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  t.deepEqual(readExtras(layout, buffer), { a: 10, b: 11 });
  const norm = scaleGradients(layout, buffer, 0.5);
  t.true(Math.abs(norm - 0.5 * Math.sqrt(285)) < 1e-5);
  const back = unpackGradients(tf, layout, buffer);
  t.deepEqual(back.get('conv/kernel')!.shape, [2, 3]);
  t.deepEqual([...(await back.get('conv/bias')!.data())], [3.5, 4, 4.5]);
  t.is(buffer[9], 10);
  // Packing again into the same buffer overwrites every element (a step reuses one buffer).
  buffer.fill(Number.NaN);
  t.is(packGradients(tf, layout, grads, [12, 13], buffer), buffer);
  t.deepEqual([...buffer], [1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13]);
  for (const g of [...grads.values(), ...back.values()]) g.dispose();
});

test('packGradients names a missing or mis-sized gradient and a buffer of the wrong size', (t) => {
  const layout = createLayout(params);
  const g = tf.tensor1d([1, 2, 3]);
  t.throws(() => packGradients(tf, layout, new Map([['conv/bias', g]]), []), {
    message: /no gradient for 'conv\/kernel'/,
  });
  t.throws(() => packGradients(tf, layout, new Map([['conv/kernel', g]]), []), {
    message: /'conv\/kernel' has 3 elements/,
  });
  t.throws(() => packGradients(tf, layout, new Map([['conv/kernel', g]]), [], new Float32Array(3)), {
    message: /the buffer has 3 elements, the layout 9/,
  });
  g.dispose();
});
