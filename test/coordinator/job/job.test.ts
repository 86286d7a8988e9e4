import test from 'ava';
import {
  createJob,
  type JobState,
  onAssignmentRequest,
  onDone,
  onEpochReport,
  onNewGeneration,
  onStepReport,
  type Progress,
} from '../../../coordinator/job/job.js';

const hp = {
  early_stopping: false,
  early_stopping_min_epochs: 1,
  early_stopping_patience: 1,
  early_stopping_tolerance: 0,
};
const p = (epoch: number, position: number, globalStep: number): Progress => ({
  epoch,
  position,
  globalStep,
});
const meanMap = (payloads: number[]) => payloads.reduce((a, b) => a + b, 0) / payloads.length;

function ready(state: JobState<number>, ring: string[], progress: (Progress | null)[]) {
  let s = onNewGeneration(state, 1, ring);
  const events = [];
  for (const [i, id] of ring.entries()) {
    const r = onAssignmentRequest(s, id, progress[i] ?? null);
    s = r.state;
    events.push(...r.events);
  }
  return { state: s, events };
}

test('job assigns the committed start once every ring member has asked', (t) => {
  const job = onNewGeneration(createJob<number>(3), 1, ['a', 'b']);
  const first = onAssignmentRequest(job, 'a', null);
  t.deepEqual(first.events, []);
  const second = onAssignmentRequest(first.state, 'b', null);
  t.deepEqual(second.events, [
    { type: 'assignment-ready', generation: 1, start: p(0, 0, 0), stateSourceRank: -1 },
  ]);
});

test('job starts a new generation from the least advanced survivor, who rolls the others back', (t) => {
  const { state, events } = ready(createJob<number>(3), ['a', 'b', 'c'], [p(0, 64, 4), p(0, 48, 3), null]);
  t.deepEqual(events, [{ type: 'assignment-ready', generation: 1, start: p(0, 48, 3), stateSourceRank: 0 }]);
  t.deepEqual(state.committed, p(0, 48, 3));
});

test('job ignores assignment requests from workers outside the ring', (t) => {
  const job = onNewGeneration(createJob<number>(3), 1, ['a']);
  t.deepEqual(onAssignmentRequest(job, 'zz', null).events, []);
});

test('job commits a step only when every member has reported it', (t) => {
  let s = ready(createJob<number>(3), ['a', 'b'], [null, null]).state;
  let r = onStepReport(s, 'a', p(0, 16, 1));
  t.deepEqual(r.events, []);
  r = onStepReport(r.state, 'b', p(0, 16, 1));
  t.deepEqual(r.events, [{ type: 'committed', progress: p(0, 16, 1) }]);
  s = onStepReport(r.state, 'a', p(0, 32, 2)).state;
  t.deepEqual(s.committed, p(0, 16, 1));
});

test('job decides an epoch from all members reports with the exact combined metric, then stops after the last epoch', (t) => {
  let s = ready(createJob<number>(2), ['a', 'b'], [null, null]).state;
  s = onEpochReport(s, 'a', 0, 0.5, p(0, 96, 6), hp, meanMap).state;
  const r = onEpochReport(s, 'b', 0, 0.7, p(0, 96, 6), hp, meanMap);
  t.is(r.events[0]?.type, 'epoch-decided');
  t.true(Math.abs((r.events[0] as { validationMap: number }).validationMap - 0.6) < 1e-12);
  t.deepEqual(r.state.committed, p(1, 0, 6));
  t.is(r.state.phase, 'running');
  s = onEpochReport(r.state, 'a', 1, 0.8, p(1, 96, 12), hp, meanMap).state;
  const last = onEpochReport(s, 'b', 1, 0.8, p(1, 96, 12), hp, meanMap);
  t.deepEqual(last.events, [
    { type: 'epoch-decided', epoch: 1, validationMap: 0.8, stop: true, writer: 'a' },
  ]);
  t.is(last.state.phase, 'writing');
  t.deepEqual(onDone(last.state, 'b').events, []);
  t.deepEqual(onDone(last.state, 'a').events, [{ type: 'finished' }]);
});

test('job restarts the epoch barrier when the ring changes and hands the writer role to a survivor', (t) => {
  let s = ready(createJob<number>(1), ['a', 'b'], [null, null]).state;
  s = onEpochReport(s, 'a', 0, 0.5, p(0, 96, 6), hp, meanMap).state;
  s = onNewGeneration(s, 2, ['b']);
  t.is(s.epochReports.size, 0);
  const r = onEpochReport(s, 'b', 0, 0.9, p(0, 96, 6), hp, meanMap);
  t.deepEqual(r.events, [{ type: 'epoch-decided', epoch: 0, validationMap: 0.9, stop: true, writer: 'b' }]);
  const lost = onNewGeneration(r.state, 3, ['c']);
  t.is(lost.writer, 'c');
});

test('job stops early when early stopping says so', (t) => {
  const es = { ...hp, early_stopping: true };
  let s = ready(createJob<number>(10), ['a'], [null]).state;
  s = onEpochReport(s, 'a', 0, 0.5, p(0, 8, 1), es, meanMap).state;
  const r = onEpochReport(s, 'a', 1, 0.4, p(1, 8, 2), es, meanMap);
  t.true((r.events[0] as { stop: boolean }).stop);
});
