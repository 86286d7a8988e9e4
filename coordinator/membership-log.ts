import type { Logger } from '../shared/logging.js';
import type { MembershipEvent } from './membership/membership.js';

/**
 * Membership events in the log: a lost or refused worker and a ring that cannot form are warnings, and
 * a stall says what would let the job go on (it waits for workers; it never gives up by itself).
 */
export function logMembershipEvent(log: Logger, e: MembershipEvent): void {
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
