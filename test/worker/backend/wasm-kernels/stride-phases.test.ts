import test from 'ava';
import {
  type AxisPhase,
  axisPhases,
  phaseFilter,
} from '../../../../worker/backend/wasm-kernels/stride-phases.js';

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

/** dx of a 1-D strided conv by definition: dx[o*s + k*d - p] += dy[o] w[k]. */
function naiveAxis(inSize: number, dy: number[], w: number[], s: number, d: number, p: number): number[] {
  const dx = new Array<number>(inSize).fill(0);
  dy.forEach((g, o) => {
    w.forEach((v, k) => {
      const i = o * s + k * d - p;
      if (i >= 0 && i < inSize) dx[i]! += g * v;
    });
  });
  return dx;
}

/** dx from the plan: each phase a stride-1 correlation of zero-padded dy with its taps, scattered. */
function fromPlan(inSize: number, plan: AxisPhase[], dy: number[], w: number[], s: number): number[] {
  const dx = new Array<number>(inSize).fill(0);
  for (const p of plan) {
    if (p.taps.length === 0) continue;
    const padded = [...new Array(p.padBefore).fill(0), ...dy, ...new Array(p.padAfter).fill(0)];
    if (padded.length - (p.taps.length - 1) * p.dilation !== p.size) return [Number.NaN];
    for (let a = 0; a < p.size; a++) {
      dx[p.phase + a * s] = p.taps.reduce((sum, k, j) => sum + padded[a + j * p.dilation]! * w[k]!, 0);
    }
  }
  return dx;
}

test('every usable axis plan reproduces the strided input gradient (sizes 1-11, kernels 1-6, strides 1-4, dilations 1-3, pads 0-4 each side)', (t) => {
  let planned = 0;
  const wrong: string[] = [];
  for (let inSize = 1; inSize <= 11; inSize++) {
    for (let k = 1; k <= 6; k++) {
      for (let s = 1; s <= 4; s++) {
        for (let d = 1; d <= 3; d++) {
          for (let before = 0; before <= 4; before++) {
            for (let after = 0; after <= 4; after++) {
              const extent = (k - 1) * d + 1;
              if (inSize + before + after < extent) continue;
              const out = Math.floor((inSize + before + after - extent) / s) + 1;
              const plan = axisPhases(inSize, out, k, s, d, before);
              if (!plan) continue;
              planned++;
              const dy = Array.from({ length: out }, (_, i) => ((i * 37 + 11) % 17) - 8);
              const w = Array.from({ length: k }, (_, i) => ((i * 13 + 5) % 11) - 5);
              const expected = naiveAxis(inSize, dy, w, s, d, before);
              if (String(fromPlan(inSize, plan, dy, w, s)) !== String(expected)) {
                wrong.push(`in ${inSize} k ${k} s ${s} d ${d} pads ${before}/${after}`);
              }
            }
          }
        }
      }
    }
  }
  t.true(planned > 5000, `${planned} plans`);
  t.deepEqual(wrong.slice(0, 5), []);
});
