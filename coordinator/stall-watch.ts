/**
 * The coordinator's edge of stall.ts: remembers when training last progressed and logs and counts a
 * stall once per episode.
 */
import type { Clock } from '../shared/clock.js';
import type { Logger } from '../shared/logging.js';
import type { JobState } from './job/job.js';
import type { MembershipState } from './membership/membership.js';
import { inspectStall } from './stall.js';
import type { CoordinatorStats } from './stats.js';

export class StallWatch {
  private lastProgressMs: number;
  private stallReported = false;

  constructor(
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly stats: CoordinatorStats,
    private readonly stallTimeoutMs: number,
  ) {
    this.lastProgressMs = clock.monotonic();
  }

  /** Logs and counts a stall once per episode (no commit for stallTimeoutMs while running). */
  check(members: MembershipState, jobPhase: JobState<unknown>['phase']): void {
    if (members.phase !== 'running' || jobPhase !== 'running' || this.stallReported) return;
    const report = inspectStall({
      nowMs: this.clock.monotonic(),
      lastProgressMs: this.lastProgressMs,
      stallTimeoutMs: this.stallTimeoutMs,
      ring: members.members.map((m) => m.workerId),
      positions: this.stats.positions,
    });
    if (!report) return;
    this.stallReported = true;
    this.stats.stalls += 1;
    this.log.warn('stall: no step committed', {
      waitedMs: Math.round(report.waitedMs),
      generation: members.generation,
      behind: report.behind,
    });
  }

  progressed(): void {
    this.lastProgressMs = this.clock.monotonic();
    this.stallReported = false;
  }
}
