import * as tf from '@tensorflow/tfjs-core';
import test from 'ava';
import { createRng, RNG_STREAM } from '../../../../shared/random.js';
import { copySlice, sliceConfig, splitVConfig } from '../../../../worker/backend/wasm-kernels/slice.js';
import { initWasmAndCpu, runOn, seeded } from '../backend-compare.js';

test.before(async () => {
  await initWasmAndCpu();
});

/** The definition: every output element's index, one at a time. */
function sliceByDefinition(x: Float32Array, shape: number[], begin: number[], size: number[]): Float32Array {
  const out = new Float32Array(size.reduce((a, b) => a * b, 1));
  const strides = shape.map((_, k) => shape.slice(k + 1).reduce((a, b) => a * b, 1));
  for (let n = 0; n < out.length; n++) {
    let rest = n;
    let src = 0;
    for (let k = shape.length - 1; k >= 0; k--) {
      src += ((rest % size[k]!) + begin[k]!) * strides[k]!;
      rest = Math.floor(rest / size[k]!);
    }
    out[n] = x[src]!;
  }
  return out;
}

test('copySlice packs every slice of random shapes of rank 0 to 5 as the definition does', (t) => {
  const rng = createRng(0, RNG_STREAM.test, 71);
  let cases = 0;
  for (let i = 0; i < 400; i++) {
    const rank = rng.int(6);
    const shape = Array.from({ length: rank }, () => 1 + rng.int(5));
    const begin = shape.map((d) => rng.int(d));
    // Often the whole extent, so the merged trailing runs are exercised; sometimes empty.
    const size = shape.map((d, k) => (rng.int(3) === 0 ? d - begin[k]! : rng.int(d - begin[k]! + 1)));
    if (rng.int(2) === 0) begin.fill(0, rank - rng.int(rank + 1));
    for (let k = 0; k < rank; k++) if (begin[k] === 0 && rng.int(2) === 0) size[k] = shape[k]!;
    const count = shape.reduce((a, b) => a * b, 1);
    const outCount = size.reduce((a, b) => a * b, 1);
    // Source at 3, destination after it and a guard value, in one heap as the kernel uses it.
    const heap = new Float32Array(3 + count + 1 + outCount + 1).fill(-1);
    for (let j = 0; j < count; j++) heap[3 + j] = j + 0.5;
    const dstAt = 3 + count + 1;
    copySlice(heap, 3, shape, begin, size, dstAt);
    const expected = sliceByDefinition(heap.slice(3, 3 + count), shape, begin, size);
    t.deepEqual(
      Array.from(heap.subarray(dstAt, dstAt + outCount)),
      Array.from(expected),
      JSON.stringify({ shape, begin, size }),
    );
    t.is(heap[dstAt + outCount], -1, 'nothing is written past the slice');
    t.is(heap[dstAt - 1], -1);
    cases++;
  }
  t.is(cases, 400);
});

test.serial('wasm Slice matches the cpu backend for float32, int32 and bool tensors', async (t) => {
  t.is(
    tf.getKernel('Slice', 'wasm')?.kernelFunc,
    sliceConfig.kernelFunc,
    "this project's Slice is the one tested",
  );
  t.is(tf.getKernel('SplitV', 'wasm')?.kernelFunc, splitVConfig.kernelFunc);
  const x = seeded([3, 5, 4, 2], 1);
  const cases: [number[], number[]][] = [
    [
      [1, 0, 0, 0],
      [2, 5, 4, 2],
    ],
    [
      [0, 1, 0, 0],
      [3, 3, 4, 2],
    ],
    [
      [0, 2, 1, 1],
      [3, 2, 2, 1],
    ],
    [
      [2, 4, 3, 1],
      [1, 1, 1, 1],
    ],
    [
      [0, 0, 0, 0],
      [3, 0, 4, 2],
    ],
  ];
  for (const [begin, size] of cases) {
    for (const dtype of ['float32', 'int32', 'bool'] as const) {
      const f = () => tf.slice(tf.cast(tf.mul(x, 3), dtype), begin, size);
      const [wasm] = await runOn('wasm', f);
      const [cpu] = await runOn('cpu', f);
      t.deepEqual(Array.from(wasm!), Array.from(cpu!), `${dtype} begin ${begin} size ${size}`);
    }
  }
  x.dispose();
});

test.serial(
  'wasm SplitV matches the cpu backend along every axis, and so does the concat gradient',
  async (t) => {
    const x = seeded([2, 7, 3], 2);
    for (const axis of [0, 1, 2, -1]) {
      const splits = axis === 0 ? [1, 1] : axis === 1 ? [3, 0, 4] : [2, 1];
      const wasm = await runOn('wasm', () => tf.split(x, splits, axis));
      const cpu = await runOn('cpu', () => tf.split(x, splits, axis));
      t.deepEqual(
        wasm.map((a) => Array.from(a)),
        cpu.map((a) => Array.from(a)),
        `axis ${axis}`,
      );
    }
    // The SSD heads' pattern: per-head [batch, anchors, classes] outputs concatenated along the anchors.
    const heads = [seeded([2, 6, 3], 3), seeded([2, 2, 3], 4), seeded([2, 1, 3], 5)];
    const weight = seeded([2, 9, 3], 6);
    const f = (...hs: tf.Tensor[]) => tf.sum(tf.mul(tf.concat(hs, 1), weight));
    const wasm = await runOn('wasm', () => tf.grads(f)(heads));
    const cpu = await runOn('cpu', () => tf.grads(f)(heads));
    t.deepEqual(
      wasm.map((a) => Array.from(a)),
      cpu.map((a) => Array.from(a)),
    );
    tf.dispose([x, ...heads, weight]);
  },
);

test.serial('wasm Slice of a string tensor is left to the stock kernel', async (t) => {
  const x = tf.tensor(['a', 'b', 'c', 'd'], [2, 2]);
  const y = tf.slice(x, [0, 1], [2, 1]);
  t.deepEqual(await y.array(), [['b'], ['d']]);
  tf.dispose([x, y]);
});

test.serial('wasm Slice refuses a slice past the end of its input as the cpu backend does', async (t) => {
  // copySlice reads the whole heap: unchecked, it would copy other tensors' memory into the slice.
  const x = tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3]);
  // runOn leaves the backend it switched to when the function throws.
  t.teardown(async () => {
    await tf.setBackend('wasm');
    x.dispose();
  });
  for (const backend of ['cpu', 'wasm'] as const) {
    await t.throwsAsync(
      runOn(backend, () => tf.slice(x, [1, 1], [1, 3])),
      { message: /begin\[1\] \+ size\[1\] \(4\) would overflow input.shape\[1\] \(3\)/ },
      backend,
    );
    await t.throwsAsync(
      runOn(backend, () => tf.slice(x, [2, 0], [1, -1])),
      { message: /would overflow input.shape\[0\] \(2\)/ },
      backend,
    );
  }
});
