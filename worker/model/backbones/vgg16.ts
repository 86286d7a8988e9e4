import type { NamedSource, NetOps } from './layers.js';

/**
 * VGG-16 reduced for SSD (weiliu89/caffe `ssd` branch; GluonCV vgg_atrous.py), NHWC.
 *
 * Base (what an ImageNet-pretrained `--pretrained-base` provides), layer names as in MXNet's
 * vgg16-symbol.json: conv1_1 .. conv5_3 (3x3 pad 1 + ReLU), pool1-4 2x2 stride 2 with caffe's ceil
 * rounding (tfjs 'same': 75 -> 38 at 300), pool5 3x3 stride 1 pad 1, then the atrous classifier:
 * fc6 = 3x3 conv with dilation 6 and pad 6 (1024 channels), fc7 = 1x1 conv (1024). No dropout, no fc8.
 *
 * SSD layers (trained from scratch), caffe names:
 * - conv4_3_norm: L2 normalisation of conv4_3 with a learned per-channel scale initialised to 20.
 * - extras for image_shape < 512 (the SSD300 topology): conv6_1 1x1 256 / conv6_2 3x3 512 s2 p1,
 *   conv7_1 128 / conv7_2 256 s2 p1, conv8_1 128 / conv8_2 256 valid, conv9_1 128 / conv9_2 256 valid.
 *   At 300 the sources are 38, 19, 10, 5, 3, 1.
 * - extras for image_shape >= 512 (SSD512): conv6..conv9 as 1x1 + 3x3 s2 p1 (512, 256, 256, 256), then
 *   conv10_1 128 / conv10_2 256 with a 4x4 kernel, stride 1, pad 1. At 512: 64, 32, 16, 8, 4, 2, 1.
 * The same arithmetic is `vggFeatureSizes` in anchors.ts; ssd.ts checks the two agree.
 */
const BLOCKS: readonly (readonly [filters: number, convs: number])[] = [
  [64, 2],
  [128, 2],
  [256, 3],
  [512, 3],
  [512, 3],
];

/** Returns [conv4_3 (after ReLU), fc7 (after ReLU)]. */
export function vgg16Base<T>(ops: NetOps<T>, images: T): T[] {
  let x = images;
  let conv4_3 = images;
  BLOCKS.forEach(([filters, convs], b) => {
    for (let i = 1; i <= convs; i++) {
      x = ops.conv(`conv${b + 1}_${i}`, x, { filters, kernel: 3, pad: 1, relu: true });
    }
    if (b === 3) conv4_3 = x;
    x =
      b < 4
        ? ops.maxPool(x, { size: 2, stride: 2, pad: 'same' })
        : ops.maxPool(x, { size: 3, stride: 1, pad: 1 });
  });
  x = ops.conv('fc6', x, { filters: 1024, kernel: 3, pad: 6, dilation: 6, relu: true });
  x = ops.conv('fc7', x, { filters: 1024, kernel: 1, relu: true });
  return [conv4_3, x];
}

interface ExtraStage {
  bottleneck: number;
  filters: number;
  kernel: number;
  stride: number;
  pad: number;
}

const stage = (
  bottleneck: number,
  filters: number,
  kernel: number,
  stride: number,
  pad: number,
): ExtraStage => ({
  bottleneck,
  filters,
  kernel,
  stride,
  pad,
});

const EXTRAS_300 = [
  stage(256, 512, 3, 2, 1),
  stage(128, 256, 3, 2, 1),
  stage(128, 256, 3, 1, 0),
  stage(128, 256, 3, 1, 0),
];
const EXTRAS_512 = [
  stage(256, 512, 3, 2, 1),
  stage(128, 256, 3, 2, 1),
  stage(128, 256, 3, 2, 1),
  stage(128, 256, 3, 2, 1),
  stage(128, 256, 4, 1, 1),
];

/** L2Norm on conv4_3, fc7, then the extra stages; one source per SSD head, in anchor order. */
export function vgg16Extras<T>(ops: NetOps<T>, base: T[], imageShape: number): NamedSource<T>[] {
  const [conv4_3, fc7] = base as [T, T];
  const sources: NamedSource<T>[] = [
    { name: 'conv4_3_norm', value: ops.l2Norm('conv4_3_norm', conv4_3, 20) },
    { name: 'fc7', value: fc7 },
  ];
  let x = fc7;
  (imageShape < 512 ? EXTRAS_300 : EXTRAS_512).forEach((s, i) => {
    const n = i + 6;
    x = ops.conv(`conv${n}_1`, x, { filters: s.bottleneck, kernel: 1, relu: true });
    x = ops.conv(`conv${n}_2`, x, {
      filters: s.filters,
      kernel: s.kernel,
      stride: s.stride,
      pad: s.pad,
      relu: true,
    });
    sources.push({ name: `conv${n}_2`, value: x });
  });
  return sources;
}
