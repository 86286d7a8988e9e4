/**
 * The training loop of ONE process: the reference the cluster must match, built from pieces the
 * cluster reuses (train step with a reducer hook, sharding plan, schedules, validation rows, SageMaker
 * log lines, progress updates).
 *
 * Order of an epoch (state in TrainingProgress, so run() can start from any saved position):
 *  1. The plan of the epoch from `position` (coordinator/sharding/plan.ts; one rank, global batch =
 *     mini_batch_size); a prefetcher decodes the next batches while the step runs.
 *  2. Each step: lr = learningRateAt(hp, epoch, globalStep) (step decay + warm-up), the train step,
 *     then the progress moves on (position, globalStep, images). Every `lossLogEvery` steps and at the
 *     end of the epoch: the running mean cross_entropy and smooth_l1 lines.
 *  3. End of epoch: the throughput line, validation on the whole validation channel (its mAP line),
 *     early stopping (afterEpoch), the progress line.
 * An abort (signal) stops between or inside steps; the progress reached stays in getState().
 */
import { performance } from 'node:perf_hooks';
import type * as tfc from '@tensorflow/tfjs-core';
import { learningRateAt } from '../../coordinator/schedule/lr.js';
import {
  createShardingPlan,
  type EpochPlan,
  type ShardingPlan,
  validationShard,
} from '../../coordinator/sharding/plan.js';
import { freezeLayerRegExp } from '../../shared/config/compile.js';
import type { Hyperparameters } from '../../shared/config/hyperparameters.js';
import { ConfigError } from '../../shared/errors.js';
import { type Logger, noopLogger } from '../../shared/logging.js';
import { readTensorsInto, uploadCopiesValues } from '../backend/read-into.js';
import { createBadRecordLog } from '../data/bad-record-log.js';
import type { BadRecord } from '../data/batch.js';
import type { Dataset, OnBadRecord } from '../data/dataset.js';
import { createPrefetcher } from '../data/prefetch.js';
import type { SsdModel } from '../model/ssd.js';
import { type Collective, type EpochDecision, type StepInfo, soloCollective } from './collective.js';
import { createOptimizer, type Optimizer } from './optimizers.js';
import {
  addStepLosses,
  EMPTY_EPOCH_LOSSES,
  type EpochLosses,
  meanLosses,
  progressLine,
  throughputLine,
  trainLossLines,
  validationMapLine,
} from './sagemaker-log.js';
import { createTrainStep, type GradientReducer, type TrainStep } from './step.js';
import {
  afterEpoch,
  afterStep,
  copyTrainerState,
  initialProgress,
  type TrainerState,
  type TrainingProgress,
} from './trainer-state.js';
import { detectOptionsOf, detectSamples, type ValidationRows } from './validation.js';

export type { Collective, EpochDecision, StepInfo };

export interface TrainerOptions {
  tf: typeof tfc;
  /** Initialised (seeded, or with its pretrained base loaded); the trainer updates it in place. */
  model: SsdModel;
  hp: Readonly<Hyperparameters>;
  /** Drives the sample order and augmentation. */
  seed: number;
  train: Dataset;
  validation?: Dataset;
  logger?: Logger;
  /** Receives each SageMaker metric line (sagemaker-log.ts). */
  metrics?: (line: string) => void;
  /** host= in the metric lines. */
  host: string;
  reducer?: GradientReducer;
  onBadRecord?: OnBadRecord;
  /** Batches decoded ahead (default 2). */
  prefetchDepth?: number;
  /** Loss lines every this many steps (default 10), and always at the end of an epoch. */
  lossLogEvery?: number;
  /**
   * Awaited at every point where the state may be saved (checkpointing.ts); run() goes on when it
   * resolves, so getState() inside it sees exactly this point. A rejection stops run().
   */
  onCheckpointPoint?: (point: CheckpointPoint, signal: AbortSignal) => Promise<void>;
  /** Told after every step (progress bars, metrics); synchronous and cheap. */
  onStep?: (info: StepInfo) => void;
}

/**
 * A step boundary where getState() is a consistent training state:
 * - after a step the collective accepted (afterStep resolved true), except the last step of an
 *   epoch (`epochEnd` false);
 * - after an epoch's validation and decision, progress at the next epoch's position 0 (or finished)
 *   (`epochEnd` true). The last step of an epoch is saved here, once, with the epoch's outcome.
 */
export interface CheckpointPoint {
  progress: TrainingProgress;
  epochEnd: boolean;
}

export interface TrainSummary {
  progress: TrainingProgress;
  /** Seconds spent in run(), validation included. */
  seconds: number;
  /** mAP of the last validation, null without a validation channel. */
  validationMap: number | null;
  /** The collective stopped the run at a step boundary before the job was finished. */
  interrupted: boolean;
}

export interface Trainer {
  readonly optimizer: Optimizer;
  readonly step: TrainStep;
  readonly plan: ShardingPlan;
  readonly progress: TrainingProgress;
  /** Trains from the current progress until finished, or until the collective stops it. */
  run(signal: AbortSignal, collective?: Collective): Promise<TrainSummary>;
  /** A copy of the state in fresh arrays. */
  getState(): Promise<TrainerState>;
  /**
   * Copies the state into `into`'s arrays (those of the same size are reused, so a caller that keeps
   * a few states allocates nothing in steady state) and returns `into`, or a fresh state without it.
   * Synchronous, so it sees exactly one step boundary.
   */
  readStateInto(into?: TrainerState): TrainerState;
  /** Puts the trainer at `state`; keeps no reference to its arrays, so the caller may reuse them. */
  setState(state: TrainerState): void;
  /** Frees the optimizer's slots (not the model, which the caller owns). Idempotent. */
  close(): Promise<void>;
}

function checkOptions(o: TrainerOptions): void {
  if (o.hp.early_stopping && !o.validation) {
    throw new ConfigError(['early_stopping: needs a validation channel (--validation) to measure mAP on']);
  }
}

export function createTrainer(options: TrainerOptions): Trainer {
  checkOptions(options);
  const { tf, model, hp, train } = options;
  const logger = options.logger ?? noopLogger;
  const metrics = options.metrics ?? (() => {});
  const optimizer = createOptimizer(tf, hp);
  const step = createTrainStep({
    tf,
    model,
    optimizer,
    trainableNames: model.trainableNames(freezeLayerRegExp(hp)),
    reducer: options.reducer,
    clipGradientNorm: hp.clip_gradient_norm,
  });
  const plan = createShardingPlan({
    numSamples: train.size,
    worldSize: 1,
    perWorkerBatch: hp.mini_batch_size,
    seed: options.seed,
  });
  let progress = initialProgress(options.seed);
  let closed = false;

  const solo = soloCollective(hp, logger);

  const trainEpoch = async (epochPlan: EpochPlan, c: Collective, signal: AbortSignal) => {
    // One per run of an epoch: a run that failed leaves nothing behind for the retry's summary.
    const badRecordLog = createBadRecordLog(logger);
    const steps = Array.from({ length: epochPlan.steps }, (_, k) =>
      Array.from(epochPlan.rankSamples(k, c.rank)),
    );
    const prefetcher = createPrefetcher(train, steps, {
      imageShape: hp.image_shape,
      train: true,
      seed: options.seed,
      epoch: epochPlan.epoch,
      signal,
      onBadRecord: options.onBadRecord,
      logger,
      badRecordLog,
      depth: options.prefetchDepth,
    });
    const started = performance.now();
    let losses: EpochLosses = EMPTY_EPOCH_LOSSES;
    let images = 0;
    const skipped: BadRecord[] = [];
    let interrupted = false;
    try {
      for (let k = 0; k < steps.length && !interrupted; k++) {
        const waited = performance.now();
        const batch = (await prefetcher.next())!;
        const dataSeconds = (performance.now() - waited) / 1000;
        const lr = learningRateAt(hp, epochPlan.epoch, progress.globalStep);
        const result = await step.step(batch, { lr, signal });
        progress = afterStep(
          progress,
          epochPlan.positionAfter(k + 1),
          batch.indices.length,
          batch.skipped.length,
        );
        images += batch.indices.length;
        skipped.push(...batch.skipped);
        losses = addStepLosses(losses, result.clsLoss, result.locLoss);
        logger.debug('train step', { epoch: epochPlan.epoch, step: k, lr, ...result });
        const last = k === steps.length - 1;
        if (last || (k + 1) % (options.lossLogEvery ?? 10) === 0) {
          for (const line of trainLossLines(options.host, epochPlan.epoch, k, meanLosses(losses)))
            metrics(line);
        }
        const info: StepInfo = {
          progress,
          result,
          images: batch.indices.length,
          skipped: batch.skipped.length,
          lr,
          dataSeconds,
          lastInEpoch: last,
        };
        options.onStep?.(info);
        interrupted = !(await c.afterStep(info));
        if (!interrupted && !last) await options.onCheckpointPoint?.({ progress, epochEnd: false }, signal);
      }
    } finally {
      await prefetcher.close();
    }
    badRecordLog.endEpoch(epochPlan.epoch, images + skipped.length, skipped);
    return { images, seconds: (performance.now() - started) / 1000, losses, interrupted };
  };

  /** This rank's validation rows (its shard of the validation set), or null without validation. */
  const validationRows = async (c: Collective, signal: AbortSignal): Promise<ValidationRows | null> => {
    const dataset = options.validation;
    if (!dataset) return null;
    const shard = validationShard(dataset.size, c.worldSize, c.rank);
    return detectSamples({
      tf,
      model,
      dataset,
      indices: Array.from({ length: shard.end - shard.start }, (_, i) => shard.start + i),
      batchSize: hp.mini_batch_size,
      detect: detectOptionsOf(hp),
      signal,
      seed: options.seed,
      onBadRecord: options.onBadRecord,
      logger,
    });
  };

  /** One epoch from the current position; false when the collective interrupted it. */
  const runEpoch = async (c: Collective, signal: AbortSignal): Promise<boolean> => {
    const epoch = progress.epoch;
    const trained = await trainEpoch(plan.planFromPosition(epoch, progress.position, c.worldSize), c, signal);
    if (trained.interrupted) return false;
    const throughput = trained.seconds > 0 ? (trained.images * c.worldSize) / trained.seconds : 0;
    metrics(throughputLine(options.host, throughput));
    const rows = await validationRows(c, signal);
    const decision = await c.decideEpoch(epoch, rows, progress);
    if (decision.validationMap !== null)
      metrics(validationMapLine(options.host, epoch, decision.validationMap));
    progress = afterEpoch(progress, decision.validationMap, hp);
    if (decision.stop && !progress.finished) progress = Object.freeze({ ...progress, finished: true });
    metrics(progressLine(options.host, progress.epoch, hp.epochs));
    logger.info('epoch done', {
      epoch,
      images: trained.images,
      seconds: trained.seconds,
      ...meanLosses(trained.losses),
      validationMap: decision.validationMap,
      stop: progress.finished,
    });
    await options.onCheckpointPoint?.({ progress, epochEnd: true }, signal);
    return true;
  };

  return {
    optimizer,
    step,
    plan,
    get progress() {
      return progress;
    },
    async run(signal, collective = solo) {
      const started = performance.now();
      let interrupted = false;
      while (!progress.finished && !interrupted) {
        signal.throwIfAborted();
        interrupted = !(await runEpoch(collective, signal));
      }
      const maps = progress.validationMaps;
      return {
        progress,
        seconds: (performance.now() - started) / 1000,
        validationMap: maps.length > 0 ? maps[maps.length - 1]! : null,
        interrupted,
      };
    },
    async getState() {
      const weights = new Map<string, { shape: number[]; values: Float32Array }>();
      for (const [name, v] of model.variables) {
        weights.set(name, { shape: [...v.shape], values: (await v.data()) as Float32Array });
      }
      return { progress, weights, optimizer: await optimizer.getState() };
    },
    readStateInto(into) {
      const target = into ?? {
        progress,
        weights: new Map(),
        optimizer: { name: optimizer.name, updates: 0, slots: new Map() },
      };
      target.progress = progress;
      readTensorsInto(tf, model.variables, target.weights);
      target.optimizer.name = optimizer.name;
      target.optimizer.updates = optimizer.updates;
      readTensorsInto(tf, optimizer.slotVariables(), target.optimizer.slots, { sortNames: true });
      return target;
    },
    setState(saved) {
      if (saved.progress.seed !== options.seed) {
        throw new ConfigError([
          `--seed: is ${options.seed} but the saved training state was made with seed ${saved.progress.seed}`,
        ]);
      }
      // On the CPU backend a tensor made from an array keeps that array as its storage.
      const state = uploadCopiesValues(tf) ? saved : copyTrainerState(saved);
      restoreWeights(tf, model, state.weights);
      optimizer.setState(state.optimizer);
      // A run resumed with more epochs than it was saved with continues past its old end.
      const finished = state.progress.stoppedEarly || state.progress.epoch >= hp.epochs;
      progress = Object.freeze({ ...state.progress, finished });
    },
    async close() {
      if (closed) return;
      closed = true;
      optimizer.dispose();
    },
  };
}

/** Assigns every variable from `weights`; names and shapes must match the model exactly. */
function restoreWeights(tf: typeof tfc, model: SsdModel, weights: TrainerState['weights']): void {
  const problems: string[] = [];
  for (const [name, v] of model.variables) {
    const w = weights.get(name);
    if (!w) problems.push(`${name}: missing`);
    else if (w.shape.join('x') !== v.shape.join('x')) problems.push(`${name}: [${w.shape}] vs [${v.shape}]`);
  }
  for (const name of weights.keys())
    if (!model.variables.has(name)) problems.push(`${name}: not in the model`);
  if (problems.length > 0) throw new ConfigError(problems.map((p) => `trainer state: weight ${p}`));
  tf.tidy(() => {
    for (const [name, v] of model.variables) {
      const w = weights.get(name)!;
      v.assign(tf.tensor(w.values, w.shape, 'float32'));
    }
  });
}
