/**
 * Fast detection of a worker that died, from its neighbours' report (the README's "or by its ring
 * neighbours' streams failing").
 *
 * Protocol:
 *  1. A worker whose all-reduce fails with PEER_LOST (a stream to a neighbour broke) asks for its next
 *     assignment with `ringFailure` set to the reason, for the generation it knew.
 *  2. If that generation is still the current one, the coordinator probes the peer port of every other
 *     member of it, once per generation, with a plain TCP connect.
 *  3. Only a refused connection counts: the port is closed, so the process that held it has likely
 *     exited. A connection that opens, or one that times out (a host down, a partition), proves nothing:
 *     a live but busy worker (a long synchronous step) still accepts TCP connections in its kernel, and a
 *     silent host is left to the heartbeat timeout.
 *  4. A refusal is confirmed by the heartbeat (ring-failure-drop.ts): a firewall that REJECTs the
 *     coordinator, or a peer address that names another host from where the coordinator stands, refuses
 *     too. The member is dropped (membership 'lost') only if no heartbeat came from it for 1.5 heartbeat
 *     intervals (a killed process sends none; a live one's heartbeat thread keeps sending), so within
 *     ~1.5 intervals instead of --heartbeat-timeout, and a member that still heartbeats is kept.
 */
import { setMaxListeners } from 'node:events';
import net from 'node:net';
import type { Logger } from '../shared/logging.js';

export type PortProbe = 'refused' | 'open' | 'unknown';

export const PROBE_TIMEOUT_MS = 2000;

/** "host:port" or "[v6]:port" to its parts; null when it has no port. */
function splitAddress(address: string): { host: string; port: number } | null {
  const colon = address.lastIndexOf(':');
  const port = Number(address.slice(colon + 1));
  if (colon <= 0 || !Number.isInteger(port) || port <= 0 || port > 65_535) return null;
  return { host: address.slice(0, colon).replace(/^\[(.*)\]$/, '$1'), port };
}

/** One TCP connect to `address`: refused, open (closed again at once) or unknown (timeout, other errors). */
export function probePeerPort(
  address: string,
  signal: AbortSignal,
  timeoutMs = PROBE_TIMEOUT_MS,
): Promise<PortProbe> {
  const target = splitAddress(address);
  if (target === null || signal.aborted) return Promise.resolve('unknown');
  return new Promise((resolve) => {
    const socket = net.connect({ ...target, timeout: timeoutMs });
    const done = (result: PortProbe) => {
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      resolve(result);
    };
    const onAbort = () => done('unknown');
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('connect', () => done('open'));
    socket.once('timeout', () => done('unknown'));
    socket.once('error', (err: NodeJS.ErrnoException) =>
      done(err.code === 'ECONNREFUSED' ? 'refused' : 'unknown'),
    );
  });
}

export interface RingMember {
  workerId: string;
  peerAddress: string;
}

/** A member whose peer port refused the probe, and why it may be dropped (step 4 decides). */
export interface RefusedMember {
  workerId: string;
  why: string;
}

/** Step 2-3 of the protocol: at most one round of probes per generation. */
export class RingFailureChecks {
  private readonly probed = new Set<number>();

  constructor(
    private readonly log: Logger,
    private readonly probe: (address: string, signal: AbortSignal) => Promise<PortProbe> = probePeerPort,
  ) {}

  /**
   * Probes the members other than `reporter` and returns those whose port refused, with the reason to
   * drop them; nothing for a generation already probed.
   */
  async check(o: {
    generation: number;
    members: readonly RingMember[];
    reporter: string;
    reason: string;
    signal: AbortSignal;
  }): Promise<RefusedMember[]> {
    if (this.probed.has(o.generation)) return [];
    this.probed.add(o.generation);
    this.log.info('ring failure reported; probing its members', {
      generation: o.generation,
      reporter: o.reporter,
      reason: o.reason,
    });
    const others = o.members.filter((m) => m.workerId !== o.reporter);
    // Each probe in flight listens on the signal: a ring of more than 11 would print Node's
    // MaxListenersExceededWarning ('Possible EventTarget memory leak') on the coordinator's stderr.
    setMaxListeners(0, o.signal);
    const results = await Promise.all(
      others.map((m) => this.probe(m.peerAddress, o.signal).catch(() => 'unknown' as const)),
    );
    return others
      .filter((_, i) => results[i] === 'refused')
      .map((m) => ({
        workerId: m.workerId,
        why: `its peer port ${m.peerAddress} refused a connection after ${o.reporter} reported: ${o.reason}`,
      }));
  }
}
