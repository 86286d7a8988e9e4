import * as tf from '@tensorflow/tfjs-core';
import test from 'ava';
import { setPatchChunkFloats } from '../../../../worker/backend/wasm-kernels/conv-attrs.js';
import { transposedConvPads } from '../../../../worker/backend/wasm-kernels/conv2d-backprop-input.js';
import { stridePhases } from '../../../../worker/backend/wasm-kernels/stride-phases.js';
import { initWasmAndCpu, relativeError, runOn, seeded, TIGHT } from '../backend-compare.js';
import { type ConvCase, convCases, inputGrad, naiveInputGrad } from './conv-cases.js';

test.before(async () => {
  await initWasmAndCpu();
});

async function reference(c: ConvCase, dy: tf.Tensor, w: tf.Tensor): Promise<Float32Array> {
  if (c.dilation === undefined) return (await runOn('cpu', () => inputGrad(c, dy, w)))[0]!;
  return naiveInputGrad(c, w.dataSync() as Float32Array, dy.dataSync() as Float32Array);
}

function route(c: ConvCase): string {
  const info = tf.backend_util.computeConv2DInfo(c.input, c.filter, c.strides, c.dilation ?? 1, c.pad);
  if (transposedConvPads(info)) return 'transposed conv';
  return stridePhases(info) ? 'stride phases' : 'col2im';
}

const matchesReference = test.macro({
  async exec(t, c: ConvCase) {
    const dy = seeded(convCases.outputShape(c), 1);
    const w = seeded(c.filter, 2);
    const [wasm] = await runOn('wasm', () => inputGrad(c, dy, w));
    const expected = await reference(c, dy, w);
    t.true(relativeError(wasm!, expected) < TIGHT, `relative error ${relativeError(wasm!, expected)}`);
    tf.dispose([dy, w]);
  },
  title: (_title, c: ConvCase) =>
    `wasm Conv2DBackpropInput (${route(c)}) matches ${c.dilation ? 'the definition' : 'the cpu backend'} for ${c.name}`,
});

for (const c of convCases.cases) test.serial(matchesReference, c);

test.serial(
  'wasm Conv2DBackpropInput takes the transposed-conv route for stride 1, stride phases for strides, col2im for negative pads',
  (t) => {
    const routes = Object.fromEntries(convCases.cases.map((c) => [c.name, route(c)]));
    t.is(routes['3x3 stride 1 SAME, batch 2, odd 9x9'], 'transposed conv');
    t.is(routes['3x3 dilation 6 pad 6 (atrous fc6)'], 'transposed conv');
    t.is(routes['3x3 stride 2 pad 1 (SSD extras, 19 -> 10)'], 'stride phases');
    t.is(routes['3x3 strides [2, 1] SAME on 10x7'], 'stride phases');
    t.is(routes['1x1 stride 2 (ResNet downsampling)'], 'stride phases');
    t.is(routes['1x1 stride 2 pad 1 (a phase would need a negative pad)'], 'col2im');
  },
);

test.serial('wasm Conv2DBackpropInput gives the same result when col2im runs in many chunks', async (t) => {
  const c = convCases.cases.find((k) => route(k) === 'col2im')!;
  const dy = seeded(convCases.outputShape(c), 3);
  const w = seeded(c.filter, 4);
  const [whole] = await runOn('wasm', () => inputGrad(c, dy, w));
  const previous = setPatchChunkFloats(100);
  try {
    const [chunked] = await runOn('wasm', () => inputGrad(c, dy, w));
    t.true(relativeError(chunked!, whole!) < TIGHT);
  } finally {
    setPatchChunkFloats(previous);
  }
  tf.dispose([dy, w]);
});

test.serial('wasm Conv2DBackpropInput frees every intermediate on all three routes', async (t) => {
  const routes = ['transposed conv', 'stride phases', 'col2im'];
  const oneOfEach = routes.map((r) => convCases.cases.find((c) => route(c) === r)!);
  for (const c of oneOfEach) {
    const dy = seeded(convCases.outputShape(c), 5);
    const w = seeded(c.filter, 6);
    const tensors = tf.memory().numTensors;
    const heapTensors = tf.engine().backend.numDataIds();
    tf.tidy(() => {
      inputGrad(c, dy, w);
    });
    t.is(tf.memory().numTensors, tensors, c.name);
    t.is(tf.engine().backend.numDataIds(), heapTensors, c.name);
    tf.dispose([dy, w]);
  }
});
