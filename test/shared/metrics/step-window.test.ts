import test from 'ava';
import {
  addSample,
  busBandwidth,
  createStepWindow,
  inWindow,
  median,
  type StepSample,
  type StepWindow,
  singleWorkerThroughput,
  throughput,
} from '../../../shared/metrics/step-window.js';

const phases = { data: 0.1, compute: 0.6, allreduce: 0.2, update: 0.1 };

function sample(atMs: number, images = 8, allreduceBytes = 0): StepSample {
  return { atMs, images, phases, allreduceBytes };
}

function windowOf(samples: StepSample[], windowMs = 10_000): StepWindow {
  return samples.reduce(addSample, createStepWindow(windowMs));
}

test('throughput counts images from the start of the earliest step in the window to now', (t) => {
  // Three 1-second steps of 8 images ending at 1, 2 and 3 s: the first began at 0 s.
  const w = windowOf([sample(1000), sample(2000), sample(3000)]);
  t.is(throughput(w, 3000), 24 / 3);
  t.is(throughput(w, 4000), 24 / 4, 'time without steps lowers the rate');
});

test('step window drops samples older than the window as new ones arrive and ignores them when reading', (t) => {
  const w = windowOf([sample(0), sample(5000), sample(11_000)], 10_000);
  t.deepEqual(
    w.samples.map((s) => s.atMs),
    [5000, 11_000],
  );
  t.deepEqual(
    inWindow(w, 16_000).map((s) => s.atMs),
    [11_000],
  );
  t.is(throughput(w, 100_000), 0, 'nothing in the window');
});

test('createStepWindow rejects a window that is not positive', (t) => {
  t.throws(() => createStepWindow(0), { instanceOf: RangeError, message: /windowMs must be > 0, got 0/ });
});

test('single-worker throughput is the median of images over data+compute+update seconds, all-reduce excluded', (t) => {
  const slow = { atMs: 2000, images: 8, phases: { ...phases, compute: 1.4 }, allreduceBytes: 0 };
  const w = windowOf([sample(1000), slow, sample(3000)]);
  const computeOnly = phases.data + phases.compute + phases.update;
  t.is(singleWorkerThroughput(w, 3000), 8 / computeOnly, 'the slow step is not the median');
  t.true(Number.isNaN(singleWorkerThroughput(createStepWindow(), 0)));
});

test('bus bandwidth is bytes over all-reduce seconds times 2(n-1)/n, and 0 for a single rank', (t) => {
  const w = windowOf([sample(1000, 8, 4e6), sample(2000, 8, 4e6)]);
  const algbw = 8e6 / (2 * phases.allreduce);
  t.is(busBandwidth(w, 2000, 4), (algbw * 2 * 3) / 4);
  t.is(busBandwidth(w, 2000, 2), algbw);
  t.is(busBandwidth(w, 2000, 1), 0);
  const noTime = windowOf([{ atMs: 1, images: 1, phases: { ...phases, allreduce: 0 }, allreduceBytes: 5 }]);
  t.is(busBandwidth(noTime, 1, 2), 0);
});

test('median takes the middle value, or the mean of the two middle values', (t) => {
  t.is(median([3, 1, 2]), 2);
  t.is(median([4, 1, 3, 2]), 2.5);
  t.true(Number.isNaN(median([])));
});
