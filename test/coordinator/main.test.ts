import test from 'ava';
import { clusterProgress } from '../../coordinator/main.js';
import type { StepReportMsg } from '../../coordinator/protocol.js';
import { createCoordinatorStats } from '../../coordinator/stats.js';
import { FakeClock } from '../../shared/clock.js';

function report(rank: number, step: number, crossEntropy: number): StepReportMsg {
  return {
    workerId: `w${rank}`,
    generation: 7,
    progress: { epoch: 0, position: step * 8, globalStep: step },
    images: 4,
    crossEntropy,
    smoothL1: 1,
    dataSeconds: 0.01,
    computeSeconds: 0.1,
    allreduceSeconds: 0.01,
    updateSeconds: 0.01,
    allreduceBytes: 1000,
    badRecords: 0,
    learningRate: 0.001,
  };
}

test('cluster progress ends on the last committed step, not the one before it', (t) => {
  const clock = new FakeClock(1_000_000);
  const stats = createCoordinatorStats(clock);
  stats.onGeneration(7, 2);
  const lines: string[] = [];
  const stream = { write: (text: string) => lines.push(text) > 0 } as unknown as NodeJS.WritableStream;
  const bar = clusterProgress(stats, { stream, total: 3, epochs: 1, tty: false, intervalMs: 0, clock });
  // The coordinator's order: every rank reports the step, and the last report commits it.
  for (let step = 1; step <= 3; step++) {
    clock.advance(100);
    stats.onStep(report(0, step, 10 - step));
    stats.onStep(report(1, step, 10 - step));
    stats.onCommit({ epoch: 0, position: step * 8, globalStep: step });
  }
  bar.stop();
  const last = lines.join('').trim().split('\n').at(-1) ?? '';
  t.regex(last, /^progress epoch 1\/1 step 3\/3 \(100\.0%\) .* loss 8\.000 /);
});
