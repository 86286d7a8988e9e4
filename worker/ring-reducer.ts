import { ClusterError } from '../shared/errors.js';
import { allReduceBuckets, type BucketPlan, planBuckets } from './allreduce/buckets.js';
import type { GradientCompression } from './allreduce/ring.js';
import type { RingTransport } from './allreduce/transport.js';
import type { GradientReducer } from './train/step.js';
import type { GradientLayout } from './train/tensor-pack.js';

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
 *
 * Agreement, in order:
 *  1. agreeLayout(step layout) fixes the bucket plan: planBuckets over the layout's total size, with
 *     the layout hash (names, shapes, dtype, extras) folded in with the bucket size.
 *  2. The worker joins the ring with the returned BucketPlan.hash as RingMembership.layoutHash, so
 *     OpenRing refuses a neighbour that packs or cuts its buffer differently.
 *  3. reduce() all-reduces with exactly that plan and refuses a buffer of any other length.
 * Without agreeLayout, reduce() plans from the buffer length alone (a plan no handshake covers).
 */
export class RingReducer implements GradientReducer {
  private ring: RingPosition | undefined;
  private round = 0;
  private plan: BucketPlan | undefined;
  private agreed: { plan: BucketPlan; layoutHash: string } | undefined;
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

  /** Fixes the bucket plan for `layout`; returns BucketPlan.hash, what the ring handshake compares. */
  agreeLayout(layout: Pick<GradientLayout, 'hash' | 'totalSize'>): string {
    const plan = planBuckets(layout.totalSize, {
      bucketBytes: this.options.bucketBytes,
      layoutHash: layout.hash,
    });
    this.agreed = { plan, layoutHash: layout.hash };
    return plan.hash;
  }

  /** Enters a new ring; rounds restart at 0 (every member does the same). */
  setRing(ring: RingPosition): void {
    this.ring = ring;
    this.round = 0;
  }

  async reduce(buffer: Float32Array, signal: AbortSignal): Promise<void> {
    const ring = this.ring;
    if (!ring) throw new Error('RingReducer: no ring yet (setRing first)');
    const plan = this.planFor(buffer);
    const started = performance.now();
    this.options.onPhase?.('allreduce');
    const stats = await allReduceBuckets(buffer, plan, {
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

  private planFor(buffer: Float32Array): BucketPlan {
    const agreed = this.agreed;
    if (agreed) {
      if (buffer.length === agreed.plan.totalElements) return agreed.plan;
      throw new ClusterError(
        'PROTOCOL',
        `RingReducer: the step buffer has ${buffer.length} elements but the layout agreed at join ` +
          `(layout hash ${agreed.layoutHash}, plan hash ${agreed.plan.hash}) has ${agreed.plan.totalElements}`,
      );
    }
    if (this.plan?.totalElements !== buffer.length) {
      this.plan = planBuckets(buffer.length, { bucketBytes: this.options.bucketBytes });
    }
    return this.plan;
  }
}
