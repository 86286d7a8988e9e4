import * as tf from '@tensorflow/tfjs-core';

/**
 * Convolution geometries the SSD models use (VGG-16, ResNet-50 v1, the extras, the heads), at small
 * sizes with odd shapes and batch > 1, plus naive definitions of both backward convolutions for the
 * dilated cases, which tfjs's cpu backend cannot compute.
 */
export interface ConvCase {
  name: string;
  input: [number, number, number, number];
  filter: [number, number, number, number];
  strides: number | [number, number];
  pad: 'same' | 'valid' | number | tf.backend_util.ExplicitPadding;
  dilation?: number;
}

const cases: ConvCase[] = [
  {
    name: '3x3 stride 1 SAME, batch 2, odd 9x9',
    input: [2, 9, 9, 4],
    filter: [3, 3, 4, 5],
    strides: 1,
    pad: 'same',
  },
  { name: '3x3 stride 2 VALID on 9x9', input: [2, 9, 9, 4], filter: [3, 3, 4, 5], strides: 2, pad: 'valid' },
  {
    name: '3x3 strides [2, 1] SAME on 10x7',
    input: [1, 10, 7, 3],
    filter: [3, 3, 3, 6],
    strides: [2, 1],
    pad: 'same',
  },
  { name: '1x1 stride 1, batch 3', input: [3, 8, 8, 4], filter: [1, 1, 4, 3], strides: 1, pad: 'valid' },
  {
    name: '1x1 stride 2 (ResNet downsampling)',
    input: [2, 9, 9, 4],
    filter: [1, 1, 4, 3],
    strides: 2,
    pad: 'valid',
  },
  {
    name: '7x7 stride 2 pad 3 (ResNet conv0)',
    input: [1, 11, 11, 2],
    filter: [7, 7, 2, 3],
    strides: 2,
    pad: 3,
  },
  {
    name: '3x3 explicit asymmetric pads',
    input: [2, 9, 9, 4],
    filter: [3, 3, 4, 5],
    strides: 1,
    pad: [
      [0, 0],
      [1, 2],
      [2, 1],
      [0, 0],
    ],
  },
  {
    name: '3x3 stride 2 pad 1 (SSD extras, 19 -> 10)',
    input: [1, 19, 19, 8],
    filter: [3, 3, 8, 6],
    strides: 2,
    pad: 1,
  },
  { name: '3x3 stride 3 pad 1 on 10x8', input: [2, 10, 8, 3], filter: [3, 3, 3, 4], strides: 3, pad: 1 },
  { name: '2x2 stride 2 VALID on 8x9', input: [1, 8, 9, 3], filter: [2, 2, 3, 5], strides: 2, pad: 'valid' },
  {
    name: '1x1 stride 2 pad 1 (a phase would need a negative pad)',
    input: [1, 7, 6, 3],
    filter: [1, 1, 3, 2],
    strides: 2,
    pad: [
      [0, 0],
      [1, 1],
      [1, 1],
      [0, 0],
    ],
  },
  {
    name: '3x3 stride 2 SAME on even 8x8 (pads 0 before, 1 after), batch 2',
    input: [2, 8, 8, 3],
    filter: [3, 3, 3, 4],
    strides: 2,
    pad: 'same',
  },
  {
    name: '3x3 stride 2 explicit asymmetric pads [0, 1] x [1, 0] on 9x10, batch 2',
    input: [2, 9, 10, 3],
    filter: [3, 3, 3, 4],
    strides: 2,
    pad: [
      [0, 0],
      [0, 1],
      [1, 0],
      [0, 0],
    ],
  },
  {
    name: '3x3 stride 2 explicit asymmetric pads [2, 0] x [0, 2] on 9x8 (col2im)',
    input: [1, 9, 8, 3],
    filter: [3, 3, 3, 2],
    strides: 2,
    pad: [
      [0, 0],
      [2, 0],
      [0, 2],
      [0, 0],
    ],
  },
  {
    name: '3x3 strides [1, 2] SAME on 7x10, batch 2',
    input: [2, 7, 10, 3],
    filter: [3, 3, 3, 4],
    strides: [1, 2],
    pad: 'same',
  },
  {
    name: '2x2 stride 3 VALID on 11x10, batch 2 (stride > kernel: phases no tap reaches)',
    input: [2, 11, 10, 3],
    filter: [2, 2, 3, 4],
    strides: 3,
    pad: 'valid',
  },
  {
    name: '5x5 stride 2 pad 2 on odd 13x11',
    input: [1, 13, 11, 2],
    filter: [5, 5, 2, 3],
    strides: 2,
    pad: 2,
  },
  {
    name: '3x3 stride 2 pad 1 on 1x3, batch 2 (a phase with no rows)',
    input: [2, 1, 3, 2],
    filter: [3, 3, 2, 3],
    strides: 2,
    pad: 1,
  },
  {
    name: '3x3 stride 2 dilation 2 pad 2 on 11x10, batch 2 (stride and dilation share a factor)',
    input: [2, 11, 10, 3],
    filter: [3, 3, 3, 4],
    strides: 2,
    pad: 2,
    dilation: 2,
  },
  {
    name: '3x3 stride 3 dilation 2 VALID on 13x11',
    input: [1, 13, 11, 2],
    filter: [3, 3, 2, 3],
    strides: 3,
    pad: 'valid',
    dilation: 2,
  },
  {
    name: '3x3 VALID (SSD300 conv10_2, 5 -> 3)',
    input: [2, 5, 5, 6],
    filter: [3, 3, 6, 4],
    strides: 1,
    pad: 'valid',
  },
  {
    name: '4x4 pad 1 (SSD512 conv12_2, 2 -> 1)',
    input: [1, 2, 2, 5],
    filter: [4, 4, 5, 6],
    strides: 1,
    pad: 1,
  },
  {
    name: '3x3 dilation 6 pad 6 (atrous fc6)',
    input: [1, 19, 19, 4],
    filter: [3, 3, 4, 5],
    strides: 1,
    pad: 6,
    dilation: 6,
  },
  {
    name: '3x3 dilation 2 SAME, batch 2, 13x12',
    input: [2, 13, 12, 3],
    filter: [3, 3, 3, 4],
    strides: 1,
    pad: 'same',
    dilation: 2,
  },
];

function info(c: ConvCase): tf.backend_util.Conv2DInfo {
  return tf.backend_util.computeConv2DInfo(c.input, c.filter, c.strides, c.dilation ?? 1, c.pad);
}

/** Calls f(b, oh, ow, kh, kw, flat x offset without channel) for every tap that reads inside x. */
function forEachTap(
  c: ConvCase,
  f: (dyPixel: number, xPixel: number, tap: number) => void,
): tf.backend_util.Conv2DInfo {
  const k = info(c);
  for (let b = 0; b < k.batchSize; b++) {
    for (let oh = 0; oh < k.outHeight; oh++) {
      for (let ow = 0; ow < k.outWidth; ow++) {
        for (let kh = 0; kh < k.filterHeight; kh++) {
          const ih = oh * k.strideHeight + kh * k.dilationHeight - k.padInfo.top;
          if (ih < 0 || ih >= k.inHeight) continue;
          for (let kw = 0; kw < k.filterWidth; kw++) {
            const iw = ow * k.strideWidth + kw * k.dilationWidth - k.padInfo.left;
            if (iw < 0 || iw >= k.inWidth) continue;
            f(
              (b * k.outHeight + oh) * k.outWidth + ow,
              (b * k.inHeight + ih) * k.inWidth + iw,
              kh * k.filterWidth + kw,
            );
          }
        }
      }
    }
  }
  return k;
}

/** dW[kh, kw, ci, co] = sum over output pixels of x[input pixel, ci] * dy[pixel, co], by definition. */
export function naiveFilterGrad(c: ConvCase, x: Float32Array, dy: Float32Array): Float32Array {
  const [, , inC, outC] = c.filter;
  const dw = new Float32Array(tf.util.sizeFromShape(c.filter));
  forEachTap(c, (o, i, tap) => {
    for (let ci = 0; ci < inC; ci++) {
      for (let co = 0; co < outC; co++)
        dw[(tap * inC + ci) * outC + co]! += x[i * inC + ci]! * dy[o * outC + co]!;
    }
  });
  return dw;
}

/** dx[input pixel, ci] = sum over taps reading it of W[tap, ci, co] * dy[pixel, co], by definition. */
export function naiveInputGrad(c: ConvCase, w: Float32Array, dy: Float32Array): Float32Array {
  const [, , inC, outC] = c.filter;
  const dx = new Float32Array(tf.util.sizeFromShape(c.input));
  forEachTap(c, (o, i, tap) => {
    for (let ci = 0; ci < inC; ci++) {
      for (let co = 0; co < outC; co++)
        dx[i * inC + ci]! += w[(tap * inC + ci) * outC + co]! * dy[o * outC + co]!;
    }
  });
  return dx;
}

function attrs(c: ConvCase, shapeAttr: Record<string, number[]>): tf.NamedAttrMap {
  const dilations = c.dilation === undefined ? {} : { dilations: c.dilation };
  return {
    strides: c.strides,
    pad: c.pad,
    dataFormat: 'NHWC',
    ...shapeAttr,
    ...dilations,
  } as unknown as tf.NamedAttrMap;
}

/** Runs the Conv2DBackpropFilter kernel of the active backend for case `c` (dilations passed through). */
export function filterGrad(c: ConvCase, x: tf.Tensor, dy: tf.Tensor): tf.Tensor {
  return tf
    .engine()
    .runKernel('Conv2DBackpropFilter', { x, dy }, attrs(c, { filterShape: c.filter })) as tf.Tensor;
}

/** Runs the Conv2DBackpropInput kernel of the active backend for case `c` (dilations passed through). */
export function inputGrad(c: ConvCase, dy: tf.Tensor, filter: tf.Tensor): tf.Tensor {
  return tf
    .engine()
    .runKernel('Conv2DBackpropInput', { dy, filter }, attrs(c, { inputShape: c.input })) as tf.Tensor;
}

export const convCases = {
  cases,
  outputShape: (c: ConvCase): number[] => info(c).outShape,
};
