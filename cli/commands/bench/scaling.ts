import { availableParallelism, loadavg } from 'node:os';
import path from 'node:path';
import { ClusterError, UsageError } from '../../../shared/errors.js';
import { createStorage } from '../../../shared/storage/open-storage.js';
import { defaultCacheRoot, ensureSynthDataset, synthCacheDir } from '../../../shared/synth/cache.js';
import { SYNTH_DEFAULTS, type SynthOptions } from '../../../shared/synth/synth-image.js';
import { parseBackendName } from '../../../worker/backend/backend.js';
import { intFlag, parseCommandArgs } from '../../args.js';
import { parseThreadsFlag } from '../../cluster-options.js';
import { type CliCommand, writeJsonLine } from '../../command.js';
import { lastJsonObject, runCliChild } from './child.js';
import { type ComputeCeiling, measureComputeCeiling } from './compute-ceiling.js';

const usage = `Usage: ssd-cluster bench scaling [--workers 2] [--images 2048] [--image-shape 128]
                                    [--mini-batch-size 8] [--base-network tiny] [--backend wasm]
                                    [--epochs 1] [--threads 1] [--seed 0] [--repeat 1]
                                    [--skip-ceiling] [--cache DIR] [--json]

Measures data-parallel scaling on this host: makes (or reuses) a synthetic data set of IMAGES
images of IMAGE_SHAPE px, then runs \`ssd-cluster local --workers 1\` and \`ssd-cluster local
--workers N\` one after the other as child processes (REPEAT times, alternating), on the same data
with the same per-worker batch, and prints one JSON line:
  {"workers": N, "imagesPerSecond": {"1": x, "N": y} (medians over the repeats), "speedup": y/x,
   "efficiency": y/(N x), "runs": {"1": [...], "N": [...]} (images/s of every run),
   "speedupMetric": the median of the N runs' summary speedups (the coordinator's
   ssd_cluster_speedup estimate after its last step), "efficiencyMetric": speedupMetric / N,
   "metricError": |speedupMetric / speedup - 1|, "loadAverage": [1-minute load before the first
   training run, after the last],
   "seconds": {"1", "N"} (training seconds of the runs), "cpus",
   "computeCeiling": {"imagesPerSecond": {"1", "N"}, "speedup", "steps"} (see below, or null;
   with --repeat, the round with the median speedup),
   "efficiencyOfCeiling": speedup / computeCeiling.speedup, and the configuration}
Images per second are each run's summary: images trained / seconds from the start of the first
step to the end of the last (process start, backend and data loading excluded). Every worker
process uses --threads XNNPACK threads (default 1), so N workers need N cores; a busy machine
(see loadAverage) lowers the speedup.
The compute ceiling is what the machine itself allows: \`ssd-cluster bench step\` (the same network,
batch, backend and threads; no data loading, all-reduce or coordinator) alone, then N of them at
once; "speedup" is the sum of the N processes' images/s over the one's. Shared caches and memory
bandwidth, clock boost and a host that lends its cores elsewhere keep it below N.

Options:
  --workers N           workers of the second run, >= 2 (default 2)
  --images N            training images (default 2048: 128 steps of the 2-worker run at batch 8;
                        fewer let its slow first steps weigh more)
  --image-shape PX      synthetic image size and the network's input size (default 128)
  --mini-batch-size B   per-worker batch in both runs (default 8)
  --base-network NAME   tiny (default), vgg-16 or resnet-50
  --backend NAME        the workers' backend (default wasm)
  --epochs E            epochs of each run (default 1)
  --threads N           XNNPACK threads per worker process on wasm (default 1)
  --seed S              data order and initialisation seed (default 0)
  --repeat R            runs of each worker count, alternating 1, N, 1, N, ... (default 1)
  --skip-ceiling        do not measure the compute ceiling
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
  repeat: { type: 'string' },
  'skip-ceiling': { type: 'boolean' },
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
    images: intFlag('images', values.images, { min: 1 }) ?? 2048,
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
  return {
    plan,
    cache,
    repeat: intFlag('repeat', values.repeat, { min: 1, max: 100 }) ?? 1,
    ceiling: values['skip-ceiling'] !== true,
    json: values.json === true,
    logLevel: values['log-level'] ?? 'warn',
  };
}

/** The synthetic data set of a plan: the defaults at the plan's size, no validation split. */
export function scalingSynthOptions(plan: ScalingPlan): SynthOptions {
  return { ...SYNTH_DEFAULTS, train: plan.images, validation: 0, imageSize: plan.imageShape };
}

/**
 * `ssd-cluster local` arguments of one run; both runs differ only in --workers and their folders.
 * From scratch (use_pretrained_model 0): a pretrained base changes no step's cost, and none is fetched.
 */
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
    '--use-pretrained-model',
    '0',
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

export interface ScalingResult {
  workers: number;
  imagesPerSecond: Record<string, number>;
  speedup: number;
  efficiency: number;
  runs: Record<string, number[]>;
  speedupMetric: number | null;
  efficiencyMetric: number | null;
  metricError: number | null;
  loadAverage: [number, number];
  seconds: Record<string, number>;
  cpus: number;
  computeCeiling: ComputeCeiling | null;
  efficiencyOfCeiling: number | null;
  config: ScalingPlan;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The report from the runs' summaries (pure): medians over the repeats of each worker count. */
export function scalingResult(
  plan: ScalingPlan,
  ones: readonly LocalSummary[],
  manys: readonly LocalSummary[],
  measured: { loadAverage: [number, number]; cpus: number; ceiling: ComputeCeiling | null },
): ScalingResult {
  const n = plan.workers;
  const rate = (runs: readonly LocalSummary[]) => median(runs.map((r) => r.imagesPerSecond));
  const speedup = rate(manys) / rate(ones);
  const metrics = manys.flatMap((r) => (r.speedup === null ? [] : [r.speedup]));
  const metric = metrics.length === manys.length && metrics.length > 0 ? median(metrics) : null;
  const ceiling = measured.ceiling;
  return {
    workers: n,
    imagesPerSecond: { 1: rate(ones), [n]: rate(manys) },
    speedup,
    efficiency: speedup / n,
    runs: { 1: ones.map((r) => r.imagesPerSecond), [n]: manys.map((r) => r.imagesPerSecond) },
    speedupMetric: metric,
    efficiencyMetric: metric === null ? null : metric / n,
    metricError: metric === null ? null : Math.abs(metric / speedup - 1),
    loadAverage: measured.loadAverage,
    seconds: { 1: median(ones.map((r) => r.seconds)), [n]: median(manys.map((r) => r.seconds)) },
    cpus: measured.cpus,
    computeCeiling: ceiling,
    efficiencyOfCeiling: ceiling === null ? null : speedup / ceiling.speedup,
    config: plan,
  };
}

export const command: CliCommand = {
  name: 'bench scaling',
  summary: 'images/s of local --workers 1 and --workers N on the same data; speedup vs the metric',
  usage,
  async run(argv, ctx) {
    const { plan, cache, repeat, ceiling, json, logLevel } = compilePlan(argv, ctx.env);
    const storage = createStorage({ env: ctx.env });
    const synth = scalingSynthOptions(plan);
    const urls = await ensureSynthDataset(synthCacheDir(path.join(cache, 'data'), synth), synth, {
      storage,
      logger: ctx.logger,
      signal: ctx.signal,
    }).finally(() => storage.close());
    const runs = path.join(cache, 'bench-scaling');
    const before = loadavg()[0]!;
    const summaries: Record<number, LocalSummary[]> = { 1: [], [plan.workers]: [] };
    for (let round = 0; round < repeat; round++) {
      for (const workers of [1, plan.workers]) {
        const what = `local --workers ${workers}`;
        ctx.logger.info('bench scaling: running', { workers, round });
        const args = localArgs(plan, urls.train, path.join(runs, `workers-${workers}`), workers);
        const stdout = await runCliChild('bench scaling', [...args, '--log-level', logLevel], ctx, what);
        summaries[workers]!.push(parseLocalSummary(stdout, what));
      }
    }
    const after = loadavg()[0]!;
    const measuredCeiling = ceiling ? await measureComputeCeiling(plan, ctx, repeat) : null;
    const result = scalingResult(plan, summaries[1]!, summaries[plan.workers]!, {
      loadAverage: [before, after],
      cpus: availableParallelism(),
      ceiling: measuredCeiling,
    });
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
    (r.computeCeiling === null
      ? ''
      : `compute alone scales ${r.computeCeiling.speedup.toFixed(2)}x here (${r.efficiencyOfCeiling!.toFixed(2)} of it reached); `) +
    `load average ${r.loadAverage[0].toFixed(2)} -> ${r.loadAverage[1].toFixed(2)} on ${r.cpus} CPUs`
  );
}
