import test from 'ava';
import {
  chunkBounds,
  columnCount,
  columnRange,
  neighbours,
  ownedSegment,
  ringStep,
  ringStepCount,
} from '../../../worker/allreduce/schedule.js';

test('chunkBounds puts every element in exactly one range, sizes differing by at most one', (t) => {
  for (const length of [0, 1, 2, 3, 7, 10, 64, 1001]) {
    for (const n of [1, 2, 3, 4, 5, 8]) {
      const ranges = chunkBounds(length, n);
      t.is(ranges.length, n);
      t.is(ranges[0]!.start, 0);
      t.is(ranges.at(-1)!.end, length);
      for (let i = 1; i < n; i++) t.is(ranges[i]!.start, ranges[i - 1]!.end, `contiguous at ${i}`);
      const sizes = ranges.map((r) => r.end - r.start);
      t.true(Math.max(...sizes) - Math.min(...sizes) <= 1, `length ${length} n ${n}: ${sizes}`);
      t.true(sizes.every((s) => s >= 0));
    }
  }
});

test('chunkBounds rejects a non-integer length and a zero count', (t) => {
  t.throws(() => chunkBounds(2.5, 2), { instanceOf: RangeError, message: /length/ });
  t.throws(() => chunkBounds(4, 0), { instanceOf: RangeError, message: /n: expected an integer >= 1/ });
});

/**
 * Replays the schedule on sets of contributions: at the end, every rank must hold every rank's
 * contribution to every segment exactly once.
 */
function simulate(size: number): Set<number>[][] {
  const held = Array.from({ length: size }, (_, rank) =>
    Array.from({ length: size }, () => new Set<number>([rank])),
  );
  for (let step = 0; step < ringStepCount(size); step++) {
    const sends = held.map((segments, rank) => {
      const { sendSegment } = ringStep(rank, size, step);
      return { segment: sendSegment, data: new Set(segments[sendSegment]) };
    });
    for (let rank = 0; rank < size; rank++) {
      const { phase, recvSegment } = ringStep(rank, size, step);
      const incoming = sends[neighbours(rank, size).left]!;
      if (incoming.segment !== recvSegment)
        throw new Error(`step ${step}: rank ${rank} expected ${recvSegment}`);
      const mine = held[rank]![recvSegment]!;
      if (phase === 'reduce-scatter') {
        for (const c of incoming.data) {
          if (mine.has(c)) throw new Error(`step ${step}: rank ${rank} would add contribution ${c} twice`);
          mine.add(c);
        }
      } else {
        held[rank]![recvSegment] = new Set(incoming.data);
      }
    }
  }
  return held;
}

test('ringStep reduce-scatter then all-gather leaves every rank with every contribution for N = 1..7', (t) => {
  for (let size = 1; size <= 7; size++) {
    const held = simulate(size);
    for (const segments of held) for (const s of segments) t.is(s.size, size, `size ${size}`);
  }
});

test('ringStep has each rank own segment rank+1 after reduce-scatter and sends it first in all-gather', (t) => {
  const size = 5;
  for (let rank = 0; rank < size; rank++) {
    t.is(ringStep(rank, size, size - 2).recvSegment, ownedSegment(rank, size));
    t.is(ringStep(rank, size, size - 1).sendSegment, ownedSegment(rank, size));
    t.is(ringStep(rank, size, size - 1).phase, 'all-gather');
  }
  t.throws(() => ringStep(0, 3, 4), { instanceOf: RangeError, message: /step/ });
  t.throws(() => ringStep(3, 3, 0), { instanceOf: RangeError, message: /rank/ });
});

test('columnRange splits a segment into sub-chunks and has none past its end', (t) => {
  const segment = { start: 10, end: 21 };
  t.is(columnCount(11, 4), 3);
  t.deepEqual(columnRange(segment, 4, 0), { start: 10, end: 14 });
  t.deepEqual(columnRange(segment, 4, 2), { start: 18, end: 21 });
  t.is(columnRange(segment, 4, 3), undefined);
  t.is(columnRange({ start: 5, end: 5 }, 4, 0), undefined);
});
