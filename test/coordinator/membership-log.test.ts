import test from 'ava';
import { logMembershipEvent } from '../../coordinator/membership-log.js';
import { createMemoryLogger } from '../../shared/logging.js';

test('a lost worker and a stalled ring are warnings, and the stall says what lets the job go on', (t) => {
  const log = createMemoryLogger();
  logMembershipEvent(log, { type: 'joined', workerId: 'w-1' });
  logMembershipEvent(log, { type: 'lost', workerId: 'w-2', reason: 'no heartbeat for 3000 ms' });
  logMembershipEvent(log, { type: 'stalled', generation: 3, alive: 1, minWorkers: 2 });
  t.deepEqual(
    log.entries.map((e) => [e.level, e.msg]),
    [
      ['info', 'membership joined'],
      ['warn', 'membership lost'],
      [
        'warn',
        'membership stalled: 1 worker(s) alive, --min-workers is 2; waiting for workers to join: start more, ' +
          'or restart the coordinator with --resume and a lower --min-workers (with --checkpoint-dir)',
      ],
    ],
  );
  t.like(log.entries[1]!.fields, { workerId: 'w-2', reason: 'no heartbeat for 3000 ms' });
});
