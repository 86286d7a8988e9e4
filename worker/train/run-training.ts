/**
 * A whole one-process training run, the body of `ssd-cluster train` (and of `bench learn`):
 * backend, data sets (with the num_training_samples check), model (seeded, optionally with a
 * pretrained base), the trainer (restored from a checkpoint with --resume / --resume-from; checkpoints
 * with --checkpoint-dir, the last one complete before the model is written), then the model
 * artifact. The summary's images are those this run trained. Resources are closed in reverse order of
 * creation, whatever happens; the tfjs backend stays (tfjs cannot re-create a removed backend).
 */
import { performance } from 'node:perf_hooks';
import type { TrainingSummary } from '../../coordinator/coordinator.js';
import { checkNumTrainingSamples } from '../../shared/config/compile.js';
import type { Hyperparameters } from '../../shared/config/hyperparameters.js';
import { ConfigError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logging.js';
import { createProgress } from '../../shared/progress.js';
import type { Storage } from '../../shared/storage/storage.js';
import { checkOutputDirs } from '../../shared/storage/writable-dir.js';
import { type BackendName, initBackend } from '../backend/backend.js';
import type { Dataset, OnBadRecord } from '../data/dataset.js';
import { openDataset } from '../data/open-dataset.js';
import { createSsdModel, type SsdModel } from '../model/ssd.js';
import { loadBaseWeights, requirePretrainedBase } from '../model/weights.js';
import { type Checkpointing, startCheckpointing } from './checkpointing.js';
import { readDatasetClasses, writeModelArtifact } from './model-artifact.js';
import { createTrainer, type StepInfo, type TrainerOptions } from './trainer.js';

export interface TrainingRunOptions {
  hp: Readonly<Hyperparameters>;
  seed: number;
  train: string;
  validation?: string;
  trainAnnotation?: string;
  validationAnnotation?: string;
  modelDir: string;
  modelArchive?: boolean;
  backend: BackendName;
  /** XNNPACK threads on wasm (default 1). */
  threads?: number;
  pretrainedBase?: string;
  onBadRecord?: OnBadRecord;
  /** `--checkpoint-dir` (a path or s3://): checkpoints at epoch ends and every checkpointFrequency steps. */
  checkpointDir?: string;
  /** `--checkpoint-frequency` steps (default 0: epoch ends only). */
  checkpointFrequency?: number;
  /** `--keep-checkpoints` (default 3). */
  keepCheckpoints?: number;
  /** `--resume`: continue from the newest valid checkpoint in checkpointDir, if any. */
  resume?: boolean;
  /** `--resume-from`: continue from this checkpoint. */
  resumeFrom?: string;
  storage: Storage;
  logger: Logger;
  /** SageMaker metric lines. */
  metrics: (line: string) => void;
  /** Where the progress bar (TTY) or periodic progress lines go; none when undefined. */
  progressStream?: NodeJS.WritableStream & { isTTY?: boolean };
  host: string;
  signal: AbortSignal;
}

/** The JSON line `train` prints: the same summary as a cluster run's (coordinator.ts). */
export type TrainingRunResult = TrainingSummary;

export async function openChannel(
  o: Pick<TrainingRunOptions, 'storage' | 'hp' | 'onBadRecord' | 'logger' | 'signal'>,
  url: string,
  annotations: string | undefined,
): Promise<Dataset> {
  return openDataset(url, {
    storage: o.storage,
    annotations,
    numClasses: o.hp.num_classes,
    onBadRecord: o.onBadRecord,
    logger: o.logger,
    signal: o.signal,
  });
}

export async function createModel(
  o: Pick<TrainingRunOptions, 'hp' | 'seed' | 'pretrainedBase' | 'storage' | 'logger' | 'signal'>,
): Promise<SsdModel> {
  const { hp } = o;
  const baseUrl = requirePretrainedBase(hp, o.pretrainedBase);
  const model = createSsdModel({
    baseNetwork: hp.base_network,
    imageShape: hp.image_shape,
    numClasses: hp.num_classes,
    seed: o.seed,
    // From scratch, resnet-50's base BatchNorms train (with zero-gamma residual ends); see resnet50.ts.
    pretrainedBase: baseUrl !== undefined,
  });
  if (baseUrl === undefined) return model;
  try {
    const report = await loadBaseWeights(model, baseUrl, o.storage, { signal: o.signal });
    o.logger.info('pretrained base loaded', {
      url: report.manifestUrl,
      loaded: report.loaded.length,
      skipped: report.skipped.length,
      unexpected: report.unexpected.length,
    });
    return model;
  } catch (err) {
    model.dispose();
    throw err;
  }
}

export async function runTraining(o: TrainingRunOptions): Promise<TrainingRunResult> {
  const started = performance.now();
  const backend = await initBackend(o.backend, { logger: o.logger, threads: o.threads });
  const closers: (() => unknown)[] = [];
  try {
    const train = await openChannel(o, o.train, o.trainAnnotation);
    closers.push(() => train.close());
    const mismatch = checkNumTrainingSamples(o.hp, train.size);
    if (mismatch) throw new ConfigError([`${mismatch} (${o.train})`]);
    const validation = o.validation ? await openChannel(o, o.validation, o.validationAnnotation) : undefined;
    if (validation) closers.push(() => validation.close());
    const classes = await readDatasetClasses(o.train, o.hp.num_classes, o.storage, o.signal);
    await checkOutputDirs(o.storage, o, o.signal); // before the training they would keep
    const model = await createModel(o);
    closers.push(() => model.dispose());
    const progress = o.progressStream && trainingProgress(o.progressStream, o.hp, train.size);
    if (progress) closers.push(() => progress.stop());
    const { trainer, checkpointing } = await createResumableTrainer(
      o,
      { ...o, tf: backend.tf, model, train, validation, onStep: progress?.onStep },
      backend.name,
      closers,
    );
    const summary = await trainer.run(o.signal);
    await flushCheckpoints(checkpointing, o);
    await writeModelArtifact({
      model,
      hp: o.hp,
      modelDir: o.modelDir,
      storage: o.storage,
      classes,
      archive: o.modelArchive,
      mtime: Math.floor(Date.now() / 1000),
      signal: o.signal,
    });
    const seconds = (performance.now() - started) / 1000;
    // This run's images only: a resumed run started from the checkpoint's count.
    const images = summary.progress.imagesTrained - (checkpointing.resumed?.progress.imagesTrained ?? 0);
    return {
      images,
      seconds,
      imagesPerSecond: seconds > 0 ? images / seconds : 0,
      workers: 1,
      epochs: summary.progress.epoch,
      validationMap: summary.validationMap,
      modelDir: o.modelDir,
    };
  } finally {
    for (const close of closers.reverse()) await close();
  }
}

/** A progress bar over the whole run: steps of one process are floor(samples / batch) per epoch. */
function trainingProgress(
  stream: NodeJS.WritableStream & { isTTY?: boolean },
  hp: Readonly<Hyperparameters>,
  samples: number,
) {
  const perEpoch = Math.floor(samples / hp.mini_batch_size);
  const bar = createProgress({ stream, total: perEpoch * hp.epochs, epochs: hp.epochs });
  const started = performance.now();
  let images = 0;
  return {
    onStep(info: StepInfo) {
      images += info.images;
      const seconds = (performance.now() - started) / 1000;
      bar.update({
        epoch: info.progress.epoch + 1,
        step: info.progress.globalStep,
        imagesPerSecond: seconds > 0 ? images / seconds : 0,
        loss: info.result.clsLoss + info.result.locLoss,
      });
    },
    stop: () => bar.stop(),
  };
}

/**
 * The trainer, restored from a checkpoint when resuming, with its checkpoint points wired to the
 * checkpointer; both go on `closers`.
 */
async function createResumableTrainer(
  o: TrainingRunOptions,
  trainerOptions: Omit<TrainerOptions, 'onCheckpointPoint'>,
  backend: string,
  closers: (() => unknown)[],
) {
  let late: Checkpointing | undefined; // the hook is given before the trainer exists to restore
  const trainer = createTrainer({
    ...trainerOptions,
    onCheckpointPoint: async (point, signal) => late?.onCheckpointPoint(point, signal),
  });
  closers.push(() => trainer.close());
  const checkpointing = await startCheckpointing({
    storage: o.storage,
    dir: o.checkpointDir,
    frequency: o.checkpointFrequency,
    keep: o.keepCheckpoints,
    resume: o.resume,
    resumeFrom: o.resumeFrom,
    hp: o.hp,
    seed: o.seed,
    meta: { workers: 1, backend, train: o.train },
    trainer,
    logger: o.logger,
    signal: o.signal,
  });
  late = checkpointing;
  closers.push(() => checkpointing.close());
  return { trainer, checkpointing };
}

/** Before the model is written: the last checkpoint must be complete; failures were logged one by one. */
async function flushCheckpoints(checkpointing: Checkpointing, o: TrainingRunOptions): Promise<void> {
  const stats = await checkpointing.checkpointer?.flush(o.signal);
  if (stats && stats.failed > 0)
    o.logger.warn('some checkpoints were not written', { dir: o.checkpointDir, ...stats });
}
