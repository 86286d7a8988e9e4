import * as tf from '@tensorflow/tfjs-core';
import { ClusterError, ConfigError } from '../../shared/errors.js';
import {
  type AnchorConfig,
  anchorConfig,
  anchorsPerCell,
  type BaseNetwork,
  countAnchors,
  generateAnchors,
} from './anchors.js';
import {
  type BaseOptions,
  createShapeOps,
  type FeatureShape,
  type NamedSource,
  type NetOps,
  type ParamSpec,
  sizeOf,
} from './backbones/layers.js';
import { resnet50Base, resnet50Extras } from './backbones/resnet50.js';
import { createTensorOps } from './backbones/tensor-ops.js';
import { tinyBase, tinyExtras } from './backbones/tiny.js';
import { vgg16Base, vgg16Extras } from './backbones/vgg16.js';
import { initialValues } from './init.js';

/**
 * The SSD network: a base network, its extra layers, and one pair of 3x3 (pad 1) heads per source map
 * giving k*(C+1) class logits and k*4 box offsets per cell. Predictions are reshaped and concatenated
 * in anchor order (layer -> row -> column -> box, the order of anchors.ts), so prediction n belongs to
 * anchor n. Heads are named after the anchor layers: `<layer>_mbox_conf`, `<layer>_mbox_loc` (caffe).
 *
 * Parameters are named tf.Variables (`conv1_1/kernel`) in one fixed order, so data-parallel training
 * can pack gradients by name. Normalisation never depends on the batch (BatchNorm with stored
 * statistics, GroupNorm, L2Norm), so `training` changes nothing in apply() and N workers compute what
 * one process computes.
 *
 * Training needs the gradients that worker/backend registers (initBackend or registerTrainingGradients:
 * tfjs-core's Node build has none, and its Conv2D gradient refuses the dilated fc6).
 */
export interface SsdModelConfig {
  baseNetwork: BaseNetwork;
  imageShape: number;
  /** Object classes, background not included. */
  numClasses: number;
  seed: number;
  /**
   * Whether the base's weights come from a pretrained base (default true): then resnet-50's base
   * BatchNorms are frozen; false trains them, with zero-gamma residual ends (resnet50.ts). Only the
   * trainable flags and initial values differ, never the names or shapes, so a model of either kind
   * loads the other's weights. vgg-16 and tiny are the same either way.
   */
  pretrainedBase?: boolean;
}

/** Which part of the network a parameter belongs to: `base` is what --pretrained-base provides. */
export type ModelPart = 'base' | 'extra' | 'head';

export interface SsdParamSpec extends ParamSpec {
  part: ModelPart;
}

/** Everything about a configuration that needs no tensors. */
export interface SsdDescription {
  config: Omit<SsdModelConfig, 'seed' | 'pretrainedBase'>;
  /** SsdModelConfig.pretrainedBase, resolved. */
  pretrainedBase: boolean;
  anchorConfig: AnchorConfig;
  numAnchors: number;
  /** [height, width, anchorsPerCell] per source map, in anchor order. */
  featureMaps: [number, number, number][];
  params: readonly SsdParamSpec[];
  layerNames: readonly string[];
  /** Scalars in all variables (BatchNorm statistics included: they are saved and loaded too). */
  parameterCount: number;
  /** Scalars that training updates when nothing is frozen by pattern. */
  trainableParameterCount: number;
}

export interface SsdOutputs {
  /** [B, N, C+1] raw class logits, background first. */
  clsLogits: tf.Tensor3D;
  /** [B, N, 4] encoded box offsets (dx, dy, dw, dh) against the anchors. */
  locPred: tf.Tensor3D;
}

export interface SsdModel {
  readonly config: SsdModelConfig;
  readonly anchorConfig: AnchorConfig;
  readonly anchors: Float32Array;
  readonly numAnchors: number;
  readonly featureMaps: [number, number, number][];
  /**
   * Every parameter by plain name, in the fixed order. The engine-wide tf.Variable.name is
   * `ssd<k>/<plain name>` (unique per model in the process); tf.variableGrads keys its result by that.
   */
  readonly variables: ReadonlyMap<string, tf.Variable>;
  readonly layerNames: readonly string[];
  readonly params: readonly SsdParamSpec[];
  /** Excludes BatchNorm statistics, frozen BatchNorm affines and layers whose name matches the pattern. */
  trainableNames(freezeLayerPattern?: RegExp): string[];
  /** images: [B, S, S, 3] float32, already normalised. Call inside tf.tidy (or dispose the outputs). */
  apply(images: tf.Tensor4D, options?: { training?: boolean }): SsdOutputs;
  parameterCount(): number;
  /** Disposes the variables; idempotent. */
  dispose(): void;
}

interface Backbone {
  base<T>(ops: NetOps<T>, images: T, options: BaseOptions): T[];
  extras<T>(ops: NetOps<T>, base: T[], imageShape: number): NamedSource<T>[];
}

const BACKBONES: Record<BaseNetwork, Backbone> = {
  'vgg-16': { base: vgg16Base, extras: vgg16Extras },
  'resnet-50': { base: resnet50Base, extras: resnet50Extras },
  tiny: { base: tinyBase, extras: tinyExtras },
};

interface HeadOutputs<T> {
  conf: T;
  loc: T;
}

/** What runSsd needs besides the anchor table. */
interface NetworkOptions {
  numClasses: number;
  pretrainedBase: boolean;
}

/** Runs base, extras and heads with any interpreter; `mark` is told when each part is complete. */
function runSsd<T>(
  ops: NetOps<T>,
  images: T,
  { numClasses, pretrainedBase }: NetworkOptions,
  anchors: AnchorConfig,
  mark: (part: ModelPart) => void = () => {},
): HeadOutputs<T>[] {
  const backbone = BACKBONES[anchors.baseNetwork];
  const base = backbone.base(ops, images, { pretrained: pretrainedBase });
  mark('base');
  const sources = backbone.extras(ops, base, anchors.imageShape);
  mark('extra');
  checkSources(
    sources.map((s) => ({ name: s.name, shape: ops.shape(s.value) })),
    anchors,
  );
  const heads = sources.map((source, i) => {
    const layer = anchors.layers[i]!;
    const k = anchorsPerCell(layer);
    const head = { kernel: 3, pad: 1, init: 'xavier-uniform-avg' } as const;
    return {
      conf: ops.conv(`${layer.name}_mbox_conf`, source.value, { ...head, filters: k * (numClasses + 1) }),
      loc: ops.conv(`${layer.name}_mbox_loc`, source.value, { ...head, filters: k * 4 }),
    };
  });
  mark('head');
  return heads;
}

/** The build-time agreement between the network and the anchor table. */
function checkSources(sources: { name: string; shape: FeatureShape }[], anchors: AnchorConfig): void {
  const what = `${anchors.baseNetwork} at image_shape ${anchors.imageShape}`;
  if (sources.length !== anchors.layers.length) {
    throw new ClusterError(
      'MODEL',
      `${what}: the network has ${sources.length} source maps but the anchor table has ${anchors.layers.length} layers`,
    );
  }
  sources.forEach(({ name, shape }, i) => {
    const layer = anchors.layers[i]!;
    if (shape[0] !== layer.featureSize || shape[1] !== layer.featureSize) {
      throw new ClusterError(
        'MODEL',
        `${what}: source ${i} (${name}) is ${shape[0]}x${shape[1]} but anchor layer ${layer.name} expects ${layer.featureSize}x${layer.featureSize}`,
      );
    }
  });
}

function checkConfig(config: Partial<SsdModelConfig>, needSeed: boolean): void {
  const problems: string[] = [];
  const { numClasses, seed } = config;
  if (!Number.isInteger(numClasses) || (numClasses as number) < 1) {
    problems.push(`num_classes: must be an integer >= 1, got ${numClasses}`);
  }
  if (needSeed && (!Number.isSafeInteger(seed) || (seed as number) < 0)) {
    problems.push(`seed: must be a non-negative integer, got ${seed}`);
  }
  if (problems.length > 0) throw new ConfigError(problems);
}

/**
 * Shapes, names, anchors and counts of a configuration without allocating a tensor. `anchors`
 * overrides the anchor table (the network must still produce its feature sizes).
 */
export function describeSsd(
  config: Omit<SsdModelConfig, 'seed'>,
  anchors: AnchorConfig = anchorConfig(config.baseNetwork, config.imageShape),
): SsdDescription {
  checkConfig(config, false);
  const pretrainedBase = config.pretrainedBase ?? true;
  const ops = createShapeOps();
  const parts: ModelPart[] = [];
  const mark = (part: ModelPart) => {
    while (parts.length < ops.params.length) parts.push(part);
  };
  const network = { numClasses: config.numClasses, pretrainedBase };
  runSsd(ops, [config.imageShape, config.imageShape, 3], network, anchors, mark);
  const params = ops.params.map((p, i) => ({ ...p, part: parts[i]! }));
  const count = (list: readonly ParamSpec[]) => list.reduce((n, p) => n + sizeOf(p.shape), 0);
  return {
    config: { baseNetwork: config.baseNetwork, imageShape: config.imageShape, numClasses: config.numClasses },
    pretrainedBase,
    anchorConfig: anchors,
    numAnchors: countAnchors(anchors),
    featureMaps: anchors.layers.map((l) => [l.featureSize, l.featureSize, anchorsPerCell(l)]),
    params,
    layerNames: [...new Set(params.map((p) => p.layer))],
    parameterCount: count(params),
    trainableParameterCount: count(params.filter((p) => p.trainable)),
  };
}

/** A copy without the g/y flags, whose lastIndex would make test() stateful. */
function statelessPattern(pattern: RegExp): RegExp {
  return new RegExp(pattern.source, pattern.flags.replace(/[gy]/g, ''));
}

/**
 * Names of the parameters training updates: not BatchNorm statistics or frozen affines, and not in a
 * layer whose name matches `freeze_layer_pattern` (SageMaker: a regex over layer names, e.g. `^(conv1_|conv2_).*`).
 */
export function trainableNames(params: readonly ParamSpec[], freezeLayerPattern?: RegExp): string[] {
  const frozen = freezeLayerPattern && statelessPattern(freezeLayerPattern);
  return params.filter((p) => p.trainable && !frozen?.test(p.layer)).map((p) => p.name);
}

let modelSequence = 0;

/** One tf.Variable per parameter, initialised from the seed (init.ts), in description order. */
function createVariables(description: SsdDescription, seed: number): Map<string, tf.Variable> {
  // Engine-wide variable names must be unique, so two models can coexist; the map keys are the plain names.
  const tag = `ssd${++modelSequence}`;
  const variables = new Map<string, tf.Variable>();
  description.params.forEach((spec, index) => {
    const initial = tf.tensor(initialValues(spec, seed, index), spec.shape, 'float32');
    variables.set(spec.name, tf.variable(initial, spec.trainable, `${tag}/${spec.name}`));
    initial.dispose();
  });
  return variables;
}

/** The forward pass: heads reshaped to [B, H*W*k, depth] and concatenated in anchor order. */
function forward(
  variables: ReadonlyMap<string, tf.Variable>,
  description: SsdDescription,
  images: tf.Tensor4D,
): SsdOutputs {
  const { imageShape, numClasses } = description.config;
  const [batch, h, w, c] = images.shape;
  if (h !== imageShape || w !== imageShape || c !== 3) {
    throw new ClusterError(
      'MODEL',
      `images must be [B, ${imageShape}, ${imageShape}, 3], got [${images.shape}]`,
    );
  }
  return tf.tidy(() => {
    const network = { numClasses, pretrainedBase: description.pretrainedBase };
    const heads = runSsd(createTensorOps(variables), images, network, description.anchorConfig);
    const flat = (t: tf.Tensor4D, depth: number) => tf.reshape(t, [batch, -1, depth]);
    return {
      clsLogits: tf.concat(
        heads.map((o) => flat(o.conf, numClasses + 1)),
        1,
      ) as tf.Tensor3D,
      locPred: tf.concat(
        heads.map((o) => flat(o.loc, 4)),
        1,
      ) as tf.Tensor3D,
    };
  });
}

export function createSsdModel(config: SsdModelConfig, anchors?: AnchorConfig): SsdModel {
  checkConfig(config, true);
  const description = describeSsd(config, anchors);
  const variables = createVariables(description, config.seed);
  let disposed = false;
  return {
    config: { ...config, pretrainedBase: description.pretrainedBase },
    anchorConfig: description.anchorConfig,
    anchors: generateAnchors(description.anchorConfig),
    numAnchors: description.numAnchors,
    featureMaps: description.featureMaps,
    variables,
    layerNames: description.layerNames,
    params: description.params,
    trainableNames: (freezeLayerPattern) => trainableNames(description.params, freezeLayerPattern),
    apply(images) {
      if (disposed) throw new ClusterError('MODEL', 'apply() on a disposed SSD model');
      return forward(variables, description, images);
    },
    parameterCount: () => description.parameterCount,
    dispose() {
      if (disposed) return;
      disposed = true;
      for (const v of variables.values()) v.dispose();
    },
  };
}
