import type { ExecutionContext } from 'ava';
import test from 'ava';
import { estimateScaling, scalingFromRates } from '../../../shared/metrics/scaling.js';
import { addSample, createStepWindow, type StepSample } from '../../../shared/metrics/step-window.js';

/** N ranks step together every `stepSeconds`; each rank reports `images` images. */
function lockstep(ranks: number, steps: number, images: number, phases: StepSample['phases']) {
  const stepMs = 1000 * (phases.data + phases.compute + phases.allreduce + phases.update);
  let w = createStepWindow(60_000);
  for (let s = 1; s <= steps; s++) {
    for (let r = 0; r < ranks; r++) w = addSample(w, { atMs: s * stepMs, images, phases, allreduceBytes: 0 });
  }
  return { window: w, endMs: steps * stepMs };
}

function near(t: ExecutionContext, actual: number, expected: number): void {
  t.true(Math.abs(actual - expected) <= 1e-9 * Math.abs(expected), `${actual} is not ${expected}`);
}

test('speedup is N and efficiency 1 when the all-reduce costs nothing', (t) => {
  const phases = { data: 0.05, compute: 0.4, allreduce: 0, update: 0.05 };
  for (const ranks of [1, 2, 4]) {
    const { window, endMs } = lockstep(ranks, 10, 8, phases);
    const e = estimateScaling(window, endMs, ranks);
    near(t, e.singleWorkerImagesPerSecond, 8 / 0.5);
    near(t, e.speedup, ranks);
    near(t, e.efficiency, 1);
  }
});

test('all-reduce time lowers speedup and efficiency by compute time over step time', (t) => {
  // 2 ranks, 0.4 s of work and 0.1 s of all-reduce per step: each rank runs at 4/5 of its own speed.
  const phases = { data: 0.05, compute: 0.3, allreduce: 0.1, update: 0.05 };
  const { window, endMs } = lockstep(2, 20, 8, phases);
  const e = estimateScaling(window, endMs, 2);
  near(t, e.clusterImagesPerSecond, (2 * 8) / 0.5);
  near(t, e.singleWorkerImagesPerSecond, 8 / 0.4);
  near(t, e.speedup, (2 * 0.4) / 0.5);
  near(t, e.efficiency, 0.4 / 0.5);
});

test('scaling is NaN before any step and efficiency is NaN with no workers', (t) => {
  const none = estimateScaling(createStepWindow(), 1000, 2);
  t.is(none.clusterImagesPerSecond, 0);
  t.true(Number.isNaN(none.speedup));
  t.true(Number.isNaN(none.efficiency));
  const noWorkers = scalingFromRates(10, 5, 0);
  t.is(noWorkers.speedup, 2);
  t.true(Number.isNaN(noWorkers.efficiency));
});
