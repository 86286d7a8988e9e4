import * as tf from '@tensorflow/tfjs-core';
import { groupNormGradient } from '../group-norm-op.js';
import { conv2DBackpropFilterConfig } from './conv2d-backprop-filter.js';
import { conv2DBackpropInputConfig } from './conv2d-backprop-input.js';
import { groupNormConfig, groupNormGradConfig } from './group-norm.js';
import { maxPoolGradConfig } from './max-pool-grad.js';
import { sharedCastConfig, sharedIdentityConfig } from './shared-buffer.js';
import { sliceConfig, splitVConfig } from './slice.js';
import { rememberStockKernel, replacedStockKernel } from './stock-kernels.js';
import { unsortedSegmentSumConfig } from './unsorted-segment-sum.js';

/**
 * The kernels this project adds to (or replaces on) the wasm backend so SSD models train there:
 * - Conv2DBackpropFilter: missing;
 * - Conv2DBackpropInput: present but ~1 GFLOP/s and without dilation;
 * - MaxPoolGrad: present but wrong for windows without a positive value (see max-pool-grad.ts);
 * - UnsortedSegmentSum: missing (gradient of gather);
 * - Identity and same-dtype Cast: present but copy the buffer; ours share it (shared-buffer.ts);
 * - GroupNorm and GroupNormGrad: not tfjs kernels at all; the fused GroupNorm of group-norm-op.ts,
 *   whose gradient is registered here too (it is only reached where the kernel runs);
 * - Slice and SplitV: present but copy a strided slice row by row, a subarray per row (slice.ts).
 * Found by test/worker/backend/gradient-probe.test.ts, which differentiates every op the models use.
 */
export const WASM_TRAINING_KERNELS: readonly tf.KernelConfig[] = [
  conv2DBackpropFilterConfig,
  conv2DBackpropInputConfig,
  maxPoolGradConfig,
  unsortedSegmentSumConfig,
  sharedIdentityConfig,
  sharedCastConfig,
  groupNormConfig,
  groupNormGradConfig,
  sliceConfig,
  splitVConfig,
];

/**
 * Registers the kernels above for 'wasm' (the registry is global, not per backend instance) and the
 * GroupNorm gradient. Idempotent.
 */
export function registerWasmTrainingKernels(): void {
  if (tf.getGradient(groupNormGradient.kernelName) !== groupNormGradient) {
    tf.registerGradient(groupNormGradient);
  }
  for (const config of WASM_TRAINING_KERNELS) {
    const current = tf.getKernel(config.kernelName, 'wasm');
    if (current?.kernelFunc === config.kernelFunc) continue;
    if (current) {
      rememberStockKernel(current);
      tf.unregisterKernel(config.kernelName, 'wasm');
    }
    tf.registerKernel(config);
  }
}

/**
 * Restores the stock wasm kernel set (for tests that probe what tfjs lacks on its own). The GroupNorm
 * gradient stays (tfjs cannot unregister one); without the kernel the op no longer reaches it.
 */
export function unregisterWasmTrainingKernels(): void {
  for (const config of WASM_TRAINING_KERNELS) {
    if (tf.getKernel(config.kernelName, 'wasm')?.kernelFunc !== config.kernelFunc) continue;
    tf.unregisterKernel(config.kernelName, 'wasm');
    const stock = replacedStockKernel(config.kernelName);
    if (stock) tf.registerKernel(stock);
  }
}
