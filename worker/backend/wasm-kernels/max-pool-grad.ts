import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { allocate, assertFloat32, heapF32, type TensorInfo, type WasmKernelArgs } from './wasm-heap.js';

/**
 * MaxPoolGrad for the wasm backend, replacing the stock kernel, whose C++ seeds each window's running
 * maximum with numeric_limits<float>::min() (the smallest positive float, not the lowest) at offset 0
 * of the whole tensor: the gradient of a window with no positive value, e.g. all zeros after ReLU,
 * is lost (or lands on element 0), and ties go to the last maximum. Here, as in TensorFlow and tfjs's
 * cpu backend, each output's
 * gradient goes to the first maximum of its window, padding excluded (a window of -Infinity or NaN
 * only gets none). O(n k^2) with k the pool size:
 * a JS loop over channels-innermost rows.
 */
export function maxPoolGrad(args: WasmKernelArgs): TensorInfo {
  const backend = args.backend as BackendWasm;
  const { dy, input } = args.inputs as { dy: TensorInfo; input: TensorInfo };
  assertFloat32('MaxPoolGrad', { dy, input });
  const { filterSize, strides, pad, dimRoundingMode } = args.attrs as unknown as {
    filterSize: number | [number, number];
    strides: number | [number, number];
    pad: 'valid' | 'same' | number;
    dimRoundingMode?: 'floor' | 'round' | 'ceil';
  };
  const info = tf.backend_util.computePool2DInfo(
    input.shape as [number, number, number, number],
    filterSize,
    strides,
    1,
    pad,
    dimRoundingMode,
  );
  const dx = allocate(backend, input.shape);
  routeToFirstMaximum(heapF32(backend, input), heapF32(backend, dy), info, heapF32(backend, dx));
  return dx;
}

/** dx = 0, then dx[first argmax of each window] += dy[window], per channel. */
export function routeToFirstMaximum(
  x: Float32Array,
  dy: Float32Array,
  info: tf.backend_util.Conv2DInfo,
  dx: Float32Array,
): void {
  const { inHeight, inWidth, inChannels: channels, outHeight, outWidth } = info;
  const best = new Float32Array(channels);
  const at = new Int32Array(channels);
  dx.fill(0);
  for (let b = 0; b < info.batchSize; b++) {
    for (let oh = 0; oh < outHeight; oh++) {
      const h0 = oh * info.strideHeight - info.padInfo.top;
      const hFirst = Math.max(0, h0);
      const hEnd = Math.min(inHeight, h0 + info.effectiveFilterHeight);
      for (let ow = 0; ow < outWidth; ow++) {
        const w0 = ow * info.strideWidth - info.padInfo.left;
        const wFirst = Math.max(0, w0);
        const wEnd = Math.min(inWidth, w0 + info.effectiveFilterWidth);
        best.fill(Number.NEGATIVE_INFINITY);
        at.fill(-1);
        for (let ih = hFirst; ih < hEnd; ih++) {
          for (let iw = wFirst; iw < wEnd; iw++) {
            const pixel = ((b * inHeight + ih) * inWidth + iw) * channels;
            for (let c = 0; c < channels; c++) {
              const v = x[pixel + c]!;
              if (v > best[c]!) {
                best[c] = v;
                at[c] = pixel + c;
              }
            }
          }
        }
        const out = ((b * outHeight + oh) * outWidth + ow) * channels;
        for (let c = 0; c < channels; c++) {
          if (at[c]! >= 0) dx[at[c]!] = dx[at[c]!]! + dy[out + c]!;
        }
      }
    }
  }
}

export const maxPoolGradConfig: tf.KernelConfig = {
  kernelName: 'MaxPoolGrad',
  backendName: 'wasm',
  kernelFunc: maxPoolGrad as tf.KernelFunc,
};
