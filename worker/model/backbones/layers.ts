import { ClusterError } from '../../../shared/errors.js';

/**
 * Networks are written once, as functions over `NetOps<T>`, and run by two interpreters:
 * - `createShapeOps()` (here, pure) walks a network with feature shapes only and records every
 *   parameter's spec in call order, so describing a model (parameter count, feature sizes, names)
 *   never allocates a tensor;
 * - `createTensorOps()` (tensor-ops.ts) runs the same calls on tfjs tensors over named variables.
 * Both read the same calls, so names, shapes and order cannot drift apart.
 *
 * Parameter names are `<layer>/<role>` (`conv1_1/kernel`, `stage1_unit1_bn1/moving_mean`); the layer
 * name (before the slash) is what `freeze_layer_pattern` matches. Kernels are HWIO ([kh, kw, in, out]),
 * as tf.conv2d wants them. Layout is NHWC throughout.
 */
export type Padding = 'same' | 'valid' | number;

/** How a kernel is drawn (see init.ts for the formulas and their sources). */
export type KernelInit = 'xavier-gaussian-out' | 'xavier-uniform-avg';

export interface ConvSpec {
  filters: number;
  kernel: number;
  stride?: number;
  /** 'same' and 'valid' as in TensorFlow; a number pads that many zeros on every side (caffe/MXNet). */
  pad?: Padding;
  /** Atrous rate; > 1 needs stride 1 and a numeric pad. */
  dilation?: number;
  /** Default true; layers followed by BatchNorm have none (GluonCV). */
  bias?: boolean;
  /** Fused ReLU after the bias. */
  relu?: boolean;
  init?: KernelInit;
}

export interface PoolSpec {
  size: number;
  stride: number;
  pad: Padding;
}

/** [height, width, channels] of one feature map (batch left out). */
export type FeatureShape = readonly [number, number, number];

export type ParamRole = 'kernel' | 'bias' | 'gamma' | 'beta' | 'moving_mean' | 'moving_variance' | 'scale';

export type ParamInit = { kind: KernelInit } | { kind: 'constant'; value: number };

export interface ParamSpec {
  name: string;
  layer: string;
  role: ParamRole;
  shape: number[];
  /** False for BatchNorm statistics and frozen BatchNorm affine terms: never updated by training. */
  trainable: boolean;
  init: ParamInit;
}

export interface BatchNormSpec {
  /** True: gamma and beta are trained (new layers); false: all four tensors stay as loaded (pretrained). */
  trainAffine: boolean;
  /** Initial gamma (default 1); 0 makes the layer start as a constant beta (zero-gamma residual ends). */
  gammaInit?: number;
}

/** What a base network is told about where its weights come from. */
export interface BaseOptions {
  /**
   * True: the base's weights will be loaded from a pretrained base (--pretrained-base), so it is set up
   * for fine-tuning; false: it trains from its seeded initialisation.
   */
  pretrained: boolean;
}

/** Epsilons of the reference layers: Gluon BatchNorm 1e-5, GluonCV Normalize (L2Norm) 1e-5, GroupNorm 1e-5. */
export const BATCH_NORM_EPSILON = 1e-5;
export const L2_NORM_EPSILON = 1e-5;
export const GROUP_NORM_EPSILON = 1e-5;

export interface NetOps<T> {
  shape(x: T): FeatureShape;
  conv(name: string, x: T, spec: ConvSpec): T;
  relu(x: T): T;
  maxPool(x: T, spec: PoolSpec): T;
  /** Inference-mode BatchNorm with stored statistics, whatever the batch (see BatchNormSpec). */
  batchNorm(name: string, x: T, spec: BatchNormSpec): T;
  /** Per-sample GroupNorm over `groups` channel groups, learned gamma/beta per channel. */
  groupNorm(name: string, x: T, groups: number): T;
  /** Channel-wise L2 normalisation followed by a learned per-channel scale (SSD conv4_3). */
  l2Norm(name: string, x: T, scaleInit: number): T;
  add(a: T, b: T): T;
}

/** A feature map the SSD heads read, under the name its head layers are named after. */
export interface NamedSource<T> {
  name: string;
  value: T;
}

/** Output side of a conv or pool along one axis, as tfjs computes it (floor for numeric and valid pads). */
export function outputSize(
  input: number,
  kernel: number,
  stride: number,
  pad: Padding,
  dilation = 1,
): number {
  const field = dilation * (kernel - 1) + 1;
  if (pad === 'same') return Math.ceil(input / stride);
  const zeros = pad === 'valid' ? 0 : pad;
  return Math.floor((input + 2 * zeros - field) / stride) + 1;
}

export interface ShapeOps extends NetOps<FeatureShape> {
  /** Every parameter in creation order. */
  readonly params: readonly ParamSpec[];
}

/** The pure interpreter: shapes in, shapes out, parameter specs recorded; MODEL errors name the layer. */
export function createShapeOps(): ShapeOps {
  const params: ParamSpec[] = [];
  const layers = new Set<string>();
  const declare = (layer: string, role: ParamRole, shape: number[], init: ParamInit, trainable = true) => {
    params.push({ name: `${layer}/${role}`, layer, role, shape, trainable, init });
  };
  const claim = (layer: string) => {
    if (layers.has(layer)) throw new ClusterError('MODEL', `layer name '${layer}' is used twice`);
    layers.add(layer);
  };
  const spatial = (layer: string, x: FeatureShape, k: number, stride: number, pad: Padding, dilation = 1) => {
    const h = outputSize(x[0], k, stride, pad, dilation);
    const w = outputSize(x[1], k, stride, pad, dilation);
    if (h < 1 || w < 1) {
      throw new ClusterError(
        'MODEL',
        `layer ${layer}: a ${k}x${k} window (stride ${stride}, pad ${pad}, dilation ${dilation}) does not fit its ${x[0]}x${x[1]} input; the image is too small for this network`,
      );
    }
    return [h, w] as const;
  };
  const perChannel = (name: string, x: FeatureShape) => {
    claim(name);
    return [x[2]];
  };
  return {
    params,
    shape: (x) => x,
    conv(name, x, spec) {
      claim(name);
      const { filters, kernel, stride = 1, pad = 'valid', dilation = 1, bias = true } = spec;
      if (dilation > 1 && (stride !== 1 || typeof pad !== 'number')) {
        throw new ClusterError('MODEL', `layer ${name}: a dilated conv needs stride 1 and a numeric pad`);
      }
      const [h, w] = spatial(name, x, kernel, stride, pad, dilation);
      declare(name, 'kernel', [kernel, kernel, x[2], filters], { kind: spec.init ?? 'xavier-gaussian-out' });
      if (bias) declare(name, 'bias', [filters], { kind: 'constant', value: 0 });
      return [h, w, filters];
    },
    relu: (x) => x,
    maxPool(x, spec) {
      const [h, w] = spatial('max-pool', x, spec.size, spec.stride, spec.pad);
      return [h, w, x[2]];
    },
    batchNorm(name, x, { trainAffine, gammaInit = 1 }) {
      const shape = perChannel(name, x);
      declare(name, 'gamma', shape, { kind: 'constant', value: gammaInit }, trainAffine);
      declare(name, 'beta', shape, { kind: 'constant', value: 0 }, trainAffine);
      declare(name, 'moving_mean', shape, { kind: 'constant', value: 0 }, false);
      declare(name, 'moving_variance', shape, { kind: 'constant', value: 1 }, false);
      return x;
    },
    groupNorm(name, x, groups) {
      if (x[2] % groups !== 0) {
        throw new ClusterError('MODEL', `layer ${name}: ${x[2]} channels do not split into ${groups} groups`);
      }
      const shape = perChannel(name, x);
      declare(name, 'gamma', shape, { kind: 'constant', value: 1 });
      declare(name, 'beta', shape, { kind: 'constant', value: 0 });
      return x;
    },
    l2Norm(name, x, scaleInit) {
      declare(name, 'scale', perChannel(name, x), { kind: 'constant', value: scaleInit });
      return x;
    },
    add(a, b) {
      if (a.some((d, i) => d !== b[i])) {
        throw new ClusterError('MODEL', `cannot add feature maps of shapes [${a}] and [${b}]`);
      }
      return a;
    },
  };
}

/** Number of scalars in a shape. */
export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}
