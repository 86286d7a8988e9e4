/**
 * The version of ssd-cluster this process runs (package.json's "version"), and the rule that a
 * coordinator and its workers run the same one.
 *
 * Why exact equality: the gradient layout, the bucket plan, the checkpoint format and the messages of
 * proto/ are one contract between coordinator and workers. Versions that differ may still line up, or
 * may fail much later with a layout-hash refusal at the first ring open that names no cause; a
 * refusal at Join names both versions and the host, which is what an operator needs.
 */
import { readFileSync } from 'node:fs';

function readPackageVersion(): string {
  const url = new URL('../package.json', import.meta.url);
  const parsed = JSON.parse(readFileSync(url, 'utf8')) as { version?: unknown };
  if (typeof parsed.version !== 'string' || parsed.version === '')
    throw new Error(`${url.pathname}: "version" must be a non-empty string`);
  return parsed.version;
}

export const SSD_CLUSTER_VERSION: string = readPackageVersion();

/** What `ssd-cluster --version` prints. */
export function describeVersion(): string {
  return `ssd-cluster ${SSD_CLUSTER_VERSION} (node ${process.version})`;
}

/** How a version reads in a message; an empty one came from a build that does not send it. */
function shown(version: string): string {
  return version === '' ? 'an ssd-cluster build that does not report its version' : `ssd-cluster ${version}`;
}

/**
 * Why a worker and a coordinator may not work together, or null when they may. `worker` names the
 * worker in the message (its id or host).
 */
export function versionMismatch(o: { worker: string; workerVersion: string; coordinatorVersion: string }) {
  if (o.workerVersion === o.coordinatorVersion) return null;
  return (
    `worker ${o.worker} runs ${shown(o.workerVersion)} and the coordinator ${shown(o.coordinatorVersion)}; ` +
    'run the same version on every host'
  );
}
