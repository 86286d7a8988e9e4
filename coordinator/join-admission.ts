/**
 * What a Join must pass before membership sees it (the cluster token, the version), and the addresses
 * the worker is reached at from the coordinator's side.
 */
import { randomUUID } from 'node:crypto';
import { ClusterError } from '../shared/errors.js';
import { SSD_CLUSTER_VERSION, versionMismatch } from '../shared/version.js';
import type { MemberInfo } from './membership/membership.js';
import type { JoinRequestMsg } from './protocol.js';

/** The member a Join from `seenFrom` asks to add; throws a CONFIG error when it is refused. */
export function admitJoin(req: JoinRequestMsg, seenFrom: string, clusterToken: string): MemberInfo {
  if (req.clusterToken !== clusterToken) {
    throw new ClusterError('CONFIG', 'join refused: the cluster token does not match (--cluster-token)');
  }
  const host = req.hostname || seenFrom;
  const mismatch = versionMismatch({
    worker: req.workerId ? `${req.workerId} on ${host}` : `on ${host}`,
    workerVersion: req.version,
    coordinatorVersion: SSD_CLUSTER_VERSION,
  });
  if (mismatch !== null) throw new ClusterError('CONFIG', `join refused: ${mismatch}`);
  const workerId = req.workerId || `w-${randomUUID().slice(0, 8)}`;
  const peerAddress = withHost(req.peerAddress, seenFrom);
  const metricsAddress = req.metricsAddress ? withHost(req.metricsAddress, seenFrom) : '';
  return { workerId, peerAddress, metricsAddress };
}

/** `:port` or `0.0.0.0:port` becomes `<host the coordinator saw>:port`. */
export function withHost(address: string, seenFrom: string): string {
  const i = address.lastIndexOf(':');
  const host = i < 0 ? '' : address.slice(0, i);
  const port = i < 0 ? address : address.slice(i + 1);
  if (host && host !== '0.0.0.0' && host !== '[::]' && host !== '::') return address;
  return `${hostOf(seenFrom)}:${port}`;
}

function hostOf(peer: string): string {
  const stripped = peer.replace(/^ipv[46]:/, '');
  const i = stripped.lastIndexOf(':');
  return i < 0 ? stripped : stripped.slice(0, i);
}
