import test from 'ava';
import { isClusterError } from '../../../shared/errors.js';
import {
  type AnchorConfig,
  anchorConfig,
  anchorsPerCell,
  type BaseNetwork,
  countAnchors,
  generateAnchors,
} from '../../../worker/model/anchors.js';

function closeTo(t: { true(v: boolean, m?: string): void }, actual: ArrayLike<number>, expected: number[]) {
  const ok = expected.every((e, k) => Math.abs((actual[k] ?? Number.NaN) - e) < 1e-5);
  t.true(ok, `expected ${expected.join(', ')}, got ${Array.from(actual).join(', ')}`);
}

function boxAt(anchors: Float32Array, index: number) {
  return anchors.subarray(index * 4, index * 4 + 4);
}

/** Index of the first anchor of a layer. */
function layerStart(config: AnchorConfig, layerIndex: number): number {
  let start = 0;
  for (const layer of config.layers.slice(0, layerIndex)) {
    start += layer.featureSize ** 2 * anchorsPerCell(layer);
  }
  return start;
}

const counts: [BaseNetwork, number, number, number[]][] = [
  ['vgg-16', 300, 8732, [38, 19, 10, 5, 3, 1]],
  ['vgg-16', 512, 24564, [64, 32, 16, 8, 4, 2, 1]],
  ['resnet-50', 512, 6132, [32, 16, 8, 4, 2, 1]],
  ['resnet-50', 300, 2268, [19, 10, 5, 3, 2, 1]],
  ['tiny', 128, 1520, [16, 8, 4, 2]],
  ['tiny', 96, 862, [12, 6, 3, 2]],
];

for (const [net, size, total, features] of counts) {
  test(`anchorConfig ${net} at ${size} has feature sizes ${features.join(',')} and ${total} anchors`, (t) => {
    const config = anchorConfig(net, size);
    t.deepEqual(
      config.layers.map((l) => l.featureSize),
      features,
    );
    t.is(countAnchors(config), total);
    t.is(generateAnchors(config).length, total * 4);
  });
}

test('generateAnchors gives the SSD300 VOC first and last boxes from the SPEC', (t) => {
  const anchors = generateAnchors(anchorConfig('vgg-16', 300));
  closeTo(t, boxAt(anchors, 0), [0.013333, 0.013333, 0.1, 0.1]);
  closeTo(t, boxAt(anchors, 8731), [0.5, 0.5, 0.622254, 1.244508]);
});

test('generateAnchors orders boxes in a cell as min, sqrt(min*max), 2, 1/2, 3, 1/3', (t) => {
  const config = anchorConfig('vgg-16', 300);
  const anchors = generateAnchors(config);
  // fc7 (60 / 111 px, ratios 2 and 3): the first cell is centred at (8, 8) px.
  const start = layerStart(config, 1);
  const c = 8 / 300;
  const big = Math.sqrt(60 * 111) / 300;
  const m = 60 / 300;
  const expected = [
    [c, c, m, m],
    [c, c, big, big],
    [c, c, m * Math.SQRT2, m / Math.SQRT2],
    [c, c, m / Math.SQRT2, m * Math.SQRT2],
    [c, c, m * Math.sqrt(3), m / Math.sqrt(3)],
    [c, c, m / Math.sqrt(3), m * Math.sqrt(3)],
  ];
  for (const [b, box] of expected.entries()) closeTo(t, boxAt(anchors, start + b), box);
});

test('generateAnchors walks rows then columns with centres at (j + 0.5) * step', (t) => {
  const config = anchorConfig('vgg-16', 300);
  const anchors = generateAnchors(config);
  // conv8_2: 3x3 cells, step 100, 4 boxes per cell. Cell (row 1, col 2) is the 6th cell of the layer.
  const start = layerStart(config, 4) + (1 * 3 + 2) * 4;
  closeTo(t, boxAt(anchors, start), [2.5 / 3, 1.5 / 3, 213 / 300, 213 / 300]);
});

test('anchorConfig vgg-16 at 512 uses the caffe first size 35.84', (t) => {
  const config = anchorConfig('vgg-16', 512);
  t.is(config.layers[0]!.minSize, 35.84);
  t.deepEqual(
    config.layers.map((l) => l.step),
    [8, 16, 32, 64, 128, 256, 512],
  );
  t.deepEqual(config.layers.map(anchorsPerCell), [4, 6, 6, 6, 6, 4, 4]);
});

test('anchorConfig resnet-50 at 512 reproduces the GluonCV sizes and steps', (t) => {
  const config = anchorConfig('resnet-50', 512);
  t.deepEqual(
    config.layers.map((l) => [l.minSize, l.maxSize, l.step]),
    [
      [51.2, 102.4, 16],
      [102.4, 189.4, 32],
      [189.4, 276.4, 64],
      [276.4, 363.52, 128],
      [363.52, 450.6, 256],
      [450.6, 492, 512],
    ],
  );
});

test('anchorConfig resnet-50 at 300 scales sizes by 300/512 and steps by ceil(S / featureSize)', (t) => {
  const config = anchorConfig('resnet-50', 300);
  t.deepEqual(
    config.layers.map((l) => l.step),
    [16, 30, 60, 100, 150, 300],
  );
  t.true(Math.abs(config.layers[0]!.minSize - 30) < 1e-9);
  t.true(Math.abs(config.layers[5]!.maxSize - (492 * 300) / 512) < 1e-9);
});

test('anchorConfig vgg-16 at 400 follows the SSD300 topology with sizes scaled linearly', (t) => {
  const config = anchorConfig('vgg-16', 400);
  t.deepEqual(
    config.layers.map((l) => l.featureSize),
    [50, 25, 13, 7, 5, 3],
  );
  t.true(Math.abs(config.layers[0]!.minSize - 40) < 1e-9);
  t.true(Math.abs(config.layers[5]!.maxSize - 420) < 1e-9);
  t.deepEqual(
    config.layers.map((l) => l.step),
    [8, 16, 31, 58, 80, 134],
  );
});

test('anchorConfig vgg-16 at 640 follows the SSD512 topology', (t) => {
  const config = anchorConfig('vgg-16', 640);
  t.deepEqual(
    config.layers.map((l) => l.featureSize),
    [80, 40, 20, 10, 5, 3, 2],
  );
});

test('anchorConfig tiny spans objects from 10% to 90% of the image at strides 8 to 64', (t) => {
  const config = anchorConfig('tiny', 128);
  t.deepEqual(
    config.layers.map((l) => l.step),
    [8, 16, 32, 64],
  );
  t.true(Math.abs(config.layers[0]!.minSize - 12.8) < 1e-9);
  t.true(Math.abs(config.layers[3]!.maxSize - 0.9 * 128) < 1e-9);
  t.deepEqual(
    config.layers.map((l) => l.ratios),
    [[2], [2, 3], [2, 3], [2]],
  );
});

test('anchorConfig rejects sizes the network cannot take, naming image_shape', (t) => {
  for (const [net, size] of [
    ['tiny', 100],
    ['tiny', 32],
    ['vgg-16', 256],
    ['resnet-50', 299.5],
  ] as [BaseNetwork, number][]) {
    const err = t.throws(() => anchorConfig(net, size));
    t.true(isClusterError(err, 'CONFIG'));
    t.regex(err.message, /image_shape/);
  }
  const err = t.throws(() => anchorConfig('vgg-19' as BaseNetwork, 300));
  t.regex(err.message, /base_network/);
});

test('generateAnchors keeps every centre inside the image for the rule-based steps', (t) => {
  for (const [net, size] of [
    ['resnet-50', 300],
    ['vgg-16', 400],
    ['tiny', 96],
  ] as [BaseNetwork, number][]) {
    const anchors = generateAnchors(anchorConfig(net, size));
    let maxCentre = 0;
    for (let k = 0; k < anchors.length; k += 4) maxCentre = Math.max(maxCentre, anchors[k]!, anchors[k + 1]!);
    t.true(maxCentre <= 1, `${net} ${size}: a centre at ${maxCentre}`);
  }
});
