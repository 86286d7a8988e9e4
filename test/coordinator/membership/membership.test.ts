import test from 'ava';
import {
  createMembership,
  type MembershipConfig,
  type MembershipState,
  onFailure,
  onFinish,
  onHeartbeat,
  onJoin,
  onLeave,
  onTick,
  rankOf,
} from '../../../coordinator/membership/membership.js';

const config: MembershipConfig = {
  minWorkers: 2,
  maxWorkers: 4,
  targetWorkers: 3,
  heartbeatTimeoutMs: 5000,
  formGraceMs: 10_000,
};

function join(state: MembershipState, id: string, now: number) {
  return onJoin(state, { workerId: id, peerAddress: `${id}:1`, metricsAddress: '' }, now);
}

function formedRing(config: MembershipConfig, ids: string[]): MembershipState {
  let s = createMembership(config);
  ids.forEach((id, i) => {
    s = join(s, id, i).state;
  });
  return s;
}

test('membership forms the ring once the target number of workers has joined, ranked in join order', (t) => {
  let s = createMembership(config);
  s = join(s, 'a', 0).state;
  s = join(s, 'b', 1).state;
  t.is(s.phase, 'forming');
  t.is(s.generation, 0);
  const r = join(s, 'c', 2);
  t.is(r.state.phase, 'running');
  t.is(r.state.generation, 1);
  t.deepEqual(
    r.state.members.map((m) => m.workerId),
    ['a', 'b', 'c'],
  );
  t.deepEqual(r.events.at(-1), {
    type: 'ring-formed',
    generation: 1,
    ring: ['a', 'b', 'c'],
    reason: 'formed',
  });
  t.is(rankOf(r.state, 'c'), 2);
});

test('membership forms with at least minWorkers after the grace period without new joins', (t) => {
  let s = formedRing(config, ['a', 'b']);
  t.is(onTick(s, 5000).state.phase, 'forming');
  s = onHeartbeat(onHeartbeat(s, 'a', 9000), 'b', 9000);
  const r = onTick(s, 10_001);
  t.is(r.state.phase, 'running');
  t.is(r.state.members.length, 2);
});

test('membership marks a worker lost after the heartbeat timeout and re-ranks the survivors in order', (t) => {
  let s = formedRing(config, ['a', 'b', 'c']);
  s = onHeartbeat(onHeartbeat(s, 'a', 4000), 'c', 4000);
  const r = onTick(s, 6000);
  t.deepEqual(r.events[0], { type: 'lost', workerId: 'b', reason: 'no heartbeat for 5000 ms' });
  t.is(r.state.generation, 2);
  t.deepEqual(
    r.state.members.map((m) => m.workerId),
    ['a', 'c'],
  );
  t.is(rankOf(r.state, 'c'), 1);
  t.is(r.state.phase, 'running');
});

test('membership stalls below minWorkers and resumes when a worker joins again', (t) => {
  const s = formedRing({ ...config, targetWorkers: 2 }, ['a', 'b']);
  const lost = onFailure(s, 'b', 'peer call failed', 100);
  t.is(lost.state.phase, 'stalled');
  t.true(lost.events.some((e) => e.type === 'stalled'));
  const back = join(lost.state, 'd', 200);
  t.is(back.state.phase, 'running');
  t.deepEqual(
    back.state.members.map((m) => m.workerId),
    ['a', 'd'],
  );
  t.true(back.state.generation > lost.state.generation);
});

test('membership admits a new worker into a running ring up to maxWorkers and queues the rest', (t) => {
  let s = formedRing({ ...config, maxWorkers: 4 }, ['a', 'b', 'c']);
  const r = join(s, 'd', 10);
  t.is(r.state.members.length, 4);
  t.is(r.state.generation, 2);
  t.true(r.events.some((e) => e.type === 'ring-formed' && e.reason === 'admitted d'));
  s = join(r.state, 'e', 11).state;
  t.is(s.members.length, 4);
  t.deepEqual(
    s.candidates.map((c) => c.workerId),
    ['e'],
  );
  t.is(s.generation, 2);
});

test('membership treats a rejoin with a known id as a restart: the old entry goes, the generation moves on', (t) => {
  const s = formedRing(config, ['a', 'b', 'c']);
  const r = join(s, 'b', 50);
  t.true(r.events.some((e) => e.type === 'rejoined'));
  t.deepEqual(
    r.state.members.map((m) => m.workerId),
    ['a', 'c', 'b'],
  );
  t.true(r.state.generation >= 3);
});

test('membership reports a leave as left, not lost, and rejects joins after the job finished', (t) => {
  const s = formedRing(config, ['a', 'b', 'c']);
  const left = onLeave(s, 'a', 10);
  t.deepEqual(left.events[0], { type: 'left', workerId: 'a' });
  const done = onFinish(left.state);
  t.is(done.state.phase, 'finished');
  const r = join(done.state, 'z', 20);
  t.is(r.events[0]?.type, 'rejected');
  t.is(r.state.members.length, 2);
});

test('createMembership rejects inconsistent worker bounds', (t) => {
  t.throws(() => createMembership({ ...config, minWorkers: 0 }), { instanceOf: RangeError });
  t.throws(() => createMembership({ ...config, targetWorkers: 9 }), { instanceOf: RangeError });
});
