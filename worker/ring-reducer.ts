import { allReduceBuckets, type BucketPlan, planBuckets } from './allreduce/buckets.js';
import type { GradientCompression } from './allreduce/ring.js';
import type { RingTransport } from './allreduce/transport.js';
import type { GradientReducer } from './train/step.js';

export interface RingPosition {
  generation: number;
  rank: number;
  size: number;
}

export interface AllReduceTiming {
  seconds: number;
  /** Size of the buffer summed (after compression): S in bus bandwidth = S / t x 2(N-1)/N. */
  bufferBytes: number;
  /** Bytes this rank sent in the call. */
  bytesSent: number;
}

/**
 * The cluster's GradientReducer: sums the packed step buffer across the ring, bucket by bucket.
 * The ring (generation, rank, size) changes with membership; `round` numbers the all-reduce calls
 * within a generation so a late chunk of an earlier step can never be summed into a later one.
 */
export class RingReducer implements GradientReducer {
  private ring: RingPosition | undefined;
  private round = 0;
  private plan: BucketPlan | undefined;
  last: AllReduceTiming = { seconds: 0, bufferBytes: 0, bytesSent: 0 };

  constructor(
    private readonly transport: RingTransport,
    private readonly options: {
      compression: GradientCompression;
      bucketBytes?: number;
      /** Told when an all-reduce starts and ends (heartbeat positions, stall reports). */
      onPhase?: (phase: 'allreduce' | 'update') => void;
    },
  ) {}

  /** Enters a new ring; rounds restart at 0 (every member does the same). */
  setRing(ring: RingPosition): void {
    this.ring = ring;
    this.round = 0;
  }

  async reduce(buffer: Float32Array, signal: AbortSignal): Promise<void> {
    const ring = this.ring;
    if (!ring) throw new Error('RingReducer: no ring yet (setRing first)');
    if (this.plan?.totalElements !== buffer.length) {
      this.plan = planBuckets(buffer.length, { bucketBytes: this.options.bucketBytes });
    }
    const started = performance.now();
    this.options.onPhase?.('allreduce');
    const stats = await allReduceBuckets(buffer, this.plan, {
      rank: ring.rank,
      size: ring.size,
      generation: ring.generation,
      round: this.round++,
      transport: this.transport,
      signal,
      compression: this.options.compression,
    });
    this.options.onPhase?.('update');
    this.last = {
      seconds: (performance.now() - started) / 1000,
      bufferBytes: buffer.length * (this.options.compression === 'fp16' ? 2 : 4),
      bytesSent: stats.bytesSent,
    };
  }
}
