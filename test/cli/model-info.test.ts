import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import test from 'ava';
import { main } from '../../cli/main.js';
import { noopLogger } from '../../shared/logging.js';
import { anchorConfig, generateAnchors } from '../../worker/model/anchors.js';

async function run(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const streams = { stdout: new PassThrough(), stderr: new PassThrough() };
  const text = { stdout: '', stderr: '' };
  for (const key of ['stdout', 'stderr'] as const) {
    streams[key].on('data', (c: Buffer) => {
      text[key] += c.toString();
    });
  }
  const code = await main(['model-info', ...argv], { ...streams, logger: noopLogger });
  return { code, ...text };
}

test('model-info --json gives the vgg-16 SSD300 anchors, parameters and feature maps', async (t) => {
  const { code, stdout } = await run([
    '--base-network',
    'vgg-16',
    '--image-shape',
    '300',
    '--num-classes',
    '20',
    '--json',
  ]);
  t.is(code, 0);
  t.deepEqual(JSON.parse(stdout), {
    baseNetwork: 'vgg-16',
    imageShape: 300,
    numClasses: 20,
    anchors: 8732,
    parameters: 26_285_486,
    trainableParameters: 26_285_486,
    featureMaps: [
      [38, 38, 4],
      [19, 19, 6],
      [10, 10, 6],
      [5, 5, 6],
      [3, 3, 4],
      [1, 1, 4],
    ],
  });
});

test('model-info prints a table for resnet-50 at 512 with one row per anchor layer', async (t) => {
  const { code, stdout } = await run([
    '--base-network',
    'resnet-50',
    '--image-shape',
    '512',
    '--num-classes',
    '20',
  ]);
  t.is(code, 0);
  const lines = stdout.trimEnd().split('\n');
  t.is(lines[0], 'SSD resnet-50, image 512x512, 20 classes + background');
  t.regex(lines[1]!, /^layer\s+feature map\s+boxes\/cell\s+anchors\s+step\s+min size\s+max size$/);
  t.regex(lines[2]!, /^stage3\s+32x32\s+4\s+4,096\s+16\s+51\.2\s+102\.4$/);
  t.is(lines.length, 2 + 6 + 2);
  t.regex(stdout, /anchors\s+6,132\n/);
  t.regex(stdout, /parameters\s+[\d,]+ \(trainable [\d,]+\)/);
});

test('model-info --dump-anchors writes every tiny anchor in prediction order', async (t) => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'model-info-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'anchors.json');
  const { code, stdout } = await run([
    '--base-network',
    'tiny',
    '--image-shape',
    '96',
    '--num-classes',
    '2',
    '--dump-anchors',
    file,
    '--json',
  ]);
  t.is(code, 0);
  const boxes = JSON.parse(await fs.readFile(file, 'utf8')) as number[][];
  t.is(boxes.length, JSON.parse(stdout).anchors);
  const expected = generateAnchors(anchorConfig('tiny', 96));
  t.is(boxes.length * 4, expected.length);
  boxes.forEach((box, i) => {
    box.forEach((v, j) => {
      t.true(Math.abs(v - expected[i * 4 + j]!) <= 1e-6 * Math.max(1, Math.abs(v)), `anchor ${i}[${j}]`);
    });
  });
});

test('model-info names the bad flag and exits 2', async (t) => {
  const bad = await run(['--base-network', 'vgg-19', '--num-classes', '3']);
  t.is(bad.code, 2);
  t.regex(bad.stderr, /--base-network: expected one of vgg-16, resnet-50, tiny, got 'vgg-19'/);
  const missing = await run(['--base-network', 'tiny', '--image-shape', '64']);
  t.is(missing.code, 2);
  t.regex(missing.stderr, /--num-classes is required/);
  const size = await run(['--base-network', 'tiny', '--image-shape', '100', '--num-classes', '3']);
  t.is(size.code, 2);
  t.regex(size.stderr, /image_shape: for tiny must be a multiple of 32 and >= 64, got 100/);
});

test('model-info --use-pretrained-model 0 counts resnet-50 base BatchNorm affines as trainable, 1 (the default) does not', async (t) => {
  const info = async (...flags: string[]) => {
    const { code, stdout } = await run([
      '--base-network',
      'resnet-50',
      '--num-classes',
      '20',
      '--json',
      ...flags,
    ]);
    t.is(code, 0);
    return JSON.parse(stdout) as { parameters: number; trainableParameters: number };
  };
  const [byDefault, pretrained, scratch] = [
    await info(),
    await info('--use-pretrained-model', '1'),
    await info('--use-pretrained-model', '0'),
  ];
  t.deepEqual(byDefault, pretrained);
  t.is(scratch.parameters, pretrained.parameters, 'the same tensors either way');
  // From scratch, each base BatchNorm adds its gamma and beta: 2 x the base's BatchNorm channels,
  // bn0 (64) plus bn1/bn2 (width), bn3 (4 x width) per unit and sc_bn (4 x width) per stage.
  const stages = [
    { units: 3, width: 64 },
    { units: 4, width: 128 },
    { units: 6, width: 256 },
    { units: 3, width: 512 },
  ];
  const channels = 64 + stages.reduce((sum, s) => sum + s.units * 6 * s.width + 4 * s.width, 0);
  t.is(scratch.trainableParameters - pretrained.trainableParameters, 2 * channels);
  const bad = await run(['--num-classes', '20', '--use-pretrained-model', 'yes']);
  t.is(bad.code, 2);
  t.regex(bad.stderr, /--use-pretrained-model: expected an integer >= 0 and <= 1, got 'yes'/);
});
