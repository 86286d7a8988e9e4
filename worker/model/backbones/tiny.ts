import type { NamedSource, NetOps } from './layers.js';

/**
 * `tiny`: a small base for CPU demos and tests, any image_shape that is a multiple of 32 from 64.
 * Blocks of 3x3 conv (no bias) + GroupNorm (8 groups) + ReLU, widths 16-32-64-64-128-128-128:
 *   tiny_conv1 s2 (S/2), tiny_conv2 s2 (S/4), tiny_conv3 s2 + tiny_conv3b s1 (S/8, source 1),
 *   tiny_conv4 s2 (S/16, source 2), tiny_conv5 s2 (S/32, source 3), tiny_conv6 s2 (S/64, source 4).
 * Stride-2 convs pad 1, so each halves with ceil: sources at ceil(S/8), ceil(S/16), ceil(S/32), ceil(S/64),
 * the sizes of the tiny anchor table. GroupNorm statistics are per sample, so a batch split over N
 * workers computes exactly what one process computes. About 0.5M parameters; ~25 MMAC per image at 128.
 */
const BLOCKS: readonly { name: string; filters: number; stride: number; source: boolean }[] = [
  { name: 'tiny_conv1', filters: 16, stride: 2, source: false },
  { name: 'tiny_conv2', filters: 32, stride: 2, source: false },
  { name: 'tiny_conv3', filters: 64, stride: 2, source: false },
  { name: 'tiny_conv3b', filters: 64, stride: 1, source: true },
  { name: 'tiny_conv4', filters: 128, stride: 2, source: true },
  { name: 'tiny_conv5', filters: 128, stride: 2, source: true },
  { name: 'tiny_conv6', filters: 128, stride: 2, source: true },
];

export const TINY_GROUPS = 8;

/** All blocks are the base; returns the four source maps. */
export function tinyBase<T>(ops: NetOps<T>, images: T): T[] {
  let x = images;
  const sources: T[] = [];
  for (const block of BLOCKS) {
    x = ops.conv(block.name, x, {
      filters: block.filters,
      kernel: 3,
      stride: block.stride,
      pad: 1,
      bias: false,
    });
    x = ops.relu(ops.groupNorm(`${block.name}_gn`, x, TINY_GROUPS));
    if (block.source) sources.push(x);
  }
  return sources;
}

export function tinyExtras<T>(_ops: NetOps<T>, base: T[]): NamedSource<T>[] {
  return base.map((value, i) => ({ name: `tiny_source${i + 1}`, value }));
}
