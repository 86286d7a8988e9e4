import type * as tf from '@tensorflow/tfjs-core';
import { ClusterError } from '../../../shared/errors.js';

/**
 * The stock wasm kernels this project replaced (register.ts), kept so they can be put back and so a
 * replacement can hand the cases it does not cover (e.g. string tensors) to the original.
 */
const stock = new Map<string, tf.KernelConfig>();

export function rememberStockKernel(config: tf.KernelConfig): void {
  stock.set(config.kernelName, config);
}

/** The stock config replaced under `kernelName`, if any. */
export function replacedStockKernel(kernelName: string): tf.KernelConfig | undefined {
  return stock.get(kernelName);
}

/** The stock kernel function of `kernelName`; only valid once registerWasmTrainingKernels replaced it. */
export function stockWasmKernel(kernelName: string): tf.KernelFunc {
  const config = stock.get(kernelName);
  if (!config) {
    throw new ClusterError(
      'BACKEND',
      `wasm ${kernelName}: the stock kernel was not recorded before it was replaced`,
    );
  }
  return config.kernelFunc;
}
