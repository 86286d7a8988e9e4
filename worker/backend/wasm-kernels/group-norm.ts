import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { ClusterError } from '../../../shared/errors.js';
import { GROUP_NORM, GROUP_NORM_GRAD } from '../group-norm-op.js';
import { type GroupNormDims, groupNormBackward, groupNormForward } from './group-norm-loops.js';
import { allocate, assertFloat32, heapF32, type TensorInfo, type WasmKernelArgs } from './wasm-heap.js';

/**
 * The wasm kernels GroupNorm and GroupNormGrad (contract in ../group-norm-op.ts): shape and dtype checks,
 * outputs allocated on the wasm heap, and the pure loops of group-norm-loops.ts run over heap views.
 */
/** The dims of x [B, H, W, C] split into `groups`, after checking every other input's shape against it. */
function groupNormDims(
  kernelName: string,
  x: TensorInfo,
  groups: number,
  perChannel: Record<string, TensorInfo>,
  perGroup: Record<string, TensorInfo> = {},
): GroupNormDims {
  const fail = (what: string) => {
    throw new ClusterError('BACKEND', `wasm ${kernelName}: ${what}`);
  };
  if (x.shape.length !== 4) fail(`x must be [batch, height, width, channels], got [${x.shape}]`);
  const [batch, height, width, channels] = x.shape as [number, number, number, number];
  if (!Number.isInteger(groups) || groups < 1 || channels % groups !== 0) {
    fail(`groups must be a positive integer dividing the ${channels} channels, got ${groups}`);
  }
  for (const [name, info] of Object.entries(perChannel)) {
    if (info.shape.length !== 1 || info.shape[0] !== channels) {
      fail(`${name} must be [${channels}], got [${info.shape}]`);
    }
  }
  for (const [name, info] of Object.entries(perGroup)) {
    if (!tf.util.arraysEqual(info.shape, [batch, groups])) {
      fail(`${name} must be [${batch}, ${groups}], got [${info.shape}]`);
    }
  }
  return { batch, pixels: height * width, channels, groups };
}

export function groupNorm(args: WasmKernelArgs): TensorInfo[] {
  const backend = args.backend as BackendWasm;
  const { x, gamma, beta } = args.inputs as { x: TensorInfo; gamma: TensorInfo; beta: TensorInfo };
  assertFloat32('GroupNorm', { x, gamma, beta });
  const { groups, epsilon } = args.attrs as unknown as { groups: number; epsilon: number };
  const dims = groupNormDims('GroupNorm', x, groups, { gamma, beta });
  if (!(epsilon >= 0))
    throw new ClusterError('BACKEND', `wasm GroupNorm: epsilon must be >= 0, got ${epsilon}`);
  const y = allocate(backend, x.shape);
  const mean = allocate(backend, [dims.batch, groups]);
  const rstd = allocate(backend, [dims.batch, groups]);
  // Views after the last allocation (a heap growth detaches earlier ones).
  groupNormForward(heapF32(backend, x), heapF32(backend, gamma), heapF32(backend, beta), dims, epsilon, {
    y: heapF32(backend, y),
    mean: heapF32(backend, mean),
    rstd: heapF32(backend, rstd),
  });
  return [y, mean, rstd];
}

export function groupNormGrad(args: WasmKernelArgs): TensorInfo[] {
  const backend = args.backend as BackendWasm;
  const inputs = args.inputs as Record<'dy' | 'x' | 'gamma' | 'mean' | 'rstd', TensorInfo>;
  assertFloat32('GroupNormGrad', inputs);
  const { dy, x, gamma, mean, rstd } = inputs;
  const { groups } = args.attrs as unknown as { groups: number };
  const dims = groupNormDims('GroupNormGrad', x, groups, { gamma }, { mean, rstd });
  if (!tf.util.arraysEqual(dy.shape, x.shape)) {
    throw new ClusterError(
      'BACKEND',
      `wasm GroupNormGrad: dy [${dy.shape}] must have x's shape [${x.shape}]`,
    );
  }
  const dx = allocate(backend, x.shape);
  const dgamma = allocate(backend, [dims.channels]);
  const dbeta = allocate(backend, [dims.channels]);
  const stats = { mean: heapF32(backend, mean), rstd: heapF32(backend, rstd) };
  groupNormBackward(heapF32(backend, dy), heapF32(backend, x), heapF32(backend, gamma), stats, dims, {
    dx: heapF32(backend, dx),
    dgamma: heapF32(backend, dgamma),
    dbeta: heapF32(backend, dbeta),
  });
  return [dx, dgamma, dbeta];
}

export const groupNormConfig: tf.KernelConfig = {
  kernelName: GROUP_NORM,
  backendName: 'wasm',
  kernelFunc: groupNorm as unknown as tf.KernelFunc,
};

export const groupNormGradConfig: tf.KernelConfig = {
  kernelName: GROUP_NORM_GRAD,
  backendName: 'wasm',
  kernelFunc: groupNormGrad as unknown as tf.KernelFunc,
};
