/**
 * Step 4 of the ring-failure protocol (ring-failure.ts): a member whose peer port refused the probe is
 * dropped only once a missed heartbeat confirms it. The coordinator supplies its current membership and
 * a way to apply a failure transition; this class decides when.
 */
import { sleep } from '../shared/abort.js';
import type { Clock } from '../shared/clock.js';
import type { Logger } from '../shared/logging.js';
import type * as ms from './membership/membership.js';
import { type PortProbe, type RefusedMember, RingFailureChecks } from './ring-failure.js';

export interface RingFailureDropOptions {
  log: Logger;
  clock: Clock;
  heartbeatIntervalMs: number;
  /** How a reported ring failure probes members' peer ports (default a TCP connect: ring-failure.ts). */
  probePeerPort?: (address: string, signal: AbortSignal) => Promise<PortProbe>;
  /** The membership as it is now (it moves on while the probes and the wait run). */
  membership: () => ms.MembershipState;
  /** Applies membership's failure transition for `workerId` (onFailure), with its events. */
  fail: (workerId: string, why: string) => void;
  /** Aborted at the coordinator's close(): ends the probes and waits in flight and voids their drops. */
  signal: AbortSignal;
}

export class RingFailureDrop {
  private readonly checks: RingFailureChecks;

  constructor(private readonly o: RingFailureDropOptions) {
    this.checks = new RingFailureChecks(o.log, o.probePeerPort);
  }

  /**
   * A member says the ring of `generation` failed: if it is still the current one, members whose peer port
   * refuses connections are dropped now rather than at their heartbeat timeout (ring-failure.ts).
   */
  onRingFailure(reporter: string, generation: number, reason: string): void {
    const state = this.o.membership();
    if (generation !== state.generation) return;
    const members = state.members;
    void this.checks
      .check({ generation, members, reporter, reason, signal: this.o.signal })
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
      ...[...lastSeen.values()].map((seen) => (seen ?? 0) + 1.5 * this.o.heartbeatIntervalMs),
    );
    const waitMs = due - this.o.clock.monotonic();
    if (waitMs > 0) {
      try {
        await sleep(waitMs, this.o.signal);
      } catch {
        return; // closed
      }
    }
    let current = generation;
    for (const { workerId, why } of refused) {
      if (this.o.signal.aborted || this.o.membership().generation !== current) return;
      const member = this.memberOf(workerId);
      if (member === undefined) continue;
      if (member.lastSeenMs !== lastSeen.get(workerId)) {
        this.o.log.warn(
          'a ring member refused the probe but still sends heartbeats: kept (a firewall between coordinator and worker?)',
          { workerId, generation },
        );
        continue;
      }
      this.o.fail(workerId, why);
      current = this.o.membership().generation;
    }
  }

  private memberOf(workerId: string): ms.Member | undefined {
    return this.o.membership().members.find((m) => m.workerId === workerId);
  }
}
