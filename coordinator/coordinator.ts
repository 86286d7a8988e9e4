import { deferred, raceAbort } from '../shared/abort.js';
import { type Clock, systemClock } from '../shared/clock.js';
import type { Hyperparameters } from '../shared/config/hyperparameters.js';
import { ClusterError } from '../shared/errors.js';
import { type Logger, noopLogger } from '../shared/logging.js';
import { SSD_CLUSTER_VERSION } from '../shared/version.js';
import { finishedAssignment, ringAssignment } from './assignment.js';
import { type EpochPayload, epochDecision, epochValidationMap } from './epoch-results.js';
import * as job from './job/job.js';
import { admitJoin } from './join-admission.js';
import * as ms from './membership/membership.js';
import { logMembershipEvent } from './membership-log.js';
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
import type { PortProbe } from './ring-failure.js';
import { RingFailureDrop } from './ring-failure-drop.js';
import type { EarlyStoppingState } from './schedule/early-stopping.js';
import { StallWatch } from './stall-watch.js';
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
  private readonly stall: StallWatch;
  private readonly ringFailure: RingFailureDrop;
  /** Aborts the probes in flight at close(). */
  private readonly probing = new AbortController();

  constructor(options: CoordinatorOptions) {
    this.opts = options;
    this.log = options.logger ?? noopLogger;
    this.clock = options.clock ?? systemClock;
    // Generations start at the wall clock in ms: above anything a previous coordinator of this job issued.
    this.members = ms.createMembership(options.membership, Math.floor(this.clock.now()));
    this.job = job.createJob(
      options.hp.epochs,
      options.resumeFrom,
      options.earlyStopping,
      options.validationMaps,
    );
    this.stats = createCoordinatorStats(this.clock);
    this.stall = new StallWatch(this.clock, this.log, this.stats, options.stallTimeoutMs ?? 300_000);
    this.ringFailure = new RingFailureDrop({
      log: this.log,
      clock: this.clock,
      heartbeatIntervalMs: options.heartbeatIntervalMs,
      probePeerPort: options.probePeerPort,
      membership: () => this.members,
      fail: (workerId, why) =>
        this.applyMembership(ms.onFailure(this.members, workerId, why, this.clock.monotonic())),
      signal: this.probing.signal,
    });
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
      this.stall.check(this.members, this.job.phase);
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
    const info = admitJoin(req, seenFrom, this.opts.clusterToken);
    const { workerId, peerAddress } = info;
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
    if (req.ringFailure) this.ringFailure.onRingFailure(req.workerId, req.knownGeneration, req.ringFailure);
    for (;;) {
      if (this.job.phase === 'finished' || this.closed || this.failure)
        return finishedAssignment(this.members.generation, this.failure);
      const rank = ms.rankOf(this.members, req.workerId);
      if (rank >= 0 && this.members.generation > req.knownGeneration) {
        if (!this.job.start)
          this.applyJob(job.onAssignmentRequest(this.job, req.workerId, req.completed ?? null));
        const { start } = this.job;
        if (start && this.job.generation === this.members.generation)
          return ringAssignment({
            members: this.members,
            job: this.job,
            start,
            workerId: req.workerId,
            rank,
          });
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
    const validation = {
      validationUrl: this.opts.spec.validationUrl,
      iouThreshold: this.opts.hp.overlap_threshold,
      log: this.log,
    };
    this.applyJob(
      job.onEpochReport(this.job, req.workerId, req.epoch, payload, req.progress, this.opts.hp, (p) =>
        epochValidationMap(p, validation),
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

  private applyMembership(t: ms.Transition): void {
    this.members = t.state;
    for (const e of t.events) {
      logMembershipEvent(this.log, e);
      if (e.type === 'ring-formed') {
        this.stall.progressed();
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
      if (e.type === 'committed' || e.type === 'epoch-decided') this.stall.progressed();
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
    this.decisions.set(e.epoch, epochDecision(e, this.members));
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
