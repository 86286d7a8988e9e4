import * as tf from '@tensorflow/tfjs-core';
import { ClusterError } from '../../../shared/errors.js';
import type { ConvInfo } from './im2col.js';

/**
 * Attributes of the backward convolution kernels as tfjs-core passes them, plus `dilations`, which
 * tfjs-core never sends (its Conv2D gradient refuses dilation) but the Conv2D gradient registered by
 * gradients.ts does, on backends whose kernels honour it (see `DILATION_AWARE_BACKENDS`).
 */
export interface BackwardConvAttrs {
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dataFormat?: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  dilations?: number | [number, number];
}

/**
 * Upper bound on the floats of one patch-matrix chunk (32 MiB). Big layers and batches stream through
 * it, and it keeps the matMul's inner dimension (pixels) near 10k for 3x3x64 patches, where XNNPACK's
 * fully-connected operator ran ~20% faster than on one 90k-pixel chunk (measured on 300x300x64).
 */
export const DEFAULT_CHUNK_FLOATS = 8 * 1024 * 1024;

let chunkFloats = DEFAULT_CHUNK_FLOATS;

export function patchChunkFloats(): number {
  return chunkFloats;
}

/** Sets the chunk bound (tests use a tiny one to cover several chunks); returns the previous one. */
export function setPatchChunkFloats(floats: number): number {
  const previous = chunkFloats;
  chunkFloats = Math.max(1, Math.floor(floats));
  return previous;
}

export function backwardConvInfo(
  kernelName: string,
  inputShape: readonly number[],
  filterShape: readonly number[],
  attrs: BackwardConvAttrs,
): ConvInfo {
  if (attrs.dataFormat === 'NCHW') {
    throw new ClusterError('BACKEND', `wasm ${kernelName}: dataFormat NCHW is not supported, use NHWC`);
  }
  return tf.backend_util.computeConv2DInfo(
    inputShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs.strides,
    attrs.dilations ?? 1,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    'channelsLast',
  );
}
