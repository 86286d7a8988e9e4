import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { toSageMakerHyperparams } from '../../../shared/config/compile.js';
import type { HyperparameterName, Hyperparameters } from '../../../shared/config/hyperparameters.js';
import {
  hyperparameterFlag,
  hyperparameterOptions,
  loadHyperparameters,
} from '../../../shared/config/load.js';
import { createStorage } from '../../../shared/storage/open-storage.js';
import { joinUrl } from '../../../shared/storage/url.js';
import { ensureSynthDataset, synthCacheDir } from '../../../shared/synth/cache.js';
import { SYNTH_DEFAULTS } from '../../../shared/synth/synth-image.js';
import { type BackendName, parseBackendName } from '../../../worker/backend/backend.js';
import { runTraining } from '../../../worker/train/run-training.js';
import { trainingHost } from '../../../worker/train/sagemaker-log.js';
import { intFlag, parseCommandArgs } from '../../args.js';
import { parseThreadsFlag } from '../../cluster-options.js';
import { type CliCommand, writeJsonLine } from '../../command.js';

/**
 * The recipe that takes the tiny SSD to VOC07 mAP >= 0.80 on the default synthetic data set within
 * 15 minutes on a 2-core machine (see the usage text). Hyperparameter flags override it.
 */
export const LEARN_HYPERPARAMETERS: Readonly<Record<string, string | number>> = Object.freeze({
  base_network: 'tiny',
  // The synthetic images' own size: at 96 px the mAP after 4 epochs was 0.43, at 64 px 0.16, at 128 px 0.65.
  image_shape: 128,
  // More updates per epoch learn faster here than larger batches (batch 16: 0.34 after 4 epochs at 96 px, batch 8: 0.43).
  mini_batch_size: 8,
  epochs: 9,
  optimizer: 'adam',
  learning_rate: 0.002,
  lr_scheduler_step: '6',
  lr_scheduler_factor: 0.1,
  lr_warmup_steps: 50,
});

const USAGE = `Usage: ssd-cluster bench learn [--cache DIR] [--backend NAME] [--threads N] [--seed S]
                                  [hyperparameters] [--json]

Makes the default synthetic data set (\`ssd-cluster synth\` defaults: ${SYNTH_DEFAULTS.train} train and ${SYNTH_DEFAULTS.validation} validation
images, ${SYNTH_DEFAULTS.classCount} classes) in DIR/synth-<hash> (reused when present), trains the tiny SSD on it in this process with
the recipe below (validation mAP logged every epoch), and prints one JSON line at the end:
  {"mAP": validation VOC07 mAP after the last epoch, "seconds": wall time including the data set,
   "command": the equivalent \`ssd-cluster train\` command}

Recipe (hyperparameter flags such as --epochs 2 override it):
${Object.entries(LEARN_HYPERPARAMETERS)
  .map(([k, v]) => `  ${k} = ${v}`)
  .join('\n')}

Options:
  --cache DIR        where the data set and the model go (default ${path.join(tmpdir(), 'ssd-cluster-bench-learn')})
  --backend NAME     auto (default), tensorflow-gpu, tensorflow, wasm or cpu
  --threads N        XNNPACK threads on wasm (default 1)
  --seed S           training seed (default 0)
  --json             accepted for symmetry with the other benchmarks (the output is always JSON)
`;

/** A word for a POSIX shell: as is when plain, else single-quoted. */
export function shellWord(word: string): string {
  return /^[\w.,/:@=+-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`;
}

/** The `ssd-cluster train` command line that does what this benchmark does. */
function trainCommand(
  hp: Readonly<Hyperparameters>,
  urls: { train: string; validation: string },
  rest: string[],
) {
  const given = new Set(['num_classes', 'num_training_samples', ...Object.keys(LEARN_HYPERPARAMETERS)]);
  const flags = Object.entries(toSageMakerHyperparams(hp))
    .filter(([name]) => given.has(name))
    .flatMap(([name, value]) => [`--${hyperparameterFlag(name as HyperparameterName)}`, value]);
  const words = ['train', ...flags, '--train', urls.train, '--validation', urls.validation, ...rest];
  return ['ssd-cluster', ...words.map(shellWord)].join(' ');
}

export const command: CliCommand = {
  name: 'bench learn',
  summary: 'make the synthetic data set, train the tiny SSD, report validation mAP',
  usage: USAGE,
  async run(argv, ctx) {
    const { values } = parseCommandArgs('bench learn', argv, {
      ...hyperparameterOptions,
      cache: { type: 'string' },
      backend: { type: 'string' },
      threads: { type: 'string' },
      seed: { type: 'string' },
      json: { type: 'boolean' },
    });
    const started = performance.now();
    const backend: BackendName = parseBackendName(values.backend ?? 'auto');
    const threads = parseThreadsFlag(values.threads);
    const seed = intFlag('seed', values.seed, { min: 0 }) ?? 0;
    const dir = synthCacheDir(values.cache ?? path.join(tmpdir(), 'ssd-cluster-bench-learn'), SYNTH_DEFAULTS);
    const hp = await loadHyperparameters(values, {
      defaults: {
        ...LEARN_HYPERPARAMETERS,
        num_classes: SYNTH_DEFAULTS.classCount,
        num_training_samples: SYNTH_DEFAULTS.train,
      },
    });
    const storage = createStorage({ s3Endpoint: values['s3-endpoint'], env: ctx.env });
    try {
      const urls = await ensureSynthDataset(dir, SYNTH_DEFAULTS, {
        storage,
        logger: ctx.logger,
        signal: ctx.signal,
      });
      const modelDir = joinUrl(dir, 'model');
      const rest = ['--model-dir', modelDir, '--seed', String(seed), '--backend', backend];
      if (threads !== undefined) rest.push('--threads', String(threads));
      const result = await runTraining({
        hp,
        seed,
        train: urls.train,
        validation: urls.validation,
        modelDir,
        backend,
        threads,
        storage,
        logger: ctx.logger,
        metrics: (line) => ctx.stderr.write(`${line}\n`),
        host: trainingHost(ctx.env, hostname()),
        signal: ctx.signal,
      });
      ctx.logger.info('bench learn: trained', { ...result });
      const seconds = (performance.now() - started) / 1000;
      writeJsonLine(ctx.stdout, {
        mAP: result.validationMap,
        seconds: Number(seconds.toFixed(1)),
        command: trainCommand(hp, urls, rest),
      });
      return 0;
    } finally {
      await storage.close();
    }
  },
};
