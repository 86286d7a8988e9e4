import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { availableParallelism, loadavg } from 'node:os';
import path from 'node:path';
import { CLI_ENTRY } from '../../../coordinator/launcher.js';
import { ClusterError, UsageError } from '../../../shared/errors.js';
import { createStorage } from '../../../shared/storage/open-storage.js';
import { defaultCacheRoot, ensureSynthDataset, synthCacheDir } from '../../../shared/synth/cache.js';
import { SYNTH_DEFAULTS, type SynthOptions } from '../../../shared/synth/synth-image.js';
import { parseBackendName } from '../../../worker/backend/backend.js';
import { intFlag, parseCommandArgs } from '../../args.js';
import { parseThreadsFlag } from '../../cluster-options.js';
import { type CliCommand, type CliContext, writeJsonLine } from '../../command.js';

const usage = `Usage: ssd-cluster bench scaling [--workers 2] [--images 1024] [--image-shape 128]
                                    [--mini-batch-size 8] [--base-network tiny] [--backend wasm]
                                    [--epochs 1] [--threads 1] [--seed 0] [--cache DIR] [--json]

Measures data-parallel scaling on this host: makes (or reuses) a synthetic data set of IMAGES
images of IMAGE_SHAPE px, then runs \`ssd-cluster local --workers 1\` and \`ssd-cluster local
--workers N\` one after the other as child processes, on the same data with the same per-worker
batch, and prints one JSON line:
  {"workers": N, "imagesPerSecond": {"1": x, "N": y}, "speedup": y/x, "efficiency": y/(N x),
   "speedupMetric": the N run's summary speedup (the coordinator's ssd_cluster_speedup estimate
   after its last step), "efficiencyMetric": its ssd_cluster_scaling_efficiency,
   "metricError": |speedupMetric / speedup - 1|, "loadAverage": [1-minute load before, after],
   "seconds": {"1", "N"} (training seconds of each run), "cpus", and the configuration}
Images per second are each run's summary: images trained / seconds from the start of the first
step to the end of the last (process start, backend and data loading excluded). Every worker
process uses --threads XNNPACK threads (default 1), so N workers need N cores; a busy machine
(see loadAverage) lowers the speedup.

Options:
  --workers N           workers of the second run, >= 2 (default 2)
  --images N            training images (default 1024)
  --image-shape PX      synthetic image size and the network's input size (default 128)
  --mini-batch-size B   per-worker batch in both runs (default 8)
  --base-network NAME   tiny (default), vgg-16 or resnet-50
  --backend NAME        the workers' backend (default wasm)
  --epochs E            epochs of each run (default 1)
  --threads N           XNNPACK threads per worker process on wasm (default 1)
  --seed S              data order and initialisation seed (default 0)
  --cache DIR           data set and run folders (default $SSD_CLUSTER_CACHE, else ./.cache/ssd-cluster)
  --json                print only the JSON line (otherwise a readable line follows it)
`;

const options = {
  workers: { type: 'string' },
  images: { type: 'string' },
  'image-shape': { type: 'string' },
  'mini-batch-size': { type: 'string' },
  'base-network': { type: 'string' },
  backend: { type: 'string' },
  epochs: { type: 'string' },
  threads: { type: 'string' },
  seed: { type: 'string' },
  cache: { type: 'string' },
  json: { type: 'boolean' },
} as const;

export interface ScalingPlan {
  workers: number;
  images: number;
  imageShape: number;
  miniBatchSize: number;
  baseNetwork: string;
  backend: string;
  epochs: number;
  threads: number;
  seed: number;
}

function compilePlan(argv: string[], env: NodeJS.ProcessEnv) {
  const { values } = parseCommandArgs('bench scaling', argv, options);
  const plan: ScalingPlan = {
    workers: intFlag('workers', values.workers, { min: 2, max: 64 }) ?? 2,
    images: intFlag('images', values.images, { min: 1 }) ?? 1024,
    imageShape: intFlag('image-shape', values['image-shape'], { min: 32, max: 4096 }) ?? 128,
    miniBatchSize: intFlag('mini-batch-size', values['mini-batch-size'], { min: 1 }) ?? 8,
    baseNetwork: values['base-network'] ?? 'tiny',
    backend: parseBackendName(values.backend ?? 'wasm'),
    epochs: intFlag('epochs', values.epochs, { min: 1 }) ?? 1,
    threads: parseThreadsFlag(values.threads) ?? 1,
    seed: intFlag('seed', values.seed, { min: 0, max: 2 ** 32 - 1 }) ?? 0,
  };
  const globalBatch = plan.workers * plan.miniBatchSize;
  if (plan.images < globalBatch) {
    throw new UsageError(
      `bench scaling: --images ${plan.images} is less than one global batch of the ${plan.workers}-worker run ` +
        `(--workers x --mini-batch-size = ${globalBatch})`,
    );
  }
  const cache = values.cache ?? defaultCacheRoot(env);
  return { plan, cache, json: values.json === true, logLevel: values['log-level'] ?? 'warn' };
}

/** The synthetic data set of a plan: the defaults at the plan's size, no validation split. */
export function scalingSynthOptions(plan: ScalingPlan): SynthOptions {
  return { ...SYNTH_DEFAULTS, train: plan.images, validation: 0, imageSize: plan.imageShape };
}

/** `ssd-cluster local` arguments of one run; both runs differ only in --workers and their folders. */
export function localArgs(plan: ScalingPlan, train: string, runDir: string, workers: number): string[] {
  return [
    'local',
    '--workers',
    String(workers),
    '--train',
    train,
    '--num-classes',
    String(SYNTH_DEFAULTS.classCount),
    '--num-training-samples',
    String(plan.images),
    '--base-network',
    plan.baseNetwork,
    '--image-shape',
    String(plan.imageShape),
    '--mini-batch-size',
    String(plan.miniBatchSize),
    '--epochs',
    String(plan.epochs),
    '--seed',
    String(plan.seed),
    '--backend',
    plan.backend,
    '--threads',
    String(plan.threads),
    '--run-dir',
    runDir,
    '--model-dir',
    path.join(runDir, 'model'),
    '--metrics-port',
    '0',
  ];
}

/** The fields of a `local` summary line this benchmark reads. */
export interface LocalSummary {
  images: number;
  seconds: number;
  imagesPerSecond: number;
  workers: number;
  speedup: number | null;
  scalingEfficiency: number | null;
}

/** The last line of `stdout` that is a JSON object (progress and notes may surround it). */
function lastJsonObject(stdout: string): Record<string, unknown> | undefined {
  for (const line of stdout.trim().split('\n').reverse()) {
    try {
      const value: unknown = JSON.parse(line);
      if (value && typeof value === 'object' && !Array.isArray(value))
        return value as Record<string, unknown>;
    } catch {}
  }
  return undefined;
}

export function parseLocalSummary(stdout: string, what: string): LocalSummary {
  const line = lastJsonObject(stdout);
  const number = (key: string) => (typeof line?.[key] === 'number' ? (line[key] as number) : undefined);
  const nullable = (key: string) => (line?.[key] === null ? null : number(key));
  const summary = {
    images: number('images'),
    seconds: number('seconds'),
    imagesPerSecond: number('imagesPerSecond'),
    workers: number('workers'),
    speedup: nullable('speedup'),
    scalingEfficiency: nullable('scalingEfficiency'),
  };
  const missing = Object.entries(summary).filter(([, v]) => v === undefined);
  if (!line || missing.length > 0) {
    const names = line ? missing.map(([k]) => k).join(', ') : 'the whole line';
    throw new ClusterError('INTERNAL', `bench scaling: ${what} printed no summary (missing ${names})`);
  }
  return summary as LocalSummary;
}

/** Runs `ssd-cluster ARGS` as a child process (stderr passed through) and returns its stdout. */
async function runChild(args: string[], ctx: CliContext, what: string): Promise<string> {
  const child = spawn(process.execPath, [CLI_ENTRY, ...args], {
    env: ctx.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    signal: ctx.signal,
  });
  let stdout = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.pipe(ctx.stderr, { end: false });
  child.on('error', () => {}); // an abort kills it; the exit below reports it
  const [code, signal] = await once(child, 'exit');
  ctx.signal.throwIfAborted();
  if (code !== 0) throw new ClusterError('INTERNAL', `bench scaling: ${what} exited with ${code ?? signal}`);
  return stdout;
}

export interface ScalingResult {
  workers: number;
  imagesPerSecond: Record<string, number>;
  speedup: number;
  efficiency: number;
  speedupMetric: number | null;
  efficiencyMetric: number | null;
  metricError: number | null;
  loadAverage: [number, number];
  seconds: Record<string, number>;
  cpus: number;
  config: ScalingPlan;
}

/** The report from the two runs' summaries (pure). */
export function scalingResult(
  plan: ScalingPlan,
  one: LocalSummary,
  many: LocalSummary,
  loadAverage: [number, number],
  cpus: number,
): ScalingResult {
  const n = plan.workers;
  const speedup = many.imagesPerSecond / one.imagesPerSecond;
  const metric = many.speedup;
  return {
    workers: n,
    imagesPerSecond: { 1: one.imagesPerSecond, [n]: many.imagesPerSecond },
    speedup,
    efficiency: speedup / n,
    speedupMetric: metric,
    efficiencyMetric: many.scalingEfficiency,
    metricError: metric === null ? null : Math.abs(metric / speedup - 1),
    loadAverage,
    seconds: { 1: one.seconds, [n]: many.seconds },
    cpus,
    config: plan,
  };
}

export const command: CliCommand = {
  name: 'bench scaling',
  summary: 'images/s of local --workers 1 and --workers N on the same data; speedup vs the metric',
  usage,
  async run(argv, ctx) {
    const { plan, cache, json, logLevel } = compilePlan(argv, ctx.env);
    const storage = createStorage({ env: ctx.env });
    const synth = scalingSynthOptions(plan);
    const urls = await ensureSynthDataset(synthCacheDir(path.join(cache, 'data'), synth), synth, {
      storage,
      logger: ctx.logger,
      signal: ctx.signal,
    }).finally(() => storage.close());
    const runs = path.join(cache, 'bench-scaling');
    const before = loadavg()[0]!;
    const summaries: LocalSummary[] = [];
    for (const workers of [1, plan.workers]) {
      const what = `local --workers ${workers}`;
      ctx.logger.info('bench scaling: running', { workers });
      const args = localArgs(plan, urls.train, path.join(runs, `workers-${workers}`), workers);
      const stdout = await runChild([...args, '--log-level', logLevel], ctx, what);
      summaries.push(parseLocalSummary(stdout, what));
    }
    const result = scalingResult(
      plan,
      summaries[0]!,
      summaries[1]!,
      [before, loadavg()[0]!],
      availableParallelism(),
    );
    writeJsonLine(ctx.stdout, result);
    if (!json) ctx.stdout.write(`${describeResult(result)}\n`);
    return 0;
  },
};

function describeResult(r: ScalingResult): string {
  const n = r.workers;
  const metric = r.speedupMetric === null ? 'none' : `${r.speedupMetric.toFixed(2)}x`;
  return (
    `scaling: 1 worker ${r.imagesPerSecond[1]!.toFixed(1)} img/s, ${n} workers ${r.imagesPerSecond[n]!.toFixed(1)} img/s: ` +
    `speedup ${r.speedup.toFixed(2)}x (efficiency ${r.efficiency.toFixed(2)}), metric ${metric}; ` +
    `load average ${r.loadAverage[0].toFixed(2)} -> ${r.loadAverage[1].toFixed(2)} on ${r.cpus} CPUs`
  );
}
