import path from 'node:path';
import { workerGpus } from '../../coordinator/gpu-assignment.js';
import { deadWorkersError, launchWorkers, stopWorkers, whenTooFewAlive } from '../../coordinator/launcher.js';
import { runCoordinator } from '../../coordinator/main.js';
import { describeHyperparameters } from '../../shared/config/hyperparameters.js';
import { createStorage } from '../../shared/storage/open-storage.js';
import type { Storage } from '../../shared/storage/storage.js';
import { checkOutputDirs } from '../../shared/storage/writable-dir.js';
import { defaultCacheRoot, ensureSynthDataset, synthCacheDir } from '../../shared/synth/cache.js';
import { SYNTH_DEFAULTS } from '../../shared/synth/synth-image.js';
import { mergeTraceFiles } from '../../shared/timeline.js';
import { parseBackendName } from '../../worker/backend/backend.js';
import { NATIVE_PACKAGES } from '../../worker/backend/tensorflow-native.js';
import { parseCommandArgs } from '../args.js';
import { CLUSTER_OPTIONS_HELP, clusterOptions, compileClusterSettings } from '../cluster-options.js';
import { type CliCommand, type CliContext, writeJsonLine } from '../command.js';
import { parseDecodeCacheFlag } from '../decode-cache-flag.js';
import { LEARN_HYPERPARAMETERS } from './bench/learn.js';

const usage = `Usage: ssd-cluster local [--workers N] [coordinator options] [--backend NAME] [--run-dir DIR]

Starts a coordinator and N worker processes on this host, trains, and exits when training ends,
printing the same JSON line as 'coordinator': the fields of 'train' plus "speedup" and
"scalingEfficiency" (ssd_cluster_speedup and ssd_cluster_scaling_efficiency after the last step).
With no --train it makes the default synthetic data set (ssd-cluster synth defaults) in the cache
folder ($SSD_CLUSTER_CACHE, else ./.cache/ssd-cluster) and trains the tiny SSD on it with the
'bench learn' recipe.
Worker logs go to RUN_DIR/logs/worker-<i>.log; the model to --model-dir (default RUN_DIR/model).

Options:
  --backend NAME    the workers' backend: auto (default), tensorflow-gpu, tensorflow, wasm or cpu
                    (on a GPU host worker i gets GPU i: with tensorflow-gpu, or auto when
                    @tensorflow/tfjs-node-gpu is installed; the i-th of CUDA_VISIBLE_DEVICES if set)
  --run-dir DIR     where logs (and, by default, the model) go (default CACHE/run)
  --timeline FILE   a Chrome trace (chrome://tracing, Perfetto) of every rank's step phases and
                    all-reduce calls, merged from the workers' traces at the end
  --decode-cache-mb MB  each worker's cache of decoded images (see 'worker --help'; 0: off)

${CLUSTER_OPTIONS_HELP}
  --s3-endpoint URL              S3-compatible endpoint for s3:// URLs
  --log-level LEVEL              debug, info, warn, error or silent (default info)

${describeHyperparameters()}
`;

const options = {
  ...clusterOptions,
  backend: { type: 'string' },
  'run-dir': { type: 'string' },
  timeline: { type: 'string' },
  'decode-cache-mb': { type: 'string' },
} as const;

const gpuFlag = (gpu: number | undefined) => (gpu === undefined ? [] : ['--gpu', String(gpu)]);

/** Whether `specifier` resolves from here (installed), without loading it. */
function isPackageInstalled(specifier: string): boolean {
  try {
    import.meta.resolve(specifier);
    return true;
  } catch {
    return false;
  }
}

/** Where worker i writes its own trace before `local` merges them. */
function workerTrace(timeline: string, index: number): string {
  return `${timeline}.worker-${index}.json`;
}

/** With no --train: the default synthetic data set and the recipe that learns it. */
async function embeddedDefault(storage: Storage, ctx: CliContext) {
  const dir = synthCacheDir(path.join(defaultCacheRoot(ctx.env), 'data'), SYNTH_DEFAULTS);
  const urls = await ensureSynthDataset(dir, SYNTH_DEFAULTS, {
    storage,
    logger: ctx.logger,
    signal: ctx.signal,
  });
  return {
    train: urls.train,
    validation: urls.validation,
    defaults: {
      ...LEARN_HYPERPARAMETERS,
      num_classes: SYNTH_DEFAULTS.classCount,
      num_training_samples: SYNTH_DEFAULTS.train,
    },
  };
}

export const command: CliCommand = {
  name: 'local',
  summary: 'run a coordinator and N workers on this host',
  usage,
  async run(argv, ctx) {
    const { values } = parseCommandArgs('local', argv, options);
    const backend = parseBackendName(values.backend ?? 'auto');
    const gpuHost = {
      backend,
      gpuPackageInstalled: isPackageInstalled(NATIVE_PACKAGES['tensorflow-gpu']),
      visibleDevices: ctx.env.CUDA_VISIBLE_DEVICES,
    };
    parseDecodeCacheFlag(values['decode-cache-mb']); // a bad value fails here, not in every worker
    const decodeCacheMb = values['decode-cache-mb'];
    const runDir = values['run-dir'] ?? path.join(defaultCacheRoot(ctx.env), 'run');
    const storage = createStorage({ s3Endpoint: values['s3-endpoint'], env: ctx.env });
    try {
      values['model-dir'] ??= path.join(runDir, 'model');
      // Everything runs on this host, so its outputs can be checked here before any work starts.
      const dirs = { modelDir: values['model-dir'], checkpointDir: values['checkpoint-dir'] };
      await checkOutputDirs(storage, dirs, ctx.signal);
      let defaults: Record<string, unknown> = {};
      if (values.train === undefined) {
        const d = await embeddedDefault(storage, ctx);
        values.train = d.train;
        values.validation ??= d.validation;
        defaults = d.defaults;
      }
      const settings = await compileClusterSettings(values, defaults);
      const gpus = workerGpus(gpuHost, settings.workers);
      settings.spec.s3Endpoint = values['s3-endpoint'] ?? '';
      const logDir = path.join(runDir, 'logs');
      const controller = new AbortController();
      const signal = AbortSignal.any([ctx.signal, controller.signal]);
      let workers: ReturnType<typeof launchWorkers> = [];
      let metricsPort: number | undefined;
      const summary = await runCoordinator({
        ...settings,
        address: '127.0.0.1:0',
        metricsPortFallback: values['metrics-port'] === undefined,
        storage,
        logger: ctx.logger,
        progressStream: ctx.stderr,
        signal,
        onListening: (port, metrics) => {
          metricsPort = metrics;
          workers = launchWorkers({
            count: settings.workers,
            coordinator: `127.0.0.1:${port}`,
            logDir,
            env: ctx.env,
            logger: ctx.logger,
            args: (i) => [
              '--backend',
              backend,
              ...gpuFlag(gpus[i]),
              ...(settings.clusterToken ? ['--cluster-token', settings.clusterToken] : []),
              ...(values['log-level'] ? ['--log-level', values['log-level']] : []),
              ...(values.timeline ? ['--timeline', workerTrace(values.timeline, i)] : []),
              ...(decodeCacheMb !== undefined ? ['--decode-cache-mb', decodeCacheMb] : []),
            ],
          });
          void whenTooFewAlive(workers, settings.minWorkers).then((dead) =>
            controller.abort(deadWorkersError(dead)),
          );
        },
      }).finally(async () => {
        // Stopped by a signal: pass it on to the workers at once; otherwise give them time to leave.
        await stopWorkers(workers, signal.aborted ? 0 : 30_000);
      });
      if (values.timeline) {
        const parts = workers.map((w) => workerTrace(values.timeline!, w.index));
        await mergeTraceFiles(parts, values.timeline);
      }
      writeJsonLine(ctx.stdout, summary);
      ctx.stderr.write(
        `ssd-cluster local: model in ${summary.modelDir}; worker logs in ${logDir}; ` +
          `metrics were served at http://127.0.0.1:${metricsPort ?? settings.metricsPort}/metrics (workers: /sd) while it ran\n`,
      );
      return 0;
    } finally {
      await storage.close();
    }
  },
};
