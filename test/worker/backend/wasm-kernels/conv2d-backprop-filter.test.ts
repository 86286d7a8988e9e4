import * as tf from '@tensorflow/tfjs-core';
import test from 'ava';
import { setPatchChunkFloats } from '../../../../worker/backend/wasm-kernels/conv-attrs.js';
import { initWasmAndCpu, relativeError, runOn, seeded, TIGHT } from '../backend-compare.js';
import { type ConvCase, convCases, filterGrad, naiveFilterGrad } from './conv-cases.js';

test.before(async () => {
  await initWasmAndCpu();
});

/** The cpu backend's kernel; for dilation (which it ignores) the definition computed in JS. */
async function reference(c: ConvCase, x: tf.Tensor, dy: tf.Tensor): Promise<Float32Array> {
  if (c.dilation === undefined) return (await runOn('cpu', () => filterGrad(c, x, dy)))[0]!;
  return naiveFilterGrad(c, x.dataSync() as Float32Array, dy.dataSync() as Float32Array);
}

const matchesReference = test.macro({
  async exec(t, c: ConvCase) {
    const x = seeded(c.input, 1);
    const dy = seeded(convCases.outputShape(c), 2);
    const [wasm] = await runOn('wasm', () => filterGrad(c, x, dy));
    const expected = await reference(c, x, dy);
    t.true(relativeError(wasm!, expected) < TIGHT, `relative error ${relativeError(wasm!, expected)}`);
    tf.dispose([x, dy]);
  },
  title: (_title, c: ConvCase) =>
    `wasm Conv2DBackpropFilter matches ${c.dilation ? 'the definition' : 'the cpu backend'} for ${c.name}`,
});

for (const c of convCases.cases) test.serial(matchesReference, c);

test.serial('wasm Conv2DBackpropFilter gives the same sums when split into many chunks', async (t) => {
  const strided = convCases.cases.find((k) => k.name.startsWith('3x3 stride 2 pad 1 (SSD extras'))!;
  for (const c of [convCases.cases[0]!, convCases.cases[2]!, strided]) {
    const x = seeded(c.input, 3);
    const dy = seeded(convCases.outputShape(c), 4);
    const [whole] = await runOn('wasm', () => filterGrad(c, x, dy));
    const previous = setPatchChunkFloats(200); // one or two output rows per chunk
    try {
      const [chunked] = await runOn('wasm', () => filterGrad(c, x, dy));
      t.true(relativeError(chunked!, whole!) < TIGHT, c.name);
    } finally {
      setPatchChunkFloats(previous);
    }
    tf.dispose([x, dy]);
  }
});

test.serial('wasm Conv2DBackpropFilter frees every intermediate it makes', async (t) => {
  const c = convCases.cases[0]!;
  const x = seeded(c.input, 5);
  const dy = seeded(convCases.outputShape(c), 6);
  const tensors = tf.memory().numTensors;
  const heapTensors = tf.engine().backend.numDataIds();
  tf.tidy(() => {
    filterGrad(c, x, dy);
  });
  t.is(tf.memory().numTensors, tensors);
  t.is(tf.engine().backend.numDataIds(), heapTensors);
  tf.dispose([x, dy]);
});
