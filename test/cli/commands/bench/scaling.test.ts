import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'ava';
import { ceilingFrom, medianCeiling, stepArgs } from '../../../../cli/commands/bench/compute-ceiling.js';
import {
  type LocalSummary,
  localArgs,
  parseLocalSummary,
  type ScalingPlan,
  scalingResult,
  scalingSynthOptions,
} from '../../../../cli/commands/bench/scaling.js';
import { synthCacheDir } from '../../../../shared/synth/cache.js';
import { runCli } from '../../../helpers/run-cli.js';

const PLAN: ScalingPlan = {
  workers: 3,
  images: 96,
  imageShape: 64,
  miniBatchSize: 4,
  baseNetwork: 'tiny',
  backend: 'wasm',
  epochs: 1,
  threads: 1,
  seed: 0,
};

const summary = (imagesPerSecond: number, speedup: number | null): LocalSummary => ({
  images: 96,
  seconds: 96 / imagesPerSecond,
  imagesPerSecond,
  workers: 1,
  speedup,
  scalingEfficiency: speedup === null ? null : speedup / 3,
});

/** The `backend ready` log lines of a run's worker logs. */
async function backendLines(runDir: string, workers: number) {
  const lines = [];
  for (let i = 0; i < workers; i++) {
    const log = await readFile(path.join(runDir, 'logs', `worker-${i}.log`), 'utf8');
    for (const line of log.split('\n')) {
      if (line.includes('"backend ready"')) lines.push(JSON.parse(line) as { threads: number });
    }
  }
  return lines;
}

test('bench scaling runs local with 1 and 2 workers and reports a consistent speedup', async (t) => {
  const cache = await mkdtemp(path.join(tmpdir(), 'ssd-bench-scaling-'));
  t.teardown(() => rm(cache, { recursive: true, force: true }));
  const argv = [
    'bench',
    'scaling',
    '--images',
    '32',
    '--image-shape',
    '64',
    '--mini-batch-size',
    '4',
    '--repeat',
    '2',
  ];
  const run = await runCli([...argv, '--threads', '2', '--cache', cache, '--log-level', 'info', '--json'], {
    env: process.env,
    signal: AbortSignal.timeout(240_000),
  });
  t.is(run.code, 0, run.stderr.slice(-3000));
  const result = JSON.parse(run.stdout);
  t.is(result.workers, 2);
  t.deepEqual(Object.keys(result.imagesPerSecond).sort(), ['1', '2']);
  const [one, two] = [result.imagesPerSecond['1'], result.imagesPerSecond['2']];
  t.true(one > 0 && two > 0, `images/s ${one}, ${two}`);
  t.is(result.runs['1'].length, 2);
  t.is(result.runs['2'].length, 2);
  for (const n of ['1', '2']) {
    const [a, b] = result.runs[n];
    t.true(Math.abs(result.imagesPerSecond[n] - (a + b) / 2) < 1e-9, `run ${n}: the median of two`);
  }
  t.is(result.speedup, two / one);
  const ceiling = result.computeCeiling;
  t.deepEqual(Object.keys(ceiling.imagesPerSecond).sort(), ['1', '2']);
  t.true(ceiling.imagesPerSecond['1'] > 0 && ceiling.imagesPerSecond['2'] > 0);
  t.is(ceiling.speedup, ceiling.imagesPerSecond['2'] / ceiling.imagesPerSecond['1']);
  t.is(result.efficiencyOfCeiling, result.speedup / ceiling.speedup);
  t.is(result.efficiency, result.speedup / 2);
  t.true(result.speedupMetric > 0, `metric ${result.speedupMetric}`);
  t.true(Math.abs(result.efficiencyMetric - result.speedupMetric / 2) < 1e-12);
  t.is(result.metricError, Math.abs(result.speedupMetric / result.speedup - 1));
  t.is(result.loadAverage.length, 2);
  t.true(result.loadAverage.every((x: number) => x >= 0));
  t.deepEqual(result.config, { ...PLAN, workers: 2, images: 32, miniBatchSize: 4, threads: 2 });
  const data = synthCacheDir(path.join(cache, 'data'), scalingSynthOptions(result.config));
  t.truthy(await stat(path.join(data, 'train.rec')), 'the data set is in the cache');
  // --threads reaches every worker of both runs through local's job (coordinator --threads).
  const ready = [
    ...(await backendLines(path.join(cache, 'bench-scaling', 'workers-1'), 1)),
    ...(await backendLines(path.join(cache, 'bench-scaling', 'workers-2'), 2)),
  ];
  t.deepEqual(
    ready.map((l) => l.threads),
    [2, 2, 2],
  );
});

test('bench scaling rejects fewer images than one global batch, naming the flags', async (t) => {
  const run = await runCli(['bench', 'scaling', '--workers', '4', '--images', '20', '--json']);
  t.is(run.code, 2);
  t.regex(run.stderr, /--images 20 is less than one global batch .* = 32/);
});

const MEASURED = { loadAverage: [1.5, 2.5] as [number, number], cpus: 4, ceiling: null };

test('scalingResult divides the N-worker rate by the 1-worker rate and compares the metric', (t) => {
  const result = scalingResult(PLAN, [summary(10, null)], [summary(24, 2.7)], MEASURED);
  t.deepEqual(result.imagesPerSecond, { 1: 10, 3: 24 });
  t.is(result.speedup, 2.4);
  t.is(result.efficiency, 2.4 / 3);
  t.deepEqual(result.runs, { 1: [10], 3: [24] });
  t.is(result.speedupMetric, 2.7);
  t.is(result.efficiencyMetric, 0.9);
  t.true(Math.abs(result.metricError! - 0.125) < 1e-12);
  t.deepEqual(result.seconds, { 1: 9.6, 3: 4 });
  t.deepEqual(result.loadAverage, [1.5, 2.5]);
  t.is(result.computeCeiling, null);
  t.is(result.efficiencyOfCeiling, null);
  t.is(scalingResult(PLAN, [summary(10, null)], [summary(24, null)], MEASURED).metricError, null);
});

test('scalingResult takes medians over repeated runs and relates the speedup to the compute ceiling', (t) => {
  const ones = [summary(10, null), summary(14, null), summary(12, null)];
  const manys = [summary(30, 2.9), summary(24, 2.7), summary(27, 2.0)];
  const ceiling = ceilingFrom(12, [10, 11, 9], 20);
  const result = scalingResult(PLAN, ones, manys, { ...MEASURED, ceiling });
  t.deepEqual(result.imagesPerSecond, { 1: 12, 3: 27 });
  t.deepEqual(result.runs, { 1: [10, 14, 12], 3: [30, 24, 27] });
  t.is(result.speedup, 27 / 12);
  t.is(result.speedupMetric, 2.7);
  t.is(result.efficiencyMetric, 0.9);
  t.deepEqual(result.seconds, { 1: 96 / 12, 3: 96 / 27 });
  t.deepEqual(ceiling, { imagesPerSecond: { 1: 12, 3: 30 }, speedup: 2.5, steps: 20 });
  t.is(result.efficiencyOfCeiling, 27 / 12 / 2.5);
  const even = scalingResult(PLAN, ones.slice(0, 2), manys.slice(0, 2), MEASURED);
  t.deepEqual(even.imagesPerSecond, { 1: 12, 3: 27 }, 'the mean of the middle two');
  const partlyNull = scalingResult(PLAN, ones, [summary(30, null), ...manys.slice(1)], MEASURED);
  t.is(partlyNull.speedupMetric, null, 'no metric unless every N-worker run has one');
});

test('medianCeiling keeps the round with the median speedup, the lower middle for an even count', (t) => {
  const rounds = [ceilingFrom(10, [9, 9], 20), ceilingFrom(10, [6, 6], 20), ceilingFrom(10, [8, 8], 20)];
  t.is(medianCeiling(rounds), rounds[2]!);
  t.is(medianCeiling(rounds.slice(0, 2)), rounds[1]!);
  t.is(medianCeiling([rounds[0]!]), rounds[0]!);
  t.throws(() => medianCeiling([]), { message: /no ceilings/ });
});

test('the compute ceiling runs bench step on the network, batch, backend and threads of local', (t) => {
  const step = stepArgs(PLAN);
  const local = localArgs(PLAN, '/data/train.rec', '/runs/workers-3', 3);
  const value = (args: string[], flag: string) => args[args.indexOf(flag) + 1];
  for (const [stepFlag, localFlag] of [
    ['--base-network', '--base-network'],
    ['--image-shape', '--image-shape'],
    ['--batch-size', '--mini-batch-size'],
    ['--num-classes', '--num-classes'],
    ['--backend', '--backend'],
    ['--threads', '--threads'],
  ]) {
    t.is(value(step, stepFlag!), value(local, localFlag!), stepFlag);
  }
  t.deepEqual(step.slice(0, 2), ['bench', 'step']);
  t.true(step.includes('--json'));
});

test('localArgs train from scratch, so a resnet-50 or vgg-16 run needs no pretrained base', (t) => {
  const local = localArgs({ ...PLAN, baseNetwork: 'resnet-50' }, '/data/train.rec', '/runs/workers-1', 1);
  t.is(local[local.indexOf('--use-pretrained-model') + 1], '0');
});

test('localArgs differ between the two runs only in the worker count and the run folder', (t) => {
  const one = localArgs(PLAN, '/data/train.rec', '/runs/workers-1', 1);
  const many = localArgs(PLAN, '/data/train.rec', '/runs/workers-3', 3);
  const differing = one.flatMap((word, i) => (word === many[i] ? [] : [[word, many[i]]]));
  t.deepEqual(differing, [
    ['1', '3'],
    ['/runs/workers-1', '/runs/workers-3'],
    ['/runs/workers-1/model', '/runs/workers-3/model'],
  ]);
  t.is(one[one.indexOf('--mini-batch-size') + 1], '4', 'the same per-worker batch');
});

test('parseLocalSummary takes the last JSON line and names missing fields', (t) => {
  const line = JSON.stringify({ ...summary(12, 1.9), modelDir: '/m' });
  t.is(parseLocalSummary(`{"note":1}\n${line}\nssd-cluster local: done\n`, 'run').imagesPerSecond, 12);
  const error = t.throws(() => parseLocalSummary('{"images": 3}\n', 'local --workers 2'));
  t.regex(error.message, /local --workers 2 printed no summary \(missing seconds, imagesPerSecond/);
  t.throws(() => parseLocalSummary('not json\n', 'run'), { message: /missing the whole line/ });
});
