/**
 * Cluster membership: a pure state machine with generations (Horovod's rendezvous id).
 *
 * Protocol:
 *  1. A worker calls Join (with the cluster token). It becomes a *candidate*: known, heartbeating,
 *     not yet in the ring.
 *  2. While the job is `forming`, the coordinator forms the first ring as soon as `targetWorkers`
 *     candidates are present, or at least `minWorkers` after `formGraceMs` of no new joins.
 *     Forming assigns ranks in join order and bumps `generation`.
 *  3. While `running`, a candidate is admitted (up to `maxWorkers`) by bumping the generation; the
 *     edge makes the ring re-form at the next step boundary and ships the current state to it.
 *  4. A member that misses heartbeats for `heartbeatTimeoutMs`, or that a peer reports as failed,
 *     is *lost*: the generation bumps, the survivors are re-ranked in their old order. If fewer than
 *     `minWorkers` remain, the job is `stalled` until enough workers join again (never silently
 *     continuing below the minimum).
 *  5. A worker that calls Leave is removed the same way, without being counted as a failure.
 *  6. Every RPC carries the caller's generation; the edge rejects a stale one (FAILED_PRECONDITION).
 *
 * Functions take the state and `nowMs` and return the new state plus the events that happened;
 * the coordinator applies them (logs, metrics, assignments). Nothing here reads a clock.
 */

export type JobPhase = 'forming' | 'running' | 'stalled' | 'finished';

export interface MemberInfo {
  workerId: string;
  /** host:port where peers reach this worker's peer service. */
  peerAddress: string;
  /** host:port of the worker's Prometheus endpoint (empty when it has none). */
  metricsAddress: string;
}

export interface Member extends MemberInfo {
  joinedAtMs: number;
  lastSeenMs: number;
}

export interface MembershipConfig {
  minWorkers: number;
  maxWorkers: number;
  /** Form the first ring as soon as this many have joined (`--workers N`). */
  targetWorkers: number;
  heartbeatTimeoutMs: number;
  /** With at least minWorkers but fewer than target, form after this long without a new join. */
  formGraceMs: number;
}

export interface MembershipState {
  readonly config: MembershipConfig;
  readonly phase: JobPhase;
  readonly generation: number;
  /** The ring, in rank order. */
  readonly members: readonly Member[];
  /** Joined but not yet in the ring. */
  readonly candidates: readonly Member[];
  readonly lastJoinMs: number;
}

export type MembershipEvent =
  | { type: 'joined'; workerId: string }
  | { type: 'rejoined'; workerId: string }
  | { type: 'ring-formed'; generation: number; ring: string[]; reason: string }
  | { type: 'lost'; workerId: string; reason: string }
  | { type: 'left'; workerId: string }
  | { type: 'rejected'; workerId: string; reason: string }
  | { type: 'stalled'; generation: number; alive: number; minWorkers: number }
  | { type: 'finished' };

export interface Transition {
  state: MembershipState;
  events: MembershipEvent[];
}

/**
 * `initialGeneration` lets a restarted coordinator continue above every generation its predecessor
 * handed out (the coordinator passes the wall clock in ms), so workers never see one go backwards.
 */
export function createMembership(config: MembershipConfig, initialGeneration = 0): MembershipState {
  if (config.minWorkers < 1 || config.maxWorkers < config.minWorkers) {
    throw new RangeError(
      `membership: need 1 <= minWorkers <= maxWorkers, got ${config.minWorkers}..${config.maxWorkers}`,
    );
  }
  if (config.targetWorkers < config.minWorkers || config.targetWorkers > config.maxWorkers) {
    throw new RangeError(
      `membership: targetWorkers ${config.targetWorkers} must lie in ${config.minWorkers}..${config.maxWorkers}`,
    );
  }
  return Object.freeze({
    config,
    phase: 'forming',
    generation: initialGeneration,
    members: [],
    candidates: [],
    lastJoinMs: 0,
  });
}

/** A worker announces itself. Re-joining with a known id replaces the old entry (a restarted process). */
export function onJoin(state: MembershipState, info: MemberInfo, nowMs: number): Transition {
  if (state.phase === 'finished') {
    return { state, events: [{ type: 'rejected', workerId: info.workerId, reason: 'the job has finished' }] };
  }
  const known = isMember(state, info.workerId) || state.candidates.some((c) => c.workerId === info.workerId);
  const member: Member = { ...info, joinedAtMs: nowMs, lastSeenMs: nowMs };
  let next: MembershipState = state;
  const events: MembershipEvent[] = [];
  if (known) {
    // A restarted worker with the same id: whatever it was doing is gone.
    const removed = removeMember(state, info.workerId, 'rejoined after a restart', 'lost');
    next = removed.state;
    events.push(...removed.events, { type: 'rejoined', workerId: info.workerId });
  } else {
    events.push({ type: 'joined', workerId: info.workerId });
  }
  next = { ...next, candidates: [...next.candidates, member], lastJoinMs: nowMs };
  const formed = maybeForm(next, nowMs);
  return { state: Object.freeze(formed.state), events: [...events, ...formed.events] };
}

export function onHeartbeat(state: MembershipState, workerId: string, nowMs: number): MembershipState {
  const touch = (m: Member) => (m.workerId === workerId ? { ...m, lastSeenMs: nowMs } : m);
  return Object.freeze({
    ...state,
    members: state.members.map(touch),
    candidates: state.candidates.map(touch),
  });
}

/** Periodic check: heartbeat timeouts, and forming or admitting when due. */
export function onTick(state: MembershipState, nowMs: number): Transition {
  let next = state;
  const events: MembershipEvent[] = [];
  const deadline = nowMs - state.config.heartbeatTimeoutMs;
  for (const m of [...state.members, ...state.candidates]) {
    if (m.lastSeenMs < deadline) {
      const r = removeMember(
        next,
        m.workerId,
        `no heartbeat for ${state.config.heartbeatTimeoutMs} ms`,
        'lost',
      );
      next = r.state;
      events.push(...r.events);
    }
  }
  const formed = maybeForm(next, nowMs);
  return { state: Object.freeze(formed.state), events: [...events, ...formed.events] };
}

/** A peer (or the worker itself) reported that `workerId` failed: treat it as lost at once. */
export function onFailure(
  state: MembershipState,
  workerId: string,
  reason: string,
  nowMs: number,
): Transition {
  const r = removeMember(state, workerId, reason, 'lost');
  const formed = maybeForm(r.state, nowMs);
  return { state: Object.freeze(formed.state), events: [...r.events, ...formed.events] };
}

export function onLeave(state: MembershipState, workerId: string, nowMs: number): Transition {
  const r = removeMember(state, workerId, 'left', 'left');
  const formed = maybeForm(r.state, nowMs);
  return { state: Object.freeze(formed.state), events: [...r.events, ...formed.events] };
}

export function onFinish(state: MembershipState): Transition {
  if (state.phase === 'finished') return { state, events: [] };
  return { state: Object.freeze({ ...state, phase: 'finished' }), events: [{ type: 'finished' }] };
}

export function isMember(state: MembershipState, workerId: string): boolean {
  return state.members.some((m) => m.workerId === workerId);
}

export function rankOf(state: MembershipState, workerId: string): number {
  return state.members.findIndex((m) => m.workerId === workerId);
}

function removeMember(
  state: MembershipState,
  workerId: string,
  reason: string,
  kind: 'lost' | 'left',
): Transition {
  const wasMember = isMember(state, workerId);
  const wasCandidate = state.candidates.some((c) => c.workerId === workerId);
  if (!wasMember && !wasCandidate) return { state, events: [] };
  const gone: MembershipEvent =
    kind === 'lost' ? { type: 'lost', workerId, reason } : { type: 'left', workerId };
  const candidates = state.candidates.filter((c) => c.workerId !== workerId);
  if (!wasMember) {
    return { state: { ...state, candidates }, events: [gone] };
  }
  const members = state.members.filter((m) => m.workerId !== workerId);
  let next: MembershipState = { ...state, members, candidates, generation: state.generation + 1 };
  const events: MembershipEvent[] = [gone];
  if (state.phase === 'running' || state.phase === 'stalled') {
    if (members.length >= state.config.minWorkers) {
      events.push(ringFormed(next, `${kind} ${workerId}`));
      next = { ...next, phase: 'running' };
    } else {
      next = { ...next, phase: 'stalled' };
      events.push({
        type: 'stalled',
        generation: next.generation,
        alive: members.length,
        minWorkers: state.config.minWorkers,
      });
    }
  }
  return { state: next, events };
}

/** Forms the first ring, re-forms a stalled one, or admits candidates into a running one. */
function maybeForm(state: MembershipState, nowMs: number): Transition {
  const { config } = state;
  if (state.candidates.length === 0 || state.phase === 'finished') return { state, events: [] };
  const room = config.maxWorkers - state.members.length;
  if (room <= 0) return { state, events: [] };
  const total = state.members.length + Math.min(room, state.candidates.length);
  if (state.phase === 'forming' || state.phase === 'stalled') {
    const target = state.phase === 'forming' ? config.targetWorkers : config.minWorkers;
    const graceOver = nowMs - state.lastJoinMs >= config.formGraceMs && total >= config.minWorkers;
    if (total < target && !graceOver) return { state, events: [] };
  }
  const admitted = state.candidates.slice(0, room);
  const next: MembershipState = {
    ...state,
    phase: 'running',
    members: [...state.members, ...admitted],
    candidates: state.candidates.slice(room),
    generation: state.generation + 1,
  };
  const reason =
    state.phase === 'running' ? `admitted ${admitted.map((m) => m.workerId).join(', ')}` : 'formed';
  return { state: next, events: [ringFormed(next, reason)] };
}

function ringFormed(state: MembershipState, reason: string): MembershipEvent {
  return {
    type: 'ring-formed',
    generation: state.generation,
    ring: state.members.map((m) => m.workerId),
    reason,
  };
}
