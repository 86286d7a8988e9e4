import test from 'ava';
import { axisPhases, phaseFilter } from '../../../../worker/backend/wasm-kernels/stride-phases.js';

test('a 3x3 stride-2 pad-1 axis splits into a one-tap and a two-tap phase', (t) => {
  // 64 -> 32: even rows take tap 1 of dy[a]; odd rows take tap 2 of dy[a] and tap 0 of dy[a + 1].
  t.deepEqual(axisPhases(64, 32, 3, 2, 1, 1), [
    { phase: 0, size: 32, taps: [1], dilation: 1, padBefore: 0, padAfter: 0 },
    { phase: 1, size: 32, taps: [2, 0], dilation: 1, padBefore: 0, padAfter: 1 },
  ]);
});

test('a VALID stride-2 axis pads the phase before its first row', (t) => {
  // 9 -> 4 with no padding: row 0 = tap 0 of dy[0]; row 2 = tap 2 of dy[0] + tap 0 of dy[1]; row 8 = tap 2 of dy[3].
  t.deepEqual(axisPhases(9, 4, 3, 2, 1, 0), [
    { phase: 0, size: 5, taps: [2, 0], dilation: 1, padBefore: 1, padAfter: 1 },
    { phase: 1, size: 4, taps: [1], dilation: 1, padBefore: 0, padAfter: 0 },
  ]);
});

test('a phase no tap reaches has no taps (1x1 stride 2), and a negative pad gives no plan', (t) => {
  const phases = axisPhases(9, 5, 1, 2, 1, 0)!;
  t.deepEqual(
    phases.map((p) => p.taps),
    [[0], []],
  );
  t.is(axisPhases(7, 4, 1, 2, 1, 1), null);
});

test('stride and dilation sharing a factor give the phase a smaller dilation', (t) => {
  // k=5, s=2, d=2, p=4: every tap lands on even rows, 1 apart in dy; odd rows get nothing.
  const phases = axisPhases(12, 6, 5, 2, 2, 4)!;
  t.deepEqual(phases[0]!.taps, [4, 3, 2, 1, 0]);
  t.is(phases[0]!.dilation, 1);
  t.deepEqual(phases[1]!.taps, []);
});

test('phaseFilter picks the taps in order and swaps in and out channels', (t) => {
  // HWIO [1, 3, 2, 1]: w[0, k, i, 0] = 10k + i.
  const w = Float32Array.from([0, 1, 10, 11, 20, 21]);
  const out = new Float32Array(4);
  phaseFilter(w, [1, 3, 2, 1], [0], [2, 0], out);
  t.deepEqual([...out], [20, 21, 0, 1]);
});
