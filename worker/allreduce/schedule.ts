/**
 * The pure ring schedule (no I/O): how a buffer is cut into segments and sub-chunks, and which
 * segment each rank sends right and receives from the left at every step. See the protocol
 * comment in ring.ts.
 */

/** A half-open element range [start, end). */
export interface Range {
  start: number;
  end: number;
}

export type RingPhase = 'reduce-scatter' | 'all-gather';

export interface RingStep {
  phase: RingPhase;
  /** Segment this rank sends to its right neighbour at this step. */
  sendSegment: number;
  /** Segment this rank receives from its left neighbour at this step. */
  recvSegment: number;
}

function assertCount(name: string, value: number, min: number): void {
  if (!Number.isSafeInteger(value) || value < min)
    throw new RangeError(`${name}: expected an integer >= ${min}, got ${value}`);
}

/**
 * Splits `length` elements into `n` contiguous ranges whose sizes differ by at most one (the first
 * `length % n` get the extra element). Every element is in exactly one range; ranges may be empty
 * when length < n.
 */
export function chunkBounds(length: number, n: number): Range[] {
  assertCount('length', length, 0);
  assertCount('n', n, 1);
  const base = Math.floor(length / n);
  const extra = length % n;
  const out: Range[] = [];
  let start = 0;
  for (let i = 0; i < n; i++) {
    const end = start + base + (i < extra ? 1 : 0);
    out.push({ start, end });
    start = end;
  }
  return out;
}

/** Number of steps of one ring all-reduce over `size` ranks: N-1 reduce-scatter + N-1 all-gather. */
export function ringStepCount(size: number): number {
  assertCount('size', size, 1);
  return 2 * (size - 1);
}

const mod = (a: number, n: number) => ((a % n) + n) % n;

/**
 * What rank `rank` of `size` does at `step` (0-based):
 * - reduce-scatter, t = step in [0, N-1): send segment (rank - t), receive (rank - t - 1) and add it;
 *   after the last one the rank owns the complete sum of segment (rank + 1).
 * - all-gather, t = step - (N-1) in [0, N-1): send segment (rank + 1 - t), receive (rank - t) and
 *   copy it.
 * The segment sent at step s+1 is always the one received at step s.
 */
export function ringStep(rank: number, size: number, step: number): RingStep {
  assertCount('size', size, 1);
  if (!Number.isSafeInteger(rank) || rank < 0 || rank >= size)
    throw new RangeError(`rank: expected an integer in [0, ${size}), got ${rank}`);
  if (!Number.isSafeInteger(step) || step < 0 || step >= ringStepCount(size))
    throw new RangeError(`step: expected an integer in [0, ${ringStepCount(size)}), got ${step}`);
  if (step < size - 1) {
    return {
      phase: 'reduce-scatter',
      sendSegment: mod(rank - step, size),
      recvSegment: mod(rank - step - 1, size),
    };
  }
  const t = step - (size - 1);
  return { phase: 'all-gather', sendSegment: mod(rank + 1 - t, size), recvSegment: mod(rank - t, size) };
}

/** The segment whose complete sum `rank` holds after reduce-scatter. */
export function ownedSegment(rank: number, size: number): number {
  return mod(rank + 1, size);
}

/** Number of sub-chunks ("columns") of at most `chunkElements` elements in a segment of `length`. */
export function columnCount(length: number, chunkElements: number): number {
  assertCount('chunkElements', chunkElements, 1);
  return Math.ceil(length / chunkElements);
}

/**
 * Sub-chunk `column` of `segment`, or undefined when the segment is too short to have it
 * (segments differ by one element, so their column counts can differ by one).
 */
export function columnRange(segment: Range, chunkElements: number, column: number): Range | undefined {
  const start = segment.start + column * chunkElements;
  if (start >= segment.end) return undefined;
  return { start, end: Math.min(segment.end, start + chunkElements) };
}

/** Left and right neighbours of `rank` on the ring. */
export function neighbours(rank: number, size: number): { left: number; right: number } {
  return { left: mod(rank - 1, size), right: mod(rank + 1, size) };
}
