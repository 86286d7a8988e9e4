import type { BaseOptions, BatchNormSpec, NamedSource, NetOps } from './layers.js';

/**
 * ResNet-50 v1 as in the Gluon model zoo (`resnet50_v1`, used by GluonCV ssd_512_resnet50_v1), NHWC.
 *
 * - conv0 7x7 stride 2 pad 3 (no bias), bn0, ReLU, max-pool 3x3 stride 2 pad 1.
 * - stages 1-4 of 3, 4, 6, 3 bottlenecks with 256, 512, 1024, 2048 output channels; the first unit of
 *   stages 2-4 has stride 2, put on its first 1x1 conv (Gluon BottleneckV1, not the 3x3 as in v1b).
 *   Unit: conv1 1x1 (bias, as Gluon), bn1, ReLU, conv2 3x3 pad 1 (no bias), bn2, ReLU, conv3 1x1 (bias), bn3;
 *   the first unit of a stage adds a projection shortcut `sc` 1x1 (no bias) + `sc_bn`; sum, ReLU.
 * Names follow MXNet's resnet symbols (conv0, bn0, stage1_unit1_conv1, stage1_unit1_bn1, stage1_unit1_sc,
 * ...), so a `freeze_layer_pattern` like `^(conv0|bn0|stage1_)` works.
 *
 * BatchNorms never use batch statistics: each normalises with its stored moving statistics, whatever
 * the batch, which keeps N workers equal to one process. What trains depends on the base's origin:
 * - pretrained (SsdModelConfig.pretrainedBase, true by default): every base BatchNorm is frozen, gamma
 *   and beta included (detectron's FrozenBatchNorm2d), as is usual when fine-tuning detectors with
 *   small per-worker batches; all four tensors keep the loaded values.
 * - from scratch: the statistics stay at mean 0 / variance 1, so a BatchNorm is a per-channel affine;
 *   gamma and beta are trained, and the last BatchNorm of each residual branch (`<unit>_bn3`) starts
 *   with gamma 0 ("zero-gamma", Goyal et al. 2017, Accurate, Large Minibatch SGD, section 5.1;
 *   torchvision's zero_init_residual; the projection shortcuts' `_sc_bn` keep gamma 1), so every
 *   bottleneck starts as its shortcut. With identity BatchNorms instead, the 16 branches add their
 *   variance unit after unit (nothing normalises them): at 300 px, batch 1, the initial loss was ~1100
 *   and the gradient norm ~35k, and the first SGD step diverged; zero-gamma starts at ~10 and ~20.
 *   Training the affine terms alone does not help (~35k again): the zero gammas do. A
 *   freeze_layer_pattern matching a unit freezes its BatchNorms too, so that unit stays its shortcut.
 *
 * SSD sources: end of stage 3 (GluonCV `stage3_activation5`, stride 16) and end of stage 4
 * (`stage4_activation2`, stride 32), then GluonCV's FeatureExpander with 512, 512, 256, 256 filters:
 * expand_trans_conv{i} 1x1 max(128, f) + expand_trans_bn{i} + ReLU, expand_conv{i} 3x3 stride 2 pad 1
 * + expand_bn{i} + ReLU (convs without bias). These BatchNorms are new layers whatever the base: their
 * statistics stay at mean 0 / variance 1 and their gamma/beta are trained (a learned per-channel
 * affine). At 512: 32, 16, 8, 4, 2, 1; at 300: 19, 10, 5, 3, 2, 1.
 */
const STAGES: readonly { units: number; channels: number; stride: number }[] = [
  { units: 3, channels: 256, stride: 1 },
  { units: 4, channels: 512, stride: 2 },
  { units: 6, channels: 1024, stride: 2 },
  { units: 3, channels: 2048, stride: 2 },
];

const EXPANDER_FILTERS = [512, 512, 256, 256];

const FROZEN: BatchNormSpec = { trainAffine: false };
const TRAINED: BatchNormSpec = { trainAffine: true };

/** The BatchNorm specs of the base (see the header). */
interface BaseNorms {
  /** bn0, every `_bn1` and `_bn2`, and the projection shortcuts' `_sc_bn`. */
  inner: BatchNormSpec;
  /** `_bn3`, the last layer of each residual branch. */
  residualEnd: BatchNormSpec;
}

const PRETRAINED_NORMS: BaseNorms = { inner: FROZEN, residualEnd: FROZEN };
const SCRATCH_NORMS: BaseNorms = { inner: TRAINED, residualEnd: { trainAffine: true, gammaInit: 0 } };

interface UnitSpec {
  channels: number;
  stride: number;
  /** The first unit of a stage: a projection shortcut instead of the identity. */
  project: boolean;
}

function bottleneck<T>(ops: NetOps<T>, unit: string, x: T, spec: UnitSpec, norms: BaseNorms): T {
  const { channels, stride, project } = spec;
  const width = channels / 4;
  let y = ops.conv(`${unit}_conv1`, x, { filters: width, kernel: 1, stride });
  y = ops.relu(ops.batchNorm(`${unit}_bn1`, y, norms.inner));
  y = ops.conv(`${unit}_conv2`, y, { filters: width, kernel: 3, pad: 1, bias: false });
  y = ops.relu(ops.batchNorm(`${unit}_bn2`, y, norms.inner));
  y = ops.conv(`${unit}_conv3`, y, { filters: channels, kernel: 1 });
  y = ops.batchNorm(`${unit}_bn3`, y, norms.residualEnd);
  const shortcut = project
    ? ops.batchNorm(
        `${unit}_sc_bn`,
        ops.conv(`${unit}_sc`, x, { filters: channels, kernel: 1, stride, bias: false }),
        norms.inner,
      )
    : x;
  return ops.relu(ops.add(y, shortcut));
}

/** Returns [end of stage 3, end of stage 4]. */
export function resnet50Base<T>(ops: NetOps<T>, images: T, options: BaseOptions): T[] {
  const norms = options.pretrained ? PRETRAINED_NORMS : SCRATCH_NORMS;
  let x = ops.conv('conv0', images, { filters: 64, kernel: 7, stride: 2, pad: 3, bias: false });
  x = ops.relu(ops.batchNorm('bn0', x, norms.inner));
  x = ops.maxPool(x, { size: 3, stride: 2, pad: 1 });
  const outputs: T[] = [];
  STAGES.forEach(({ units, channels, stride }, s) => {
    for (let u = 1; u <= units; u++) {
      const spec = { channels, stride: u === 1 ? stride : 1, project: u === 1 };
      x = bottleneck(ops, `stage${s + 1}_unit${u}`, x, spec, norms);
    }
    if (s >= 2) outputs.push(x);
  });
  return outputs;
}

export function resnet50Extras<T>(ops: NetOps<T>, base: T[]): NamedSource<T>[] {
  const [stage3, stage4] = base as [T, T];
  const sources: NamedSource<T>[] = [
    { name: 'stage3_activation5', value: stage3 },
    { name: 'stage4_activation2', value: stage4 },
  ];
  let x = stage4;
  EXPANDER_FILTERS.forEach((f, i) => {
    x = ops.conv(`expand_trans_conv${i}`, x, { filters: Math.max(128, f), kernel: 1, bias: false });
    x = ops.relu(ops.batchNorm(`expand_trans_bn${i}`, x, TRAINED));
    x = ops.conv(`expand_conv${i}`, x, { filters: f, kernel: 3, stride: 2, pad: 1, bias: false });
    x = ops.relu(ops.batchNorm(`expand_bn${i}`, x, TRAINED));
    sources.push({ name: `expand_relu${i}`, value: x });
  });
  return sources;
}
