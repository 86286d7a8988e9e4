import * as tf from '@tensorflow/tfjs-core';
import { conv2DBackpropFilterConfig } from './wasm-kernels/conv2d-backprop-filter.js';

/**
 * Gradients tfjs-core lacks or restricts, registered on top of its own (core-gradients.ts):
 * - comparisons and logical ops: zero, as TensorFlow treats them (tfjs throws "gradient function
 *   not found for Less" as soon as a mask like where(abs(x) < 1, ...) of smooth L1 is on the tape);
 * - GatherNd: scatterND of dy back to the gathered positions (duplicates add up);
 * - Conv2D: tfjs-core's, plus dilation > 1 (VGG's atrous fc6), which tfjs-core refuses;
 * - Sum and Mean: dy times onesLike(x), both on the backend. tfjs-core's multiply dy by ones(x.shape),
 *   filled in a JS array and uploaded: for every GroupNorm moments() of the tiny SSD that was a fresh
 *   array of the activation's size, ~4.4 ms of a ~200 ms step plus the garbage (profiled). (broadcastTo
 *   instead would be one Tile, but the wasm Tile made the whole step ~1.8x slower.)
 */
type Saved = tf.Tensor[];

const zeros = (t: tf.Tensor) => () => tf.zeros(t.shape, 'float32');

const NON_DIFFERENTIABLE: readonly [string, readonly string[]][] = [
  ['Less', ['a', 'b']],
  ['LessEqual', ['a', 'b']],
  ['Greater', ['a', 'b']],
  ['GreaterEqual', ['a', 'b']],
  ['Equal', ['a', 'b']],
  ['NotEqual', ['a', 'b']],
  ['LogicalAnd', ['a', 'b']],
  ['LogicalOr', ['a', 'b']],
  ['LogicalNot', ['x']],
  ['IsNan', ['x']],
  ['IsFinite', ['x']],
  ['IsInf', ['x']],
];

function zeroGradient(kernelName: string, inputs: readonly string[]): tf.GradConfig {
  return {
    kernelName,
    inputsToSave: [...inputs],
    gradFunc: (_dy, saved) => Object.fromEntries(inputs.map((name, i) => [name, zeros(saved[i]!)])),
  };
}

const gatherNdGradient: tf.GradConfig = {
  kernelName: 'GatherNd',
  inputsToSave: ['params', 'indices'],
  gradFunc: (dy, saved: Saved) => {
    const [params, indices] = saved as [tf.Tensor, tf.Tensor];
    return {
      params: () => tf.scatterND(indices, dy as tf.Tensor, params.shape),
      indices: zeros(indices),
    };
  },
};

/** d/dx of x reduced over `axis` (keepDims or not): dy spread back over x's shape, / count for Mean. */
function reductionGradient(kernelName: 'Sum' | 'Mean'): tf.GradConfig {
  return {
    kernelName,
    inputsToSave: ['x'],
    gradFunc: (dy, saved: Saved, attrs) => {
      const x = saved[0]!;
      const { axis } = attrs as { axis?: number | number[] };
      const axes = tf.util.parseAxisParam(axis ?? x.shape.map((_, i) => i), x.shape);
      const kept = x.shape.map((size, i) => (axes.includes(i) ? 1 : size));
      const count = axes.reduce((n, i) => n * x.shape[i]!, 1);
      const scaled = () => (kernelName === 'Mean' ? tf.div(dy as tf.Tensor, count) : (dy as tf.Tensor));
      return { x: () => tf.mul(tf.reshape(scaled(), kept), tf.onesLike(x)) };
    },
  };
}

type ConvAttrs = {
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  dilations?: number | [number, number];
};

function dilationPair(dilations: ConvAttrs['dilations']): [number, number] {
  if (dilations === undefined) return [1, 1];
  return typeof dilations === 'number' ? [dilations, dilations] : dilations;
}

/** Whether the active backend's backward kernels read `dilations` (ours on wasm do). */
function backendHonoursDilations(): boolean {
  const kernel = tf.getKernel('Conv2DBackpropFilter', tf.getBackend());
  return kernel?.kernelFunc === conv2DBackpropFilterConfig.kernelFunc;
}

/** The filter with (d - 1) zeros between taps: conv with it at rate 1 = conv with the filter at rate d. */
function spreadFilter(w: tf.Tensor4D, [dh, dw]: [number, number]): tf.Tensor4D {
  const [kh, kw, inC, outC] = w.shape;
  const cells = tf.pad(tf.reshape(w, [kh, 1, kw, 1, inC, outC]), [
    [0, 0],
    [0, dh - 1],
    [0, 0],
    [0, dw - 1],
    [0, 0],
    [0, 0],
  ]);
  const spread = tf.reshape(cells, [kh * dh, kw * dw, inC, outC]);
  return tf.slice(spread, [0, 0, 0, 0], [(kh - 1) * dh + 1, (kw - 1) * dw + 1, inC, outC]) as tf.Tensor4D;
}

const conv2DGradient: tf.GradConfig = {
  kernelName: 'Conv2D',
  inputsToSave: ['x', 'filter'],
  gradFunc: (dy, saved: Saved, attrs) => {
    const [x, filter] = saved as [tf.Tensor4D, tf.Tensor4D];
    const conv = attrs as unknown as ConvAttrs;
    const rates = dilationPair(conv.dilations);
    const base = {
      strides: conv.strides,
      pad: conv.pad,
      dataFormat: conv.dataFormat,
      dimRoundingMode: conv.dimRoundingMode,
    };
    const run = (kernel: string, inputs: tf.NamedTensorMap, extra: tf.NamedAttrMap) =>
      tf
        .engine()
        .runKernel(kernel, inputs, { ...base, ...extra } as unknown as tf.NamedAttrMap) as tf.Tensor4D;
    if (rates[0] === 1 && rates[1] === 1) {
      return {
        x: () => run('Conv2DBackpropInput', { dy: dy as tf.Tensor, filter }, { inputShape: x.shape }),
        filter: () => run('Conv2DBackpropFilter', { x, dy: dy as tf.Tensor }, { filterShape: filter.shape }),
      };
    }
    if (backendHonoursDilations()) {
      return {
        x: () =>
          run(
            'Conv2DBackpropInput',
            { dy: dy as tf.Tensor, filter },
            { inputShape: x.shape, dilations: rates },
          ),
        filter: () =>
          run(
            'Conv2DBackpropFilter',
            { x, dy: dy as tf.Tensor },
            { filterShape: filter.shape, dilations: rates },
          ),
      };
    }
    // Other backends ignore `dilations` in their backward kernels: use the spread filter instead.
    return {
      x: () =>
        run(
          'Conv2DBackpropInput',
          { dy: dy as tf.Tensor, filter: spreadFilter(filter, rates) },
          { inputShape: x.shape },
        ),
      filter: () => {
        const spread = spreadFilter(filter, rates);
        const dSpread = run(
          'Conv2DBackpropFilter',
          { x, dy: dy as tf.Tensor },
          { filterShape: spread.shape },
        );
        return tf.stridedSlice(dSpread, [0, 0, 0, 0], spread.shape, [rates[0], rates[1], 1, 1]);
      },
    };
  },
};

let registered = false;

/** Idempotent. Call after registerCoreGradients(): the Conv2D entry replaces tfjs-core's. */
export function registerExtraGradients(): void {
  if (registered) return;
  registered = true;
  for (const [kernelName, inputs] of NON_DIFFERENTIABLE) {
    if (tf.getGradient(kernelName) === undefined) tf.registerGradient(zeroGradient(kernelName, inputs));
  }
  if (tf.getGradient('GatherNd') === undefined) tf.registerGradient(gatherNdGradient);
  tf.registerGradient(conv2DGradient);
  tf.registerGradient(reductionGradient('Sum'));
  tf.registerGradient(reductionGradient('Mean'));
}
