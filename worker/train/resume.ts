/**
 * Resume: what a checkpoint records about its run (checkpointMeta), the checks that a checkpoint can
 * continue this run (resumeProblems: every hyperparameter and the seed; warnings for another
 * ssd-cluster version or another train channel), finding the checkpoint to resume from, and restoring
 * the trainer from it. `train` (startCheckpointing), the coordinator and the cluster worker use them.
 */
import type { CheckpointMeta, JsonValue } from '../../coordinator/checkpoint/format.js';
import {
  type CheckpointStore,
  type LoadedCheckpoint,
  loadCheckpoint,
} from '../../coordinator/checkpoint/store.js';
import { toSageMakerHyperparams } from '../../shared/config/compile.js';
import { HYPERPARAMETER_NAMES, type Hyperparameters } from '../../shared/config/hyperparameters.js';
import { ConfigError } from '../../shared/errors.js';
import { type Logger, noopLogger } from '../../shared/logging.js';
import type { Storage } from '../../shared/storage/storage.js';
import { SSD_CLUSTER_VERSION } from '../../shared/version.js';
import type { Trainer } from './trainer.js';

/**
 * What a checkpoint says about its run: the hyperparameters as SageMaker strings, the seed, the
 * ssd-cluster version that wrote it, `extra`.
 */
export function checkpointMeta(
  hp: Readonly<Hyperparameters>,
  seed: number,
  extra: Readonly<Record<string, JsonValue>> = {},
): Record<string, JsonValue> {
  return {
    ...extra,
    hyperparameters: toSageMakerHyperparams(hp),
    seed,
    ssdClusterVersion: SSD_CLUSTER_VERSION,
  };
}

/**
 * A warning when the checkpoint was written by another ssd-cluster version (or by one that did not record
 * it), else null. Such a checkpoint still loads when its names and shapes fit (setState checks them), but
 * its run's initialisation or schedule may differ from this version's. Pure.
 */
export function versionWarning(url: string, meta: CheckpointMeta): string | null {
  const written = meta.ssdClusterVersion;
  if (written === SSD_CLUSTER_VERSION) return null;
  const by =
    typeof written === 'string'
      ? `ssd-cluster ${written}`
      : 'an ssd-cluster build that did not record its version';
  return `checkpoint ${url} was written by ${by}; this is ssd-cluster ${SSD_CLUSTER_VERSION}`;
}

/**
 * A warning when this run reads another train channel than the checkpoint's run did (meta.train), else
 * null. Not an error: a moved copy of the same file is fine. Pure.
 */
export function trainDataWarning(
  url: string,
  meta: CheckpointMeta,
  train: JsonValue | undefined,
): string | null {
  const then = meta.train;
  if (typeof then !== 'string' || typeof train !== 'string' || then === train) return null;
  return `checkpoint ${url} was made with --train ${then}, this run reads ${train}: fine for a moved copy of the same data; other data cannot continue the run exactly`;
}

/**
 * Why the checkpoint at `url` (with `meta`) cannot continue a run with `hp` and `seed`: one problem
 * per key, empty when it can. Every hyperparameter must be the same, except that epochs may grow.
 * Pure.
 */
export function resumeProblems(
  url: string,
  meta: CheckpointMeta,
  hp: Readonly<Hyperparameters>,
  seed: number,
): string[] {
  const problems: string[] = [];
  if (meta.seed !== seed)
    problems.push(`--seed: is ${seed} but checkpoint ${url} was made with seed ${meta.seed}`);
  const saved = meta.hyperparameters;
  if (saved === null || typeof saved !== 'object' || Array.isArray(saved))
    return [...problems, `checkpoint ${url}: its meta has no hyperparameters to check this run against`];
  const current = toSageMakerHyperparams(hp);
  for (const name of HYPERPARAMETER_NAMES) {
    const then = saved[name];
    const now = current[name]!;
    if (name === 'epochs' ? !(Number(now) >= Number(then)) : now !== then) {
      const rule = name === 'epochs' ? ' (epochs may only grow)' : '';
      problems.push(`${name}: is ${now} but checkpoint ${url} was made with ${JSON.stringify(then)}${rule}`);
    }
  }
  return problems;
}

export interface ResumeOptions {
  storage: Storage;
  /** The store of `--checkpoint-dir`, for `--resume`. */
  store?: Pick<CheckpointStore, 'dir' | 'loadNewestValid'>;
  /** `--resume`: the newest valid checkpoint in the store; none = a fresh start. */
  resume?: boolean;
  /** `--resume-from`: this checkpoint (corrupt or missing is an error). */
  resumeFrom?: string;
  logger?: Logger;
  signal: AbortSignal;
}

/** The checkpoint to resume from, or undefined for a fresh start (logged). */
export async function findResumeCheckpoint(o: ResumeOptions): Promise<LoadedCheckpoint | undefined> {
  const logger = o.logger ?? noopLogger;
  if (o.resumeFrom !== undefined) return loadCheckpoint(o.storage, o.resumeFrom, o.signal);
  if (!o.resume) return undefined;
  if (!o.store) throw new ConfigError(['--resume: needs --checkpoint-dir to look for checkpoints in']);
  const found = await o.store.loadNewestValid(o.signal);
  if (!found) logger.info('no checkpoint to resume from; starting fresh', { dir: o.store.dir });
  return found;
}

/** Restores `trainer` from `loaded` once resumeProblems finds nothing (else a ConfigError with them all). */
export function resumeTrainer(
  trainer: Pick<Trainer, 'setState'>,
  loaded: LoadedCheckpoint,
  run: {
    hp: Readonly<Hyperparameters>;
    seed: number;
    logger?: Logger;
    /** This run's checkpoint meta; its `train` is compared with the checkpoint's. */
    meta?: Readonly<Record<string, JsonValue>>;
  },
): void {
  const problems = resumeProblems(loaded.url, loaded.meta, run.hp, run.seed);
  if (problems.length > 0) throw new ConfigError(problems);
  trainer.setState(loaded.state);
  const warnings = [
    versionWarning(loaded.url, loaded.meta),
    trainDataWarning(loaded.url, loaded.meta, run.meta?.train),
  ];
  for (const warning of warnings) if (warning !== null) run.logger?.warn(warning);
  const { epoch, position, globalStep } = loaded.state.progress;
  run.logger?.info('resuming from checkpoint', { url: loaded.url, epoch, position, globalStep });
}
