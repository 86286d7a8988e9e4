/**
 * Prometheus HTTP service discovery (pure). The coordinator serves, on GET /sd, a JSON array of target
 * groups, one per live worker with a metrics endpoint:
 *
 *   [{ "targets": ["10.0.0.5:40123"],
 *      "labels": { "job": "ssd-cluster-workers", "__meta_ssd_cluster_rank": "0", ... } }]
 *
 * Labels starting with __meta_ are dropped after relabelling unless a relabel_config keeps them
 * (deploy/prometheus.yml copies the rank into a `rank` label); the others become target labels.
 * Every label value is a string, as the format requires.
 */

export interface TargetGroup {
  targets: string[];
  labels: Record<string, string>;
}

export interface DiscoverableWorker {
  workerId: string;
  /** host:port of the worker's /metrics; empty when it serves none. */
  metricsAddress: string;
}

export interface DiscoverableMembership {
  generation: number;
  /** The ring, in rank order. */
  members: readonly DiscoverableWorker[];
  /** Joined, not yet in the ring. */
  candidates?: readonly DiscoverableWorker[];
}

export const WORKER_JOB = 'ssd-cluster-workers';
export const COORDINATOR_JOB = 'ssd-cluster-coordinator';
export const META_PREFIX = '__meta_ssd_cluster_';

/** One target group per worker with a metrics address: ring members (with their rank) then candidates. */
export function workerTargetGroups(membership: DiscoverableMembership, job = WORKER_JOB): TargetGroup[] {
  const group = (w: DiscoverableWorker, state: string, rank?: number): TargetGroup => ({
    targets: [w.metricsAddress],
    labels: {
      job,
      [`${META_PREFIX}worker_id`]: w.workerId,
      [`${META_PREFIX}state`]: state,
      [`${META_PREFIX}generation`]: String(membership.generation),
      ...(rank === undefined ? {} : { [`${META_PREFIX}rank`]: String(rank) }),
    },
  });
  const members = membership.members.flatMap((w, rank) =>
    w.metricsAddress ? [group(w, 'member', rank)] : [],
  );
  const candidates = (membership.candidates ?? []).flatMap((w) =>
    w.metricsAddress ? [group(w, 'candidate')] : [],
  );
  return [...members, ...candidates];
}
