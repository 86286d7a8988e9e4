import { PassThrough } from 'node:stream';
import test from 'ava';
import { FakeClock } from '../../shared/clock.js';
import {
  createProgress,
  estimateEtaSeconds,
  formatDuration,
  formatProgressLine,
} from '../../shared/progress.js';

function capture(isTTY: boolean) {
  const stream = Object.assign(new PassThrough(), { isTTY, columns: 160 });
  let text = '';
  stream.on('data', (b: Buffer) => (text += b.toString()));
  return { stream, text: () => text };
}

test('formatDuration writes seconds, minutes and hours compactly and ? when unknown', (t) => {
  t.is(formatDuration(12.4), '12s');
  t.is(formatDuration(250), '4m10s');
  t.is(formatDuration(3723), '1h02m03s');
  t.is(formatDuration(undefined), '?');
  t.is(formatDuration(Number.POSITIVE_INFINITY), '?');
});

test('estimateEtaSeconds extrapolates the mean step rate since the origin to the remaining steps', (t) => {
  // 100 steps in 10 s: 0.1 s per step, 900 steps left.
  t.is(estimateEtaSeconds({ atMs: 0, step: 0 }, 10_000, 100, 1000), 90);
  t.is(estimateEtaSeconds({ atMs: 0, step: 50 }, 10_000, 100, 1000), 180, 'counted from the origin step');
  t.is(estimateEtaSeconds({ atMs: 0, step: 0 }, 10_000, 1200, 1000), 0, 'past the total');
  t.is(estimateEtaSeconds({ atMs: 0, step: 100 }, 10_000, 100, 1000), undefined, 'no step since the origin');
  t.is(estimateEtaSeconds({ atMs: 0, step: 0 }, 10_000, 100, 0), undefined, 'unknown total');
});

test('formatProgressLine shows epoch of epochs, step of total with percent, img/s, loss and eta', (t) => {
  const line = formatProgressLine(
    { epoch: 2, step: 120, imagesPerSecond: 35.24, loss: 2.34567, etaSeconds: 250 },
    { total: 1000, epochs: 10 },
  );
  t.is(line, 'progress epoch 2/10 step 120/1000 (12.0%) 35.2 img/s loss 2.346 eta 4m10s');
  t.is(
    formatProgressLine({ epoch: 1, step: 7, imagesPerSecond: 0, loss: Number.NaN }, { total: 0 }),
    'progress epoch 1 step 7 0.0 img/s loss NaN eta ?',
  );
});

test('plain progress prints the first update, then at most one line per interval, and the last on stop', (t) => {
  const clock = new FakeClock();
  const out = capture(false);
  const progress = createProgress({ stream: out.stream, total: 100, epochs: 1, intervalMs: 10_000, clock });
  const at = (step: number) => ({ epoch: 1, step, imagesPerSecond: 8, loss: 1 });
  progress.update(at(0));
  for (let step = 1; step <= 25; step++) {
    clock.advance(1000);
    progress.update(at(step));
  }
  const lines = () => out.text().trim().split('\n');
  t.deepEqual(
    lines().map((l) => /step (\d+)\//.exec(l)?.[1]),
    ['0', '10', '20'],
  );
  t.regex(lines()[1]!, /eta 1m30s$/, '10 steps in 10 s, 90 to go');
  progress.stop();
  progress.stop();
  progress.update(at(26));
  t.is(lines().length, 4);
  t.regex(lines()[3]!, /step 25\/100/);
});

test('plain progress stop() prints nothing more when the last update was already printed', (t) => {
  const out = capture(false);
  const progress = createProgress({ stream: out.stream, total: 10, clock: new FakeClock() });
  progress.update({ epoch: 1, step: 3, imagesPerSecond: 1, loss: 1, etaSeconds: 7 });
  progress.stop();
  t.is(out.text(), 'progress epoch 1 step 3/10 (30.0%) 1.0 img/s loss 1.000 eta 7s\n');
});

test('progress on a TTY draws a cli-progress bar with the fields and ends it with a newline on stop', (t) => {
  const out = capture(true);
  const progress = createProgress({ stream: out.stream, total: 40, epochs: 2 });
  progress.update({ epoch: 1, step: 0, imagesPerSecond: 0, loss: 3, etaSeconds: 60 });
  progress.update({ epoch: 2, step: 30, imagesPerSecond: 12.5, loss: 1.25, etaSeconds: 20 });
  progress.stop();
  progress.stop();
  const text = out.text();
  t.true(text.includes('\u001b['), 'terminal control sequences');
  t.regex(text, /epoch 2\/2 \|.+\| step 30\/40 \| 12\.5 img\/s \| loss 1\.250 \| eta 20s/);
  t.true(text.endsWith('\n'));
  t.false(text.includes('progress epoch'), 'no plain lines on a TTY');
});
