import { ConfigError } from '../../shared/errors.js';

/**
 * SSD default boxes ("anchors", "priors"): a pure table per base network and image size, and the
 * generator that lays them out.
 *
 * Layout invariant (the heads in ssd.ts emit predictions in exactly this order):
 *   layer -> row i -> column j -> box b, centre ((j + 0.5) * step, (i + 0.5) * step) in pixels.
 * Boxes per cell (caffe PriorBox, GluonCV SSDAnchorGenerator and torchvision agree):
 *   [min x min, sqrt(min * max) squared, then per extra ratio r: (min*sqrt(r), min/sqrt(r)), (min/sqrt(r), min*sqrt(r))]
 * i.e. aspect ratios 1, 1', 2, 1/2, 3, 1/3. Output is (cx, cy, w, h) divided by imageShape, never clipped.
 *
 * Presets (SPEC Part 2, sections 1-2):
 * - vgg-16 300: the caffe/GluonCV SSD300 VOC table (sizes 30..315, steps 8,16,32,64,100,300): 8732 boxes.
 * - vgg-16 512: the caffe SSD512 table, first size 35.84 (7%), as weiliu89/caffe and zhreshold/mxnet-ssd (the
 *   SageMaker lineage) use; GluonCV uses 51.2 instead. The count (24564) is the same.
 * - resnet-50 512: the GluonCV ssd_512_resnet50_v1 table (sizes 51.2..492, steps 16..512): 6132 boxes.
 * Rules for every other size (documented here because the network must produce the same feature sizes):
 * - vgg-16, imageShape < 512: the SSD300 topology. conv4_3 = ceil(S/8) and fc7 = ceil(S/16) ('same'/ceil pooling),
 *   two stride-2 pad-1 3x3 stages (ceil(x/2) each), then two valid 3x3 stages (x - 2 each).
 *   imageShape >= 512: the SSD512 topology: ceil(S/8), ceil(S/16), four stride-2 stages, then a 4x4 pad-1 stage (x - 1).
 *   Sizes are the 300 (resp. 512) table scaled by S/300 (resp. S/512).
 * - resnet-50, any size: stage 3 = ceil(S/16) (conv0 s2 p3, max-pool s2 p1 and the stride-2 1x1 convs all give
 *   ceil(x/2)), stage 4 = ceil(S/32), then four expander 3x3 stride-2 pad-1 stages (ceil(x/2) each). At 300:
 *   19, 10, 5, 3, 2, 1. Sizes are the GluonCV 512 table scaled by S/512.
 * - Step rule outside the presets: step = ceil(S / featureSize). It reproduces every 512 preset exactly and the
 *   caffe 300 steps 8, 16, 100 and 300 (caffe's hand-picked 32 and 64 for the 10x10 and 5x5 maps would put the
 *   last centre outside the image; the rule gives 30 and 60).
 * - tiny (S a multiple of 32, >= 64): sources at strides 8, 16, 32, 64, featureSize = ceil(S / stride). Sizes follow a
 *   linear scale rule for objects that fill 10%..90% of the image: scale points s_k = 0.1 + 0.2 k (k = 0..4), layer k
 *   uses min = s_k * S and max = s_{k+1} * S; ratios [2], [2, 3], [2, 3], [2]; steps = the strides.
 */
export type BaseNetwork = 'vgg-16' | 'resnet-50' | 'tiny';

export interface AnchorLayer {
  name: string;
  featureSize: number;
  /** Distance between neighbouring centres, in pixels. */
  step: number;
  /** Side of the small square box, in pixels. */
  minSize: number;
  /** The second square has side sqrt(minSize * maxSize), in pixels. */
  maxSize: number;
  /** Extra aspect ratios besides 1, each giving the pair (r, 1/r), e.g. [2] or [2, 3]. */
  ratios: number[];
}

export interface AnchorConfig {
  baseNetwork: BaseNetwork;
  imageShape: number;
  layers: AnchorLayer[];
}

export const BASE_NETWORKS: readonly BaseNetwork[] = ['vgg-16', 'resnet-50', 'tiny'];

const R2 = [2];
const R23 = [2, 3];

/** One row of a size table before scaling. */
interface LayerTemplate {
  name: string;
  sizes: [number, number];
  ratios: number[];
}

const VGG300: readonly LayerTemplate[] = [
  { name: 'conv4_3', sizes: [30, 60], ratios: R2 },
  { name: 'fc7', sizes: [60, 111], ratios: R23 },
  { name: 'conv6_2', sizes: [111, 162], ratios: R23 },
  { name: 'conv7_2', sizes: [162, 213], ratios: R23 },
  { name: 'conv8_2', sizes: [213, 264], ratios: R2 },
  { name: 'conv9_2', sizes: [264, 315], ratios: R2 },
];
const VGG300_STEPS = [8, 16, 32, 64, 100, 300];

const VGG512: readonly LayerTemplate[] = [
  { name: 'conv4_3', sizes: [35.84, 76.8], ratios: R2 },
  { name: 'fc7', sizes: [76.8, 153.6], ratios: R23 },
  { name: 'conv6_2', sizes: [153.6, 230.4], ratios: R23 },
  { name: 'conv7_2', sizes: [230.4, 307.2], ratios: R23 },
  { name: 'conv8_2', sizes: [307.2, 384], ratios: R23 },
  { name: 'conv9_2', sizes: [384, 460.8], ratios: R2 },
  { name: 'conv10_2', sizes: [460.8, 537.6], ratios: R2 },
];

const RESNET512: readonly LayerTemplate[] = [
  { name: 'stage3', sizes: [51.2, 102.4], ratios: R2 },
  { name: 'stage4', sizes: [102.4, 189.4], ratios: R23 },
  { name: 'expand1', sizes: [189.4, 276.4], ratios: R23 },
  { name: 'expand2', sizes: [276.4, 363.52], ratios: R23 },
  { name: 'expand3', sizes: [363.52, 450.6], ratios: R2 },
  { name: 'expand4', sizes: [450.6, 492], ratios: R2 },
];

const TINY_STRIDES = [8, 16, 32, 64];
const TINY_RATIOS = [R2, R23, R23, R2];

const ceilHalf = (x: number) => Math.ceil(x / 2);

/** Feature-map sides of the VGG-16 SSD sources at image side S (see the header for the arithmetic). */
export function vggFeatureSizes(imageShape: number): number[] {
  const sizes = [Math.ceil(imageShape / 8), Math.ceil(imageShape / 16)];
  const last = () => sizes[sizes.length - 1]!;
  if (imageShape < 512) {
    sizes.push(ceilHalf(last()), ceilHalf(ceilHalf(last())));
    sizes.push(last() - 2, last() - 4);
  } else {
    for (let k = 0; k < 4; k++) sizes.push(ceilHalf(last()));
    sizes.push(last() - 1);
  }
  return sizes;
}

/** Feature-map sides of the ResNet-50 v1 SSD sources (stage 3, stage 4, four expanders) at image side S. */
export function resnetFeatureSizes(imageShape: number): number[] {
  const sizes = [Math.ceil(imageShape / 16), Math.ceil(imageShape / 32)];
  for (let k = 0; k < 4; k++) sizes.push(ceilHalf(sizes[sizes.length - 1]!));
  return sizes;
}

function scaledLayers(
  templates: readonly LayerTemplate[],
  featureSizes: number[],
  scale: number,
  steps: (featureSize: number, k: number) => number,
): AnchorLayer[] {
  return templates.map((t, k) => {
    const featureSize = featureSizes[k]!;
    return {
      name: t.name,
      featureSize,
      step: steps(featureSize, k),
      minSize: t.sizes[0] * scale,
      maxSize: t.sizes[1] * scale,
      ratios: [...t.ratios],
    };
  });
}

function vggLayers(imageShape: number): AnchorLayer[] {
  const features = vggFeatureSizes(imageShape);
  if (imageShape === 300) return scaledLayers(VGG300, features, 1, (_f, k) => VGG300_STEPS[k]!);
  const ruleStep = (f: number) => Math.ceil(imageShape / f);
  if (imageShape < 512) return scaledLayers(VGG300, features, imageShape / 300, ruleStep);
  return scaledLayers(VGG512, features, imageShape / 512, ruleStep);
}

function tinyLayers(imageShape: number): AnchorLayer[] {
  const scalePoint = (k: number) => (0.1 + 0.2 * k) * imageShape;
  return TINY_STRIDES.map((stride, k) => ({
    name: `tiny_source${k + 1}`,
    featureSize: Math.ceil(imageShape / stride),
    step: stride,
    minSize: scalePoint(k),
    maxSize: scalePoint(k + 1),
    ratios: [...TINY_RATIOS[k]!],
  }));
}

/** Which image sides a base network supports, as a sentence, or undefined when S is fine. */
export function imageShapeProblem(baseNetwork: BaseNetwork, imageShape: number): string | undefined {
  if (!Number.isInteger(imageShape)) return `image_shape: must be an integer, got ${imageShape}`;
  if (baseNetwork === 'tiny') {
    if (imageShape < 64 || imageShape % 32 !== 0)
      return `image_shape: for tiny must be a multiple of 32 and >= 64, got ${imageShape}`;
    return undefined;
  }
  if (imageShape < 300) return `image_shape: for ${baseNetwork} must be >= 300, got ${imageShape}`;
  return undefined;
}

/** The anchor table for a base network at a square input of side imageShape (pixels). Throws ConfigError if unsupported. */
export function anchorConfig(baseNetwork: BaseNetwork, imageShape: number): AnchorConfig {
  if (!BASE_NETWORKS.includes(baseNetwork)) {
    throw new ConfigError([`base_network: must be one of ${BASE_NETWORKS.join(', ')}, got '${baseNetwork}'`]);
  }
  const problem = imageShapeProblem(baseNetwork, imageShape);
  if (problem) throw new ConfigError([problem]);
  let layers: AnchorLayer[];
  if (baseNetwork === 'vgg-16') layers = vggLayers(imageShape);
  else if (baseNetwork === 'tiny') layers = tinyLayers(imageShape);
  else {
    const features = resnetFeatureSizes(imageShape);
    layers = scaledLayers(RESNET512, features, imageShape / 512, (f) => Math.ceil(imageShape / f));
  }
  return { baseNetwork, imageShape, layers };
}

export function anchorsPerCell(layer: AnchorLayer): number {
  return 2 + 2 * layer.ratios.length;
}

export function countAnchors(config: AnchorConfig): number {
  let total = 0;
  for (const layer of config.layers) total += layer.featureSize * layer.featureSize * anchorsPerCell(layer);
  return total;
}

/** Box sides (w, h) in pixels for one cell of a layer, in the per-cell order documented above. */
export function cellBoxSizes(layer: AnchorLayer): [number, number][] {
  const { minSize, maxSize } = layer;
  const big = Math.sqrt(minSize * maxSize);
  const sides: [number, number][] = [
    [minSize, minSize],
    [big, big],
  ];
  for (const r of layer.ratios) {
    const s = Math.sqrt(r);
    sides.push([minSize * s, minSize / s], [minSize / s, minSize * s]);
  }
  return sides;
}

/** All anchors as [N * 4] (cx, cy, w, h) normalised by imageShape, layer -> row -> col -> box, unclipped. */
export function generateAnchors(config: AnchorConfig): Float32Array {
  const out = new Float32Array(countAnchors(config) * 4);
  const scale = 1 / config.imageShape;
  let o = 0;
  for (const layer of config.layers) {
    const sides = cellBoxSizes(layer);
    for (let i = 0; i < layer.featureSize; i++) {
      const cy = (i + 0.5) * layer.step * scale;
      for (let j = 0; j < layer.featureSize; j++) {
        const cx = (j + 0.5) * layer.step * scale;
        for (const [w, h] of sides) {
          out[o++] = cx;
          out[o++] = cy;
          out[o++] = w * scale;
          out[o++] = h * scale;
        }
      }
    }
  }
  return out;
}
