/**
 * `--timeline FILE`: a Chrome trace (chrome://tracing, ui.perfetto.dev) of every rank's step phases
 * and all-reduce transfers, in the JSON object format:
 *
 *   {"traceEvents": [{"name": "compute", "ph": "X", "ts": <µs>, "dur": <µs>, "pid": <rank>, "tid": <lane>}, ...],
 *    "displayTimeUnit": "ms"}
 *
 * - pid is the rank (named "rank N" by a process_name metadata event); tid is a fixed lane per kind of
 *   work (data, compute, allreduce, send, recv, ...), named by thread_name events, so the same lane
 *   lines up across ranks. A worker re-ranked by a new generation writes its later events under the new
 *   pid; metadata is emitted for every pid a trace uses.
 * - ts is wall-clock microseconds since the Unix epoch (performance.timeOrigin + performance.now()),
 *   so the traces of processes on one machine line up; across machines they are as close as the clocks.
 * - A Timeline buffers events in memory (at most maxEvents; the rest are counted in otherData) and
 *   writes the file once, atomically (temp file + rename), on close(). mergeTraces combines the
 *   per-rank traces the launcher gathers into one file.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ClusterError, StorageError } from './errors.js';
import { type PhaseSeconds, STEP_PHASES } from './metrics/step-window.js';

export const TIMELINE_LANES = [
  'step',
  'data',
  'compute',
  'allreduce',
  'send',
  'recv',
  'update',
  'validation',
  'checkpoint',
] as const;
export type TimelineLane = (typeof TIMELINE_LANES)[number];

export interface TraceEvent {
  name: string;
  ph: string;
  /** Microseconds. */
  ts: number;
  pid: number;
  tid: number;
  dur?: number;
  cat?: string;
  args?: Record<string, unknown>;
}

export interface ChromeTrace {
  traceEvents: TraceEvent[];
  displayTimeUnit?: 'ms' | 'ns';
  otherData?: Record<string, unknown>;
}

export function laneTid(lane: TimelineLane): number {
  return TIMELINE_LANES.indexOf(lane) + 1;
}

/** Names the rank's process and every lane (sorted in TIMELINE_LANES order). */
export function metadataEvents(rank: number): TraceEvent[] {
  const meta = (name: string, tid: number, args: Record<string, unknown>): TraceEvent => ({
    name,
    ph: 'M',
    ts: 0,
    pid: rank,
    tid,
    args,
  });
  return [
    meta('process_name', 0, { name: `rank ${rank}` }),
    meta('process_sort_index', 0, { sort_index: rank }),
    ...TIMELINE_LANES.flatMap((lane) => [
      meta('thread_name', laneTid(lane), { name: lane }),
      meta('thread_sort_index', laneTid(lane), { sort_index: laneTid(lane) }),
    ]),
  ];
}

export interface SpanInput {
  rank: number;
  lane: TimelineLane;
  name: string;
  /** Wall-clock milliseconds since the Unix epoch (fractions allowed). */
  startMs: number;
  durationMs: number;
  args?: Record<string, unknown>;
}

/** One "X" (complete) event. */
export function completeEvent(s: SpanInput): TraceEvent {
  return {
    name: s.name,
    cat: s.lane,
    ph: 'X',
    ts: Math.round(s.startMs * 1000),
    dur: Math.max(0, Math.round(s.durationMs * 1000)),
    pid: s.rank,
    tid: laneTid(s.lane),
    ...(s.args ? { args: s.args } : {}),
  };
}

/** A trace of `events` with metadata for every pid they use. */
export function buildTrace(events: readonly TraceEvent[], otherData?: Record<string, unknown>): ChromeTrace {
  const data = events.filter((e) => e.ph !== 'M');
  const pids = [...new Set(data.map((e) => e.pid))].sort((a, b) => a - b);
  return {
    traceEvents: [...pids.flatMap(metadataEvents), ...data.sort((a, b) => a.ts - b.ts)],
    displayTimeUnit: 'ms',
    ...(otherData ? { otherData } : {}),
  };
}

/** One trace of all ranks' events (metadata re-made, events by time, otherData kept per input). */
export function mergeTraces(traces: readonly ChromeTrace[]): ChromeTrace {
  const otherData = traces.map((t) => t.otherData).filter((d) => d !== undefined);
  return buildTrace(
    traces.flatMap((t) => t.traceEvents),
    otherData.length ? { merged: otherData } : undefined,
  );
}

/** Parses and checks a trace file's text; errors name `source`, the event index and the field. */
export function parseTrace(text: string, source: string): ChromeTrace {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ClusterError('PROTOCOL', `${source}: not JSON`, { cause: err });
  }
  const events = (value as { traceEvents?: unknown } | null)?.traceEvents;
  if (!Array.isArray(events)) throw new ClusterError('PROTOCOL', `${source}: traceEvents must be an array`);
  events.forEach((e: Record<string, unknown>, i) => {
    for (const [field, type] of [
      ['name', 'string'],
      ['ph', 'string'],
      ['ts', 'number'],
      ['pid', 'number'],
      ['tid', 'number'],
    ] as const) {
      if (typeof e?.[field] !== type)
        throw new ClusterError('PROTOCOL', `${source}: traceEvents[${i}].${field} must be a ${type}`);
    }
  });
  return value as ChromeTrace;
}

/** Writes `trace` to `path` atomically: a temp file beside it, then rename. */
export async function writeTraceFile(path: string, trace: ChromeTrace): Promise<void> {
  const temp = `${path}.${process.pid}.tmp`;
  try {
    await mkdir(dirname(path), { recursive: true });
    await writeFile(temp, JSON.stringify(trace));
    await rename(temp, path);
  } catch (err) {
    throw new StorageError(path, `writing the timeline failed: ${(err as Error).message}`, { cause: err });
  }
}

export async function readTraceFile(path: string): Promise<ChromeTrace> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'NOT_FOUND' : 'STORAGE';
    throw new StorageError(path, `reading the timeline failed: ${(err as Error).message}`, {
      cause: err,
      code,
    });
  }
  return parseTrace(text, path);
}

/** Reads per-rank trace files and writes their merge to `outPath`. */
export async function mergeTraceFiles(paths: readonly string[], outPath: string): Promise<ChromeTrace> {
  const merged = mergeTraces(await Promise.all(paths.map(readTraceFile)));
  await writeTraceFile(outPath, merged);
  return merged;
}

export interface Timeline {
  /** Rank recorded with later events (a new generation may re-rank the worker). */
  rank: number;
  /** Records a finished span; times as SpanInput. */
  span(
    lane: TimelineLane,
    name: string,
    startMs: number,
    durationMs: number,
    args?: Record<string, unknown>,
  ): void;
  /** Starts a span now; call the result to end it. */
  begin(lane: TimelineLane, name: string, args?: Record<string, unknown>): () => void;
  /** The trace so far (e.g. to send it to the launcher). */
  trace(): ChromeTrace;
  /** Writes the file (when a path was given) once. Idempotent. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export interface TimelineOptions {
  rank: number;
  /** Where close() writes; omit to keep the trace in memory only. */
  path?: string;
  /** Events kept at most (default 1 000 000); later ones are counted, not kept. */
  maxEvents?: number;
  /** Wall-clock milliseconds (default timelineNowMs). */
  now?: () => number;
}

/** Wall-clock milliseconds with sub-millisecond precision: the time base of every timeline. */
export function timelineNowMs(): number {
  return performance.timeOrigin + performance.now();
}

export function createTimeline(o: TimelineOptions): Timeline {
  const now = o.now ?? timelineNowMs;
  const maxEvents = o.maxEvents ?? 1_000_000;
  const events: TraceEvent[] = [];
  let dropped = 0;
  let closing: Promise<void> | undefined;
  const timeline: Timeline = {
    rank: o.rank,
    span(lane, name, startMs, durationMs, args) {
      if (closing) return;
      if (events.length >= maxEvents) dropped += 1;
      else events.push(completeEvent({ rank: timeline.rank, lane, name, startMs, durationMs, args }));
    },
    begin(lane, name, args) {
      const startMs = now();
      return () => timeline.span(lane, name, startMs, now() - startMs, args);
    },
    trace: () => buildTrace(events, dropped ? { droppedEvents: dropped } : undefined),
    close() {
      closing ??= o.path ? writeTraceFile(o.path, timeline.trace()) : Promise.resolve();
      return closing;
    },
    [Symbol.asyncDispose]: () => timeline.close(),
  };
  return timeline;
}

/**
 * Records one training step as the worker loop measured it: a `step` span and its phases laid out
 * back to back in the order the step runs them (data, compute, allreduce, update), ending at `endMs`.
 */
export function recordStepPhases(
  timeline: Pick<Timeline, 'span'>,
  step: { globalStep: number; endMs: number; phases: PhaseSeconds; args?: Record<string, unknown> },
): void {
  const totalMs = STEP_PHASES.reduce((sum, phase) => sum + 1000 * step.phases[phase], 0);
  const args = { step: step.globalStep, ...step.args };
  let atMs = step.endMs - totalMs;
  timeline.span('step', `step ${step.globalStep}`, atMs, totalMs, args);
  for (const phase of STEP_PHASES) {
    const ms = 1000 * step.phases[phase];
    timeline.span(phase, phase, atMs, ms, args);
    atMs += ms;
  }
}
