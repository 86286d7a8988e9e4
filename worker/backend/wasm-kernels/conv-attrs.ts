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

/** Upper bound on the floats of one patch-matrix chunk (64 MiB): big layers and batches stream through it. */
export const DEFAULT_CHUNK_FLOATS = 16 * 1024 * 1024;

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
