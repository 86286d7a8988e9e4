import { hostname } from 'node:os';
import { describeHyperparameters } from '../../shared/config/hyperparameters.js';
import { loadHyperparameters } from '../../shared/config/load.js';
import { UsageError } from '../../shared/errors.js';
import { createStorage } from '../../shared/storage/open-storage.js';
import { parseBackendName } from '../../worker/backend/backend.js';
import { runTraining, type TrainingRunOptions } from '../../worker/train/run-training.js';
import { trainingHost } from '../../worker/train/sagemaker-log.js';
import { intFlag, parseCommandArgs } from '../args.js';
import { jobOptions, parseOnBadRecord, parseThreadsFlag } from '../cluster-options.js';
import { type CliCommand, writeJsonLine } from '../command.js';

const usage = `Usage: ssd-cluster train [hyperparameters] --train SOURCE [--validation SOURCE] --model-dir DEST
                          [--seed S] [--backend NAME] [options]

Trains an SSD detector in this one process (the reference the cluster must match) and writes the model.
SOURCE is a .rec file (a path or s3://; its .idx beside it) or a folder of JPEG/PNG images with one
SageMaker JSON annotation per image (beside the images, or in --train-annotation / --validation-annotation).

Data:
  --train SOURCE                 training channel (required)
  --validation SOURCE            validation channel: VOC07 mAP at overlap_threshold after every epoch
  --train-annotation DIR         folder of .json annotations for an image-folder train channel
  --validation-annotation DIR    the same for the validation channel
  --on-bad-record skip|fail      corrupt records: skip with a warning (default) or stop

Model and output:
  --model-dir DEST               where model.json + weights, hyperparams.json and classes.json go (required)
  --model-archive                also write DEST/model.tar.gz of those files
  --pretrained-base URL          tfjs weights manifest of the base network (use_pretrained_model=1)
  --seed S                       data order, augmentation and initialisation seed (default 0)
  --backend NAME                 auto (default), tensorflow-gpu, tensorflow, wasm or cpu
  --threads N                    XNNPACK threads on wasm (default 1, like torchrun's OMP_NUM_THREADS=1;
                                 --threads 2 uses two cores in this one process)
  --s3-endpoint URL              S3-compatible endpoint for s3:// URLs
  --log-level LEVEL              debug, info, warn, error or silent (default info)

Checkpoints and resume:
  --checkpoint-dir URL           write checkpoints here (a path or s3://): at each epoch end, and every
                                 --checkpoint-frequency steps; one folder per checkpoint, manifest.json last
  --checkpoint-frequency N       also every N global steps (default 0: epoch ends only); a step checkpoint
                                 due while the previous one is still being written is skipped
  --keep-checkpoints K           keep the newest K checkpoints (default 3)
  --resume                       continue from the newest valid checkpoint in --checkpoint-dir (corrupt or
                                 partial ones are skipped with a warning; none: start fresh)
  --resume-from URL              continue from this checkpoint (its folder or its manifest.json)
  A resumed run needs the same seed and hyperparameters as the checkpoint (epochs may grow) and ends
  with the weights of an uninterrupted run; its "images" count only what it trained itself.

Hyperparameters: --NAME VALUE with the SageMaker name in dashes (--mini-batch-size 16), or
--hyperparameters FILE (a SageMaker hyperparameters.json; flags win). num_classes and
num_training_samples are required; num_training_samples must equal the records of the train channel.

SageMaker metric lines (#quality_metric, #throughput_metric, #progress_metric) go to stderr. At the end,
one JSON line on stdout: {"images", "seconds", "imagesPerSecond", "workers", "epochs", "validationMap", "modelDir"}.

${describeHyperparameters()}
`;

const options = {
  ...jobOptions,
  backend: { type: 'string' },
} as const;

type CheckpointFlags = Pick<
  TrainingRunOptions,
  'checkpointDir' | 'checkpointFrequency' | 'keepCheckpoints' | 'resume' | 'resumeFrom'
>;

function parseCheckpointFlags(values: {
  'checkpoint-dir'?: string;
  'checkpoint-frequency'?: string;
  'keep-checkpoints'?: string;
  resume?: boolean;
  'resume-from'?: string;
}): CheckpointFlags {
  const checkpointDir = values['checkpoint-dir'];
  const flags = {
    checkpointDir,
    checkpointFrequency: intFlag('checkpoint-frequency', values['checkpoint-frequency'], { min: 0 }),
    keepCheckpoints: intFlag('keep-checkpoints', values['keep-checkpoints'], { min: 1 }),
    resume: values.resume === true,
    resumeFrom: values['resume-from'],
  };
  if (checkpointDir === '')
    throw new UsageError('--checkpoint-dir: expected a path or s3:// URL, got an empty string');
  if (flags.resume && flags.resumeFrom !== undefined)
    throw new UsageError('train: pass either --resume or --resume-from URL, not both');
  const given: [string, boolean][] = [
    ['resume', flags.resume],
    ['checkpoint-frequency', flags.checkpointFrequency !== undefined],
    ['keep-checkpoints', flags.keepCheckpoints !== undefined],
  ];
  const needsDir = given.find(([, set]) => set);
  if (checkpointDir === undefined && needsDir)
    throw new UsageError(`--${needsDir[0]}: needs --checkpoint-dir URL`);
  return flags;
}

export const command: CliCommand = {
  name: 'train',
  summary: 'train in one process (the reference the cluster must match)',
  usage,
  async run(argv, ctx) {
    const { values } = parseCommandArgs('train', argv, options);
    if (values.train === undefined) {
      throw new UsageError(
        'train: --train SOURCE is required (a .rec file or a folder of images with JSON annotations); ' +
          'make a synthetic one with `ssd-cluster synth --out DIR` and pass --train DIR/train.rec --validation DIR/validation.rec',
      );
    }
    if (values['model-dir'] === undefined) {
      throw new UsageError('train: --model-dir DEST is required (a directory or s3:// prefix for the model)');
    }
    const onBadRecord = parseOnBadRecord(values['on-bad-record']);
    const backend = parseBackendName(values.backend ?? 'auto');
    const seed = intFlag('seed', values.seed, { min: 0, max: Number.MAX_SAFE_INTEGER }) ?? 0;
    const threads = parseThreadsFlag(values.threads);
    const checkpoints = parseCheckpointFlags(values);
    const hp = await loadHyperparameters(values);
    const storage = createStorage({ s3Endpoint: values['s3-endpoint'], env: ctx.env });
    try {
      const result = await runTraining({
        hp,
        seed,
        train: values.train,
        validation: values.validation,
        trainAnnotation: values['train-annotation'],
        validationAnnotation: values['validation-annotation'],
        modelDir: values['model-dir'],
        modelArchive: values['model-archive'] === true,
        backend,
        threads,
        pretrainedBase: values['pretrained-base'],
        onBadRecord,
        ...checkpoints,
        storage,
        logger: ctx.logger,
        metrics: (line) => ctx.stderr.write(`${line}\n`),
        progressStream: ctx.stderr,
        host: trainingHost(ctx.env, hostname()),
        signal: ctx.signal,
      });
      writeJsonLine(ctx.stdout, result);
      return 0;
    } finally {
      await storage.close();
    }
  },
};
