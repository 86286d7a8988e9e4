import { randomUUID } from 'node:crypto';
import { deferred, raceAbort, sleep } from '../shared/abort.js';
import { type Clock, systemClock } from '../shared/clock.js';
import type { Hyperparameters } from '../shared/config/hyperparameters.js';
import { ClusterError } from '../shared/errors.js';
import { type Logger, noopLogger } from '../shared/logging.js';
import { SSD_CLUSTER_VERSION, versionMismatch } from '../shared/version.js';
import { mapFromRows, validationMapOf } from '../worker/train/validation.js';
import * as job from './job/job.js';
import * as ms from './membership/membership.js';
import {
  type AssignmentMsg,
  type AssignmentRequestMsg,
  type DoneReportMsg,
  type EpochDecisionMsg,
  type EpochReportMsg,
  type HeartbeatRequestMsg,
  type HeartbeatResponseMsg,
  type JobSpecMsg,
  type JoinRequestMsg,
  type JoinResponseMsg,
  LEAVE_JOB_FINISHED,
  type LeaveRequestMsg,
  type StepAckMsg,
  type StepReportMsg,
  unpackRows,
} from './protocol.js';
import { type PortProbe, type RefusedMember, RingFailureChecks } from './ring-failure.js';
import type { EarlyStoppingState } from './schedule/early-stopping.js';
import { inspectStall } from './stall.js';
import { type CoordinatorStats, createCoordinatorStats } from './stats.js';

export interface CoordinatorOptions {
  spec: JobSpecMsg;
  hp: Readonly<Hyperparameters>;
  membership: ms.MembershipConfig;
  clusterToken: string;
  heartbeatIntervalMs: number;
  /** Where to start (a resumed checkpoint); a fresh job starts at epoch 0. */
  resumeFrom?: job.Progress;
  /** Early-stopping state and the mAPs of the epochs before a resume. */
  earlyStopping?: EarlyStoppingState;
  validationMaps?: readonly number[];
  /** Report a stall when no step has been committed for this long (default 5 minutes). */
  stallTimeoutMs?: number;
  logger?: Logger;
  clock?: Clock;
  /** How a reported ring failure probes members' peer ports (default a TCP connect: ring-failure.ts). */
  probePeerPort?: (address: string, signal: AbortSignal) => Promise<PortProbe>;
}

export interface TrainingSummary {
  images: number;
  seconds: number;
  imagesPerSecond: number;
  workers: number;
  epochs: number;
  validationMap: number | null;
  modelDir: string;
}

interface EpochPayload {
  detections: Float32Array;
  groundTruth: Float32Array;
}

/**
 * The coordinator's stateful edge: holds the membership and job state machines, runs the heartbeat
 * timer, answers the RPCs (long-polling where the protocol waits) and resolves `finished` with the
 * summary. All decisions are made by the pure cores; this class applies their events.
 */
export class Coordinator {
  readonly stats: CoordinatorStats;
  readonly finished: Promise<TrainingSummary>;
  private members: ms.MembershipState;
  private job: job.JobState<EpochPayload>;
  private readonly opts: CoordinatorOptions;
  private readonly log: Logger;
  private readonly clock: Clock;
  private timer: NodeJS.Timeout | undefined;
  private change = deferred<void>();
  private resolveFinished!: (s: TrainingSummary) => void;
  private failFinished!: (err: ClusterError) => void;
  private readonly decisions = new Map<number, EpochDecisionMsg>();
  private closed = false;
  /** Why the job failed (finished rejected with it), for the workers' last assignment. */
  private failure: string | null = null;
  private lastProgressMs: number;
  private stallReported = false;
  private readonly ringChecks: RingFailureChecks;
  /** Aborts the probes in flight at close(). */
  private readonly probing = new AbortController();

  constructor(options: CoordinatorOptions) {
    this.opts = options;
    this.log = options.logger ?? noopLogger;
    this.clock = options.clock ?? systemClock;
    this.ringChecks = new RingFailureChecks(this.log, options.probePeerPort);
    // Generations start at the wall clock in ms: above anything a previous coordinator of this job issued.
    this.members = ms.createMembership(options.membership, Math.floor(this.clock.now()));
    this.job = job.createJob(
      options.hp.epochs,
      options.resumeFrom,
      options.earlyStopping,
      options.validationMaps,
    );
    this.stats = createCoordinatorStats(this.clock);
    this.lastProgressMs = this.clock.monotonic();
    this.finished = new Promise((resolve, reject) => {
      this.resolveFinished = resolve;
      this.failFinished = reject;
    });
    this.finished.catch(() => {}); // a failed job is the awaiting caller's to report, not unhandled
    // Resumed from a checkpoint of a job that had already finished: nothing left to train.
    if (this.job.phase === 'finished') this.onFinished();
  }

  /** Starts the membership timer (heartbeat timeouts, forming after the grace period). */
  start(tickMs = Math.max(50, Math.floor(this.opts.heartbeatIntervalMs / 2))): void {
    this.timer ??= setInterval(() => {
      this.applyMembership(ms.onTick(this.members, this.clock.monotonic()));
      this.checkStall();
    }, tickMs);
    this.timer.unref();
  }

  get generation(): number {
    return this.members.generation;
  }

  get membership(): ms.MembershipState {
    return this.members;
  }

  get jobState(): job.JobState<EpochPayload> {
    return this.job;
  }

  join(req: JoinRequestMsg, seenFrom: string): JoinResponseMsg {
    if (req.clusterToken !== this.opts.clusterToken) {
      throw new ClusterError('CONFIG', 'join refused: the cluster token does not match (--cluster-token)');
    }
    const host = req.hostname || seenFrom;
    const mismatch = versionMismatch({
      worker: req.workerId ? `${req.workerId} on ${host}` : `on ${host}`,
      workerVersion: req.version,
      coordinatorVersion: SSD_CLUSTER_VERSION,
    });
    if (mismatch !== null) throw new ClusterError('CONFIG', `join refused: ${mismatch}`);
    const workerId = req.workerId || `w-${randomUUID().slice(0, 8)}`;
    const peerAddress = withHost(req.peerAddress, seenFrom);
    const metricsAddress = req.metricsAddress ? withHost(req.metricsAddress, seenFrom) : '';
    const info = { workerId, peerAddress, metricsAddress };
    this.applyMembership(ms.onJoin(this.members, info, this.clock.monotonic()));
    if (
      !this.members.members.some((m) => m.workerId === workerId) &&
      !this.members.candidates.some((c) => c.workerId === workerId)
    ) {
      throw new ClusterError('CONFIG', `join refused: the job is ${this.members.phase}`);
    }
    this.log.info('worker joined', { workerId, peerAddress, backend: req.backend, host: req.hostname });
    return {
      workerId,
      job: this.opts.spec,
      heartbeatIntervalMs: this.opts.heartbeatIntervalMs,
      generation: this.members.generation,
      coordinatorVersion: SSD_CLUSTER_VERSION,
    };
  }

  heartbeat(req: HeartbeatRequestMsg): HeartbeatResponseMsg {
    this.members = ms.onHeartbeat(this.members, req.workerId, this.clock.monotonic());
    if (req.position) this.stats.onPosition(req.workerId, req.generation, req.position);
    return {
      generation: this.members.generation,
      jobPhase: this.job.phase === 'finished' ? 'finished' : this.members.phase,
    };
  }

  /** Long-polls until `workerId` is in a ring newer than it knows and every member has asked. */
  async getAssignment(req: AssignmentRequestMsg, signal: AbortSignal): Promise<AssignmentMsg> {
    this.checkKnown(req.workerId, 'GetAssignment');
    if (req.ringFailure) this.onRingFailure(req.workerId, req.knownGeneration, req.ringFailure);
    for (;;) {
      if (this.job.phase === 'finished' || this.closed || this.failure)
        return finishedAssignment(this.members.generation, this.failure);
      const rank = ms.rankOf(this.members, req.workerId);
      if (rank >= 0 && this.members.generation > req.knownGeneration) {
        if (!this.job.start)
          this.applyJob(job.onAssignmentRequest(this.job, req.workerId, req.completed ?? null));
        if (this.job.start && this.job.generation === this.members.generation) {
          return {
            generation: this.members.generation,
            rank,
            worldSize: this.members.members.length,
            ring: this.members.members.map((m) => m.peerAddress),
            start: this.job.start,
            finished: false,
            stateSourceRank: this.stateSourceRank,
            // A worker learns it writes from the last epoch barrier; one that inherits the role after
            // that barrier (the writer was lost) learns it here, or nobody would write.
            writeModel: this.job.phase === 'writing' && this.job.writer === req.workerId,
          };
        }
      }
      await this.waitForChange(signal);
    }
  }

  reportStep(req: StepReportMsg): StepAckMsg {
    this.checkGeneration(req.workerId, req.generation, 'ReportStep');
    if (!req.progress) throw new ClusterError('PROTOCOL', 'ReportStep: progress is required');
    this.stats.onStep(req);
    if (req.checkpointWrittenMs)
      this.stats.lastCheckpointMs = Math.max(this.stats.lastCheckpointMs ?? 0, req.checkpointWrittenMs);
    this.applyJob(job.onStepReport(this.job, req.workerId, req.progress));
    return { generation: this.members.generation, stop: this.job.phase === 'finished' };
  }

  /** The epoch barrier: returns once every member of the generation has reported this epoch. */
  async reportEpoch(req: EpochReportMsg, signal: AbortSignal): Promise<EpochDecisionMsg> {
    this.checkGeneration(req.workerId, req.generation, 'ReportEpoch');
    if (!req.progress) throw new ClusterError('PROTOCOL', 'ReportEpoch: progress is required');
    const payload = { detections: unpackRows(req.detections), groundTruth: unpackRows(req.groundTruth) };
    this.applyJob(
      job.onEpochReport(this.job, req.workerId, req.epoch, payload, req.progress, this.opts.hp, (p) =>
        this.computeMap(p),
      ),
    );
    for (;;) {
      const decided = this.decisions.get(req.epoch);
      // A decision of an earlier generation does not count: that ring re-validates after a failure.
      if (decided && decided.generation === req.generation) return decided;
      if (this.closed) throw new ClusterError('ABORTED', 'the coordinator is shutting down');
      this.checkGeneration(req.workerId, req.generation, 'ReportEpoch');
      await this.waitForChange(signal);
    }
  }

  /**
   * The writer's report: the model is written (the job is finished), or writing it failed, which fails
   * the job (`finished` rejects) rather than leave it waiting for a writer that has exited.
   */
  reportDone(req: DoneReportMsg): void {
    if (!req.error) {
      this.applyJob(job.onDone(this.job, req.workerId));
      return;
    }
    if (this.job.phase !== 'writing' || this.job.writer !== req.workerId) return;
    this.log.error('the model could not be written', { workerId: req.workerId, modelDir: req.modelDir });
    this.failure = `worker ${req.workerId} could not write the model to ${req.modelDir}: ${req.error}`;
    this.failFinished(new ClusterError('STORAGE', this.failure));
    this.notify(); // the other workers' long-polls answer 'finished', with the failure
  }

  leave(req: LeaveRequestMsg): void {
    const fields = { workerId: req.workerId, reason: req.reason };
    if (req.reason === LEAVE_JOB_FINISHED) this.log.info('worker left', fields);
    else this.log.warn('worker left', fields);
    this.applyMembership(ms.onLeave(this.members, req.workerId, this.clock.monotonic()));
  }

  /**
   * A member says the ring of `generation` failed: if it is still the current one, members whose peer port
   * refuses connections are dropped now rather than at their heartbeat timeout (ring-failure.ts).
   */
  private onRingFailure(reporter: string, generation: number, reason: string): void {
    if (generation !== this.members.generation) return;
    const members = this.members.members;
    void this.ringChecks
      .check({ generation, members, reporter, reason, signal: this.probing.signal })
      .then((refused) => this.dropIfSilent(generation, refused));
  }

  /**
   * A refused port alone does not drop a member: a firewall that REJECTs the coordinator, or a peer
   * address that means another host from here, refuses too. The member must also have missed its
   * heartbeat: each refused one is dropped once 1.5 heartbeat intervals have passed since its last
   * heartbeat with no newer one (a killed process sends none; a live one's heartbeat thread does).
   * Drops follow each other (each moves the generation on); any other membership change in between
   * voids the rest, and a second dead member is not left in the next ring for its heartbeat timeout.
   */
  private async dropIfSilent(generation: number, refused: readonly RefusedMember[]) {
    const lastSeen = new Map(refused.map((r) => [r.workerId, this.memberOf(r.workerId)?.lastSeenMs]));
    const due = Math.max(
      0,
      ...[...lastSeen.values()].map((seen) => (seen ?? 0) + 1.5 * this.opts.heartbeatIntervalMs),
    );
    const waitMs = due - this.clock.monotonic();
    if (waitMs > 0) {
      try {
        await sleep(waitMs, this.probing.signal);
      } catch {
        return; // closed
      }
    }
    let current = generation;
    for (const { workerId, why } of refused) {
      if (this.closed || this.members.generation !== current) return;
      const member = this.memberOf(workerId);
      if (member === undefined) continue;
      if (member.lastSeenMs !== lastSeen.get(workerId)) {
        this.log.warn(
          'a ring member refused the probe but still sends heartbeats: kept (a firewall between coordinator and worker?)',
          { workerId, generation },
        );
        continue;
      }
      this.applyMembership(ms.onFailure(this.members, workerId, why, this.clock.monotonic()));
      current = this.members.generation;
    }
  }

  private memberOf(workerId: string): ms.Member | undefined {
    return this.members.members.find((m) => m.workerId === workerId);
  }

  /** Resolves once every member has left (workers leave when they see the job finished). */
  async whenAllLeft(signal: AbortSignal): Promise<void> {
    while (this.members.members.length > 0 || this.members.candidates.length > 0)
      await this.waitForChange(signal);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.probing.abort();
    this.notify();
  }

  private get stateSourceRank(): number {
    const requests = this.job.assignmentRequests;
    return this.members.members.some((m) => requests.get(m.workerId) == null)
      ? this.members.members.findIndex((m) => requests.get(m.workerId) != null)
      : -1;
  }

  /** Logs and counts a stall once per episode (no commit for stallTimeoutMs while running). */
  private checkStall(): void {
    if (this.members.phase !== 'running' || this.job.phase !== 'running' || this.stallReported) return;
    const report = inspectStall({
      nowMs: this.clock.monotonic(),
      lastProgressMs: this.lastProgressMs,
      stallTimeoutMs: this.opts.stallTimeoutMs ?? 300_000,
      ring: this.members.members.map((m) => m.workerId),
      positions: this.stats.positions,
    });
    if (!report) return;
    this.stallReported = true;
    this.stats.stalls += 1;
    this.log.warn('stall: no step committed', {
      waitedMs: Math.round(report.waitedMs),
      generation: this.members.generation,
      behind: report.behind,
    });
  }

  private progressed(): void {
    this.lastProgressMs = this.clock.monotonic();
    this.stallReported = false;
  }

  /** A worker this coordinator never saw (it was restarted) must join again. */
  private checkKnown(workerId: string, rpc: string): void {
    const known =
      this.members.members.some((m) => m.workerId === workerId) ||
      this.members.candidates.some((c) => c.workerId === workerId);
    if (!known && this.job.phase !== 'finished') {
      throw new ClusterError('NOT_FOUND', `${rpc}: unknown worker ${workerId}; join again`);
    }
  }

  private checkGeneration(workerId: string, generation: number, rpc: string): void {
    if (generation !== this.members.generation || ms.rankOf(this.members, workerId) < 0) {
      throw new ClusterError(
        'STALE_GENERATION',
        `${rpc} from ${workerId} carries generation ${generation}; the ring is at generation ${this.members.generation}`,
      );
    }
  }

  private computeMap(payloads: EpochPayload[]): number {
    if (!this.opts.spec.validationUrl) return Number.NaN;
    // The rule one process applies (validationMapOf): no class with ground truth gives no mAP (NaN
    // here, null to the workers and in the summary), not 0.
    const map = validationMapOf(mapFromRows(payloads, { iouThreshold: this.opts.hp.overlap_threshold }));
    if (map === null) this.log.warn('validation has no ground truth; no mAP this epoch');
    return map ?? Number.NaN;
  }

  private applyMembership(t: ms.Transition): void {
    this.members = t.state;
    for (const e of t.events) {
      logMembershipEvent(this.log, e);
      if (e.type === 'ring-formed') {
        this.progressed();
        this.job = job.onNewGeneration(this.job, e.generation, e.ring);
        this.stats.onGeneration(e.generation, e.ring.length);
      }
      if (e.type === 'lost') this.stats.onRestart();
    }
    if (t.events.length) this.notify();
  }

  private applyJob(t: job.JobTransition<EpochPayload>): void {
    this.job = t.state;
    for (const e of t.events) {
      if (e.type === 'committed' || e.type === 'epoch-decided') this.progressed();
      if (e.type === 'assignment-ready') this.stats.onStart(e.start);
      if (e.type === 'committed') {
        this.stats.onCommit(e.progress);
        this.log.debug('step committed', { ...e.progress, generation: this.members.generation });
      }
      if (e.type === 'epoch-decided') this.onEpochDecided(e);
      if (e.type === 'finished') this.onFinished();
    }
    if (t.events.length) this.notify();
  }

  private onEpochDecided(e: Extract<job.JobEvent, { type: 'epoch-decided' }>): void {
    const writerRank = e.writer ? ms.rankOf(this.members, e.writer) : 0;
    this.decisions.set(e.epoch, {
      generation: this.members.generation,
      epoch: e.epoch,
      validationMap: e.validationMap,
      stop: e.stop,
      writerRank: Math.max(0, writerRank),
    });
    this.stats.onEpoch(e.epoch, e.validationMap);
    this.log.info('epoch done', { epoch: e.epoch, validationMap: e.validationMap, stop: e.stop });
  }

  private onFinished(): void {
    this.members = ms.onFinish(this.members).state;
    const maps = this.job.validationMaps;
    const last = maps.at(-1);
    const seconds = this.stats.trainingSeconds();
    this.resolveFinished({
      images: this.stats.imagesTotal,
      seconds,
      imagesPerSecond: seconds > 0 ? this.stats.imagesTotal / seconds : 0,
      workers: this.members.members.length,
      epochs: this.job.committed.epoch,
      validationMap: last === undefined || Number.isNaN(last) ? null : last,
      modelDir: this.opts.spec.modelDir,
    });
  }

  private notify(): void {
    const previous = this.change;
    this.change = deferred<void>();
    previous.resolve();
  }

  private waitForChange(signal: AbortSignal): Promise<void> {
    return raceAbort(this.change.promise, signal);
  }
}

function finishedAssignment(generation: number, failure: string | null): AssignmentMsg {
  const done = { rank: 0, worldSize: 0, ring: [], start: null, finished: true, stateSourceRank: -1 };
  return { generation, ...done, jobFailure: failure ?? '' };
}

/** `:port` or `0.0.0.0:port` becomes `<host the coordinator saw>:port`. */
export function withHost(address: string, seenFrom: string): string {
  const i = address.lastIndexOf(':');
  const host = i < 0 ? '' : address.slice(0, i);
  const port = i < 0 ? address : address.slice(i + 1);
  if (host && host !== '0.0.0.0' && host !== '[::]' && host !== '::') return address;
  return `${hostOf(seenFrom)}:${port}`;
}

function hostOf(peer: string): string {
  const stripped = peer.replace(/^ipv[46]:/, '');
  const i = stripped.lastIndexOf(':');
  return i < 0 ? stripped : stripped.slice(0, i);
}

/**
 * Membership events in the log: a lost or refused worker and a ring that cannot form are warnings, and
 * a stall says what would let the job go on (it waits for workers; it never gives up by itself).
 */
export function logMembershipEvent(log: Logger, e: ms.MembershipEvent): void {
  const fields = { ...e, type: undefined };
  if (e.type === 'stalled') {
    log.warn(
      `membership stalled: ${e.alive} worker(s) alive, --min-workers is ${e.minWorkers}; ` +
        'waiting for workers to join: start more, or restart the coordinator with --resume and a lower ' +
        '--min-workers (with --checkpoint-dir)',
      fields,
    );
  } else if (e.type === 'lost' || e.type === 'rejected') {
    log.warn(`membership ${e.type}`, fields);
  } else {
    log.info(`membership ${e.type}`, fields);
  }
}
