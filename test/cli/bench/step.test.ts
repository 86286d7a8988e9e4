import test from 'ava';
import { runCli } from '../../helpers/run-cli.js';

test('bench step prints the median of the timed steps and the images per second it implies', async (t) => {
  const run = await runCli([
    'bench',
    'step',
    '--base-network',
    'tiny',
    '--image-shape',
    '64',
    '--batch-size',
    '2',
    '--num-classes',
    '3',
    '--backend',
    'wasm',
    '--warmup',
    '1',
    '--steps',
    '3',
    '--json',
  ]);
  t.is(run.code, 0, run.stderr);
  const result = JSON.parse(run.stdout);
  t.like(result, { backend: 'wasm', batchSize: 2, baseNetwork: 'tiny', imageShape: 64, steps: 3 });
  t.is(result.stepSeconds.length, 3);
  const sorted = [...result.stepSeconds].sort((a: number, b: number) => a - b);
  t.is(result.medianStepSeconds, sorted[1]);
  t.true(Math.abs(result.imagesPerSecond - 2 / result.medianStepSeconds) < 0.01 * result.imagesPerSecond);
  t.true(result.phases.compute > 0);
});

test('bench step rejects an unknown base network', async (t) => {
  const run = await runCli(['bench', 'step', '--base-network', 'vgg-19', '--json']);
  t.is(run.code, 2);
  t.regex(run.stderr, /--base-network: expected one of vgg-16, resnet-50, tiny, got 'vgg-19'/);
});

test('bench step takes --use-pretrained-model 0 or 1 only', async (t) => {
  const run = await runCli([
    'bench',
    'step',
    '--base-network',
    'tiny',
    '--use-pretrained-model',
    '2',
    '--json',
  ]);
  t.is(run.code, 2);
  t.regex(run.stderr, /--use-pretrained-model: expected an integer >= 0 and <= 1, got '2'/);
});
