import test from 'ava';
import { inspectStall, type SeenPosition } from '../../coordinator/stall.js';

const seen = (step: number, phase: string, atMs = 900): SeenPosition => ({
  generation: 2,
  position: { epoch: 0, step, phase, bucket: phase === 'allreduce' ? 3 : 0 },
  atMs,
});

test('inspectStall says nothing before the stall timeout', (t) => {
  const positions = new Map([['a', seen(4, 'compute')]]);
  t.is(
    inspectStall({ nowMs: 1000, lastProgressMs: 500, stallTimeoutMs: 1000, ring: ['a'], positions }),
    null,
  );
});

test('inspectStall names the least advanced rank that is not waiting in the all-reduce', (t) => {
  const positions = new Map([
    ['a', seen(7, 'allreduce')],
    ['b', seen(6, 'data', 400)],
    ['c', seen(7, 'allreduce')],
  ]);
  const report = inspectStall({
    nowMs: 5000,
    lastProgressMs: 1000,
    stallTimeoutMs: 2000,
    ring: ['a', 'b', 'c'],
    positions,
  });
  t.is(report?.waitedMs, 4000);
  t.deepEqual(report?.behind, [
    { workerId: 'b', rank: 1, generation: 2, epoch: 0, step: 6, phase: 'data', bucket: 0, silentMs: 4600 },
  ]);
});

test('inspectStall names every rank at the lowest step when all of them wait in the all-reduce, and a silent one', (t) => {
  const positions = new Map([
    ['a', seen(3, 'allreduce')],
    ['b', seen(3, 'allreduce')],
  ]);
  const report = inspectStall({
    nowMs: 5000,
    lastProgressMs: 0,
    stallTimeoutMs: 1000,
    ring: ['a', 'b', 'c'],
    positions,
  });
  t.deepEqual(
    report?.behind.map((r) => [r.workerId, r.phase]),
    [['c', 'unknown']],
  );
});
