/** Time as the pure core sees it: injected, so tests can move it by hand. */
export interface Clock {
  /** Milliseconds since the epoch (wall clock), for timestamps. */
  now(): number;
  /** Monotonic milliseconds, for durations and timeouts. */
  monotonic(): number;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
};

export class FakeClock implements Clock {
  private ms: number;
  constructor(startMs = 0) {
    this.ms = startMs;
  }
  now(): number {
    return this.ms;
  }
  monotonic(): number {
    return this.ms;
  }
  advance(ms: number): void {
    this.ms += ms;
  }
}
