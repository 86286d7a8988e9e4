import { MANIFEST_FILE } from './manifest.js';

/**
 * Pure naming and retention of checkpoint folders: `<dir>/ckpt-<globalStep, 12 digits>/`, so names
 * sort by step. A folder with a manifest.json is complete (its contents are verified only on load).
 */
const NAME_PREFIX = 'ckpt-';
const STEP_DIGITS = 12;

export interface CheckpointInfo {
  name: string;
  /** The checkpoint folder, `<dir>/<name>` (what load() and --resume-from take). */
  url: string;
  globalStep: number;
  /** Has a manifest.json (its contents are verified only by load). */
  complete: boolean;
  /** Every object in the folder. */
  objectUrls: string[];
}

export function checkpointName(globalStep: number): string {
  return `${NAME_PREFIX}${String(globalStep).padStart(STEP_DIGITS, '0')}`;
}

/**
 * Pure: the folders to delete after writing `written` (a name in `checkpoints`): complete ones beyond
 * the newest `keep` by globalStep, except `written`; incomplete ones older than `written`.
 */
export function checkpointsToPrune(
  checkpoints: readonly CheckpointInfo[],
  keep: number,
  written: string,
): CheckpointInfo[] {
  const writtenStep = checkpoints.find((c) => c.name === written)?.globalStep ?? -1;
  const complete = newestFirst(checkpoints.filter((c) => c.complete));
  const kept = new Set(complete.slice(0, keep).map((c) => c.name)).add(written);
  return checkpoints.filter((c) =>
    c.complete ? !kept.has(c.name) : c.name !== written && c.globalStep < writtenStep,
  );
}

/**
 * Pure: checkpoint folders from a recursive listing of `prefix` (which ends in '/'), newest first.
 * Objects outside `ckpt-<digits>/<file>` are ignored.
 */
export function groupCheckpoints(prefix: string, objectUrls: readonly string[]): CheckpointInfo[] {
  const byName = new Map<string, CheckpointInfo>();
  for (const url of objectUrls) {
    const match = url.startsWith(prefix) ? /^(ckpt-(\d+))\/([^/]+)$/.exec(url.slice(prefix.length)) : null;
    if (!match || !Number.isSafeInteger(Number(match[2]))) continue;
    const name = match[1]!;
    let info = byName.get(name);
    if (!info) {
      info = { name, url: prefix + name, globalStep: Number(match[2]), complete: false, objectUrls: [] };
      byName.set(name, info);
    }
    info.objectUrls.push(url);
    if (match[3] === MANIFEST_FILE) info.complete = true;
  }
  return newestFirst([...byName.values()]);
}

function newestFirst(checkpoints: CheckpointInfo[]): CheckpointInfo[] {
  return [...checkpoints].sort((a, b) => b.globalStep - a.globalStep || (a.name < b.name ? 1 : -1));
}
