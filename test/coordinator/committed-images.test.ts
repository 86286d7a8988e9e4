import test from 'ava';
import { CommittedImages } from '../../coordinator/committed-images.js';
import type { Progress } from '../../coordinator/job/job.js';

/** An epoch of 32 samples in global batches of 8: step s of epoch e ends at position 8 * (s - 32e/8). */
const STEPS_PER_EPOCH = 4;
const at = (globalStep: number): Progress => {
  const epoch = Math.floor((globalStep - 1) / STEPS_PER_EPOCH);
  return { epoch, position: 8 * (globalStep - epoch * STEPS_PER_EPOCH), globalStep };
};

/** A ring's reports of one step: `images` per worker (bad records as `bad`, default none). */
function report(
  counter: CommittedImages,
  step: number,
  slices: Record<string, number>,
  ringSize: number,
  bad: Record<string, number> = {},
) {
  for (const [workerId, images] of Object.entries(slices))
    counter.onReport({ workerId, progress: at(step), images, badRecords: bad[workerId] ?? 0, ringSize });
}

/** Steps 1 and 2 of a and b committed; a reported step 3, b did not. */
function afterAReportOfStep3(): CommittedImages {
  const counter = new CommittedImages();
  counter.onStart(at(0));
  for (const step of [1, 2]) {
    report(counter, step, { a: 4, b: 4 }, 2);
    counter.onCommit(at(step));
  }
  report(counter, 3, { a: 4 }, 2);
  return counter;
}

test('committed steps count the sum of their ring reports once, and nothing before the commit', (t) => {
  const counter = new CommittedImages();
  counter.onStart({ epoch: 0, position: 0, globalStep: 0 });
  report(counter, 1, { a: 4, b: 4 }, 2);
  t.is(counter.total, 0, 'reported, not committed yet');
  counter.onCommit(at(1));
  report(counter, 1, { a: 4 }, 2);
  counter.onCommit(at(1));
  t.is(counter.total, 8, 'a repeated report or commit of a counted step adds nothing');
  report(counter, 2, { a: 3, b: 4 }, 2, { a: 1 });
  counter.onCommit(at(2));
  t.is(counter.total, 15, 'a bad record is not an image');
});

test('a rank killed after its last all-reduce: the step it never reported is counted at the new start', (t) => {
  // The 3072-image job that ended at 3068, in small: b trained step 3 with a but died before reporting.
  const counter = afterAReportOfStep3();
  // Generation 2 is a alone; its start is a's progress, step 3 (in the model, with b's slice).
  counter.onStart(at(3));
  t.is(counter.total, 24);
  report(counter, 4, { a: 8 }, 1);
  counter.onCommit(at(4));
  t.is(counter.total, 32, 'the whole epoch, every image once');
});

test('a step the new generation repeats from a snapshot is counted once, from the repeat', (t) => {
  // a finished step 3 and reported it; b's all-reduce failed (its progress is step 2): a rolls back.
  const counter = afterAReportOfStep3();
  counter.onStart(at(2));
  t.is(counter.total, 16);
  for (const step of [3, 4]) {
    report(counter, step, { a: 4, b: 4 }, 2);
    counter.onCommit(at(step));
  }
  t.is(counter.total, 32);
});

test('a lost report with bad records in the same step: the samples consumed minus the bad ones reported', (t) => {
  const counter = new CommittedImages();
  counter.onStart(at(4)); // a resumed job: the count begins at its start
  report(counter, 5, { a: 2 }, 2, { a: 2 });
  counter.onStart(at(5));
  t.is(counter.total, 6, 'step 5 is the first of epoch 1: 8 samples, 2 of them bad');
});

test('steps whose every report was refused as stale are counted by their samples, after an epoch barrier', (t) => {
  const counter = new CommittedImages();
  counter.onStart(at(0));
  for (const step of [1, 2, 3, 4, 5]) {
    report(counter, step, { a: 4, b: 4 }, 2);
    counter.onCommit(at(step));
  }
  // A worker joins: generation 2 refuses both reports of steps 6 and 7, which a and b trained.
  counter.onStart(at(7));
  t.is(counter.total, 56);
  report(counter, 8, { a: 3, b: 3, c: 2 }, 3);
  counter.onCommit(at(8));
  t.is(counter.total, 64, 'both epochs, every image once');
});

test('bad records count with their step: once when committed, not again when the new ring repeats it', (t) => {
  const counter = new CommittedImages();
  counter.onStart(at(0));
  report(counter, 1, { a: 3, b: 4 }, 2, { a: 1 });
  t.is(counter.badRecords, 0, 'reported, not committed yet');
  counter.onCommit(at(1));
  t.is(counter.badRecords, 1);
  // Step 2: a's report (with a bad record) arrives, b dies before reporting; the new ring starts at 1.
  report(counter, 2, { a: 3 }, 2, { a: 1 });
  counter.onStart(at(1));
  t.is(counter.badRecords, 1, 'a step the new ring repeats is not counted yet');
  report(counter, 2, { a: 7 }, 1, { a: 1 });
  counter.onCommit(at(2));
  t.is(counter.badRecords, 2, 'the repeated step once');
  t.is(counter.total, 7 + 7);
});
