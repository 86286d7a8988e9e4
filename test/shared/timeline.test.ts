import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import test from 'ava';
import { isClusterError } from '../../shared/errors.js';
import {
  type ChromeTrace,
  createTimeline,
  laneTid,
  mergeTraceFiles,
  parseTrace,
  readTraceFile,
  recordStepPhases,
  TIMELINE_LANES,
  type TraceEvent,
} from '../../shared/timeline.js';

async function tempDir(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'timeline-test-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A clock that moves only when told (milliseconds since the epoch). */
function manualNow(startMs: number) {
  let ms = startMs;
  return { now: () => ms, advance: (d: number) => (ms += d) };
}

const complete = (trace: ChromeTrace) => trace.traceEvents.filter((e) => e.ph === 'X');
const processNames = (trace: ChromeTrace) =>
  trace.traceEvents.filter((e) => e.name === 'process_name').map((e) => [e.pid, e.args?.name]);

/** One rank's step: data, compute, a send and a receive inside the all-reduce, update. */
function recordStep(rank: number, startMs: number, path: string) {
  const clock = manualNow(startMs);
  const timeline = createTimeline({ rank, path, now: clock.now });
  for (const [lane, ms] of [
    ['data', 5],
    ['compute', 40 + rank],
    ['allreduce', 10],
    ['update', 2],
  ] as const) {
    const end = timeline.begin(lane, lane, { step: 1 });
    clock.advance(ms);
    end();
  }
  timeline.span('send', `send chunk ${rank} to rank ${(rank + 1) % 3}`, startMs + 47, 3, { bytes: 4096 });
  timeline.span('recv', `recv chunk ${(rank + 2) % 3} from rank ${(rank + 2) % 3}`, startMs + 48, 4);
  return timeline;
}

test('timeline writes a Chrome trace of complete events on close, in microseconds, with pid = rank', async (t) => {
  const path = join(await tempDir(t), 'rank1.json');
  const timeline = recordStep(1, 1_700_000_000_000.25, path);
  await timeline.close();
  const trace = JSON.parse(await readFile(path, 'utf8')) as ChromeTrace;
  t.is(trace.displayTimeUnit, 'ms');
  const events = complete(trace);
  t.deepEqual(
    events.map((e) => [e.name, e.tid, e.pid]),
    [
      ['data', laneTid('data'), 1],
      ['compute', laneTid('compute'), 1],
      ['allreduce', laneTid('allreduce'), 1],
      ['send chunk 1 to rank 2', laneTid('send'), 1],
      ['recv chunk 0 from rank 0', laneTid('recv'), 1],
      ['update', laneTid('update'), 1],
    ],
    'sorted by start time',
  );
  t.is(events[0]!.ts, 1_700_000_000_000_250);
  t.is(events[1]!.dur, 41_000);
  t.deepEqual(events[3]!.args, { bytes: 4096 });
  t.deepEqual(processNames(trace), [[1, 'rank 1']]);
  const lanes = trace.traceEvents.filter((e) => e.name === 'thread_name').map((e) => e.args?.name);
  t.deepEqual(lanes, [...TIMELINE_LANES]);
});

test('timeline close() is idempotent, ignores later spans and leaves no temp file', async (t) => {
  const dir = await tempDir(t);
  const timeline = recordStep(0, 1000, join(dir, 'trace.json'));
  await Promise.all([timeline.close(), timeline.close()]);
  timeline.span('compute', 'late', 2000, 1);
  await timeline.close();
  t.deepEqual(await readdir(dir), ['trace.json']);
  t.is(complete(await readTraceFile(join(dir, 'trace.json'))).length, 6);
  t.false(complete(timeline.trace()).some((e) => e.name === 'late'));
});

test('timeline records events under the new pid after a re-rank and names both processes', (t) => {
  const timeline = createTimeline({ rank: 2, now: () => 0 });
  timeline.span('compute', 'compute', 10, 1);
  timeline.rank = 0;
  timeline.span('compute', 'compute', 20, 1);
  const trace = timeline.trace();
  t.deepEqual(
    complete(trace).map((e) => e.pid),
    [2, 0],
  );
  t.deepEqual(processNames(trace), [
    [0, 'rank 0'],
    [2, 'rank 2'],
  ]);
});

test('timeline keeps at most maxEvents and counts the rest', (t) => {
  const timeline = createTimeline({ rank: 0, maxEvents: 3 });
  for (let i = 0; i < 5; i++) timeline.span('data', `batch ${i}`, i, 1);
  const trace = timeline.trace();
  t.is(complete(trace).length, 3);
  t.deepEqual(trace.otherData, { droppedEvents: 2 });
});

test('mergeTraceFiles combines per-rank traces into one valid trace with every rank present', async (t) => {
  const dir = await tempDir(t);
  const paths = [0, 1, 2].map((rank) => join(dir, `rank${rank}.json`));
  // Rank 2 started first: the merge orders events by time, not by file.
  const starts = [1000, 1001, 999];
  await Promise.all(paths.map((p, rank) => recordStep(rank, starts[rank]!, p).close()));
  const out = join(dir, 'merged', 'timeline.json');
  await mergeTraceFiles(paths, out);
  const merged = parseTrace(await readFile(out, 'utf8'), out);
  t.deepEqual(processNames(merged), [
    [0, 'rank 0'],
    [1, 'rank 1'],
    [2, 'rank 2'],
  ]);
  const events = complete(merged);
  t.is(events.length, 18);
  t.deepEqual([...new Set(events.map((e) => e.pid))].sort(), [0, 1, 2]);
  t.is(events[0]!.pid, 2);
  t.true(events.every((e: TraceEvent, i) => i === 0 || events[i - 1]!.ts <= e.ts));
});

test('parseTrace names the source, the event and the field that is wrong', (t) => {
  const bad = (text: string) => t.throws(() => parseTrace(text, 'r1.json'), { instanceOf: Error })!.message;
  t.is(bad('{"traceEvents": ['), 'r1.json: not JSON');
  t.is(bad('{"events": []}'), 'r1.json: traceEvents must be an array');
  t.is(
    bad(
      '{"traceEvents": [{"name":"a","ph":"X","ts":1,"pid":0,"tid":1},{"name":"b","ph":"X","ts":"2","pid":0,"tid":1}]}',
    ),
    'r1.json: traceEvents[1].ts must be a number',
  );
});

test('readTraceFile reports a missing file as NOT_FOUND and writing under a file as a storage error', async (t) => {
  const dir = await tempDir(t);
  const missing = await t.throwsAsync(readTraceFile(join(dir, 'nope.json')));
  t.true(isClusterError(missing, 'NOT_FOUND'));
  t.regex(missing!.message, /nope\.json: reading the timeline failed/);
  await writeFile(join(dir, 'file'), 'x');
  const timeline = createTimeline({ rank: 0, path: join(dir, 'file', 'trace.json') });
  const err = await t.throwsAsync(timeline.close());
  t.true(isClusterError(err, 'STORAGE'));
  t.regex(err!.message, /file\/trace\.json: writing the timeline failed/);
});

test('recordStepPhases lays the phases out back to back under a step span that ends at endMs', (t) => {
  const timeline = createTimeline({ rank: 3 });
  const phases = { data: 0.004, compute: 0.02, allreduce: 0.008, update: 0.002 };
  recordStepPhases(timeline, { globalStep: 7, endMs: 10_000, phases, args: { epoch: 1 } });
  const events = complete(timeline.trace());
  const step = events.find((e) => e.cat === 'step')!;
  t.is(step.name, 'step 7');
  t.is(step.ts, (10_000 - 34) * 1000);
  t.is(step.dur, 34_000);
  const parts = events.filter((e) => e.cat !== 'step');
  t.deepEqual(
    parts.map((e) => [e.name, e.dur]),
    [
      ['data', 4000],
      ['compute', 20_000],
      ['allreduce', 8000],
      ['update', 2000],
    ],
  );
  t.true(parts.every((e, i) => i === 0 || e.ts === parts[i - 1]!.ts + parts[i - 1]!.dur!));
  t.is(parts.at(-1)!.ts + parts.at(-1)!.dur!, 10_000_000);
  t.deepEqual(parts[1]!.args, { step: 7, epoch: 1 });
});
