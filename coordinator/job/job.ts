/**
 * Job progress: a pure state machine for where training is, what is committed, and the barriers.
 *
 * Protocol (per membership generation):
 *  1. Assignment barrier. Every member of the new ring asks for its assignment, saying how far it got
 *     (its last completed step as epoch, position in the epoch, global step; nothing for a new worker).
 *     When all have asked, the start is the *least* advanced progress among them: a member that got one
 *     step further (its all-reduce finished while a peer's failed) rolls back to its snapshot. New workers
 *     copy the state of `stateSourceRank` first. With no progress reported at all, the start is the
 *     committed progress (a fresh job, or the checkpoint resumed from).
 *  2. Steps. Members report each completed step; the least advanced report of the ring is committed.
 *  3. Epoch barrier. At the end of an epoch's plan every member validates its shard and reports the
 *     detections; when all members of the generation have reported, the exact mAP over everything they
 *     sent decides: next epoch, or stop (last epoch or early stopping). A new generation during the
 *     barrier restarts it (the new ring re-shards validation).
 *  4. Done. On stop, the writer rank writes the model and reports done; the job is finished.
 */
import type { Hyperparameters } from '../../shared/config/hyperparameters.js';
import {
  type EarlyStoppingState,
  INITIAL_EARLY_STOPPING_STATE,
  updateEarlyStopping,
} from '../schedule/early-stopping.js';

export interface Progress {
  epoch: number;
  /** Samples of the epoch permutation consumed. */
  position: number;
  /** Optimizer updates since the job began. */
  globalStep: number;
}

export interface EpochResult<P> {
  workerId: string;
  payload: P;
}

export interface JobState<P = unknown> {
  readonly epochs: number;
  readonly committed: Progress;
  readonly generation: number;
  readonly ring: readonly string[];
  readonly assignmentRequests: ReadonlyMap<string, Progress | null>;
  /** The start of the current generation, once every member asked. */
  readonly start: Progress | null;
  readonly lastReported: ReadonlyMap<string, Progress>;
  readonly epochReports: ReadonlyMap<string, P>;
  readonly earlyStopping: EarlyStoppingState;
  readonly validationMaps: readonly number[];
  readonly phase: 'running' | 'writing' | 'finished';
  readonly writer: string | null;
}

export type JobEvent =
  | { type: 'assignment-ready'; generation: number; start: Progress; stateSourceRank: number }
  | { type: 'committed'; progress: Progress }
  | { type: 'epoch-decided'; epoch: number; validationMap: number; stop: boolean; writer: string | null }
  | { type: 'finished' };

export interface JobTransition<P> {
  state: JobState<P>;
  events: JobEvent[];
}

export function createJob<P>(
  epochs: number,
  resumeFrom?: Progress,
  earlyStopping?: EarlyStoppingState,
  validationMaps: readonly number[] = [],
): JobState<P> {
  return {
    epochs,
    committed: resumeFrom ?? { epoch: 0, position: 0, globalStep: 0 },
    generation: 0,
    ring: [],
    assignmentRequests: new Map(),
    start: null,
    lastReported: new Map(),
    epochReports: new Map(),
    earlyStopping: earlyStopping ?? INITIAL_EARLY_STOPPING_STATE,
    validationMaps: [...validationMaps],
    phase: resumeFrom && resumeFrom.epoch >= epochs ? 'finished' : 'running',
    writer: null,
  };
}

export function compareProgress(a: Progress, b: Progress): number {
  return a.globalStep - b.globalStep || a.epoch - b.epoch || a.position - b.position;
}

/** A new ring: every barrier starts over. */
export function onNewGeneration<P>(
  state: JobState<P>,
  generation: number,
  ring: readonly string[],
): JobState<P> {
  return {
    ...state,
    generation,
    ring: [...ring],
    assignmentRequests: new Map(),
    start: null,
    epochReports: new Map(),
    lastReported: new Map([...state.lastReported].filter(([id]) => ring.includes(id))),
    writer:
      state.phase === 'writing' && state.writer && !ring.includes(state.writer)
        ? (ring[0] ?? null)
        : state.writer,
  };
}

export function onAssignmentRequest<P>(
  state: JobState<P>,
  workerId: string,
  completed: Progress | null,
): JobTransition<P> {
  if (!state.ring.includes(workerId) || state.start) return { state, events: [] };
  const requests = new Map(state.assignmentRequests).set(workerId, completed);
  const next = { ...state, assignmentRequests: requests };
  if (!state.ring.every((id) => requests.has(id))) return { state: next, events: [] };
  const reported = state.ring.map((id) => requests.get(id)).filter((p): p is Progress => p != null);
  // Only a restarted coordinator (or a fresh job) has nothing from its members; then the commit stands.
  const start = reported.length
    ? reported.reduce((a, b) => (compareProgress(a, b) <= 0 ? a : b))
    : state.committed;
  const stateSourceRank = state.ring.findIndex((id) => requests.get(id) != null);
  return {
    state: { ...next, start, committed: start },
    events: [{ type: 'assignment-ready', generation: state.generation, start, stateSourceRank }],
  };
}

export function onStepReport<P>(state: JobState<P>, workerId: string, progress: Progress): JobTransition<P> {
  if (!state.ring.includes(workerId)) return { state, events: [] };
  const lastReported = new Map(state.lastReported).set(workerId, progress);
  const reports = state.ring.map((id) => lastReported.get(id));
  let committed = state.committed;
  if (reports.every((p): p is Progress => p !== undefined)) {
    const least = reports.reduce((a, b) => (compareProgress(a, b) <= 0 ? a : b));
    if (compareProgress(least, committed) > 0) committed = least;
  }
  const events: JobEvent[] =
    committed === state.committed ? [] : [{ type: 'committed', progress: committed }];
  return { state: { ...state, lastReported, committed }, events };
}

/**
 * A member's validation result for `epoch`. `computeMap` turns every member's payload into the exact mAP
 * (NaN without validation data); it runs once, when the barrier completes.
 */
export function onEpochReport<P>(
  state: JobState<P>,
  workerId: string,
  epoch: number,
  payload: P,
  endProgress: Progress,
  hp: Pick<
    Hyperparameters,
    'early_stopping' | 'early_stopping_min_epochs' | 'early_stopping_patience' | 'early_stopping_tolerance'
  >,
  computeMap: (payloads: P[]) => number,
): JobTransition<P> {
  if (!state.ring.includes(workerId) || epoch !== state.committed.epoch || state.phase !== 'running') {
    return { state, events: [] };
  }
  const epochReports = new Map(state.epochReports).set(workerId, payload);
  const next = { ...state, epochReports };
  if (!state.ring.every((id) => epochReports.has(id))) return { state: next, events: [] };
  const validationMap = computeMap(state.ring.map((id) => epochReports.get(id)!));
  const early = Number.isNaN(validationMap)
    ? { state: state.earlyStopping, stop: false }
    : updateEarlyStopping(state.earlyStopping, epoch, validationMap, hp);
  const stop = early.stop || epoch + 1 >= state.epochs;
  const writer = stop ? (state.ring[0] ?? null) : null;
  return {
    state: {
      ...next,
      epochReports: new Map(),
      earlyStopping: early.state,
      validationMaps: [...state.validationMaps, validationMap],
      committed: { epoch: epoch + 1, position: 0, globalStep: endProgress.globalStep },
      phase: stop ? 'writing' : 'running',
      writer,
    },
    events: [{ type: 'epoch-decided', epoch, validationMap, stop, writer }],
  };
}

export function onDone<P>(state: JobState<P>, workerId: string): JobTransition<P> {
  if (state.phase !== 'writing' || workerId !== state.writer) return { state, events: [] };
  return { state: { ...state, phase: 'finished' }, events: [{ type: 'finished' }] };
}
