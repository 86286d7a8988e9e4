import { pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { createLogger, type Logger } from '../../shared/logging.js';
import { initBackend } from './backend.js';

/**
 * Micro benchmark of the three convolution kernels a training step spends its time in: GFLOP/s of
 * Conv2D (forward), Conv2DBackpropInput and Conv2DBackpropFilter on VGG-16 SSD300 layer shapes.
 * Not a test. Run by hand (`node --import=tsx worker/backend/bench-kernels.ts [threads]`) or from
 * `ssd-cluster bench` through `benchConvKernels`.
 *
 * GFLOP/s counts 2 * outputs * kh * kw * in-channels per op (the same for all three). Two rates: by
 * wall time, and by this process's CPU time (all threads), which on a shared machine shows what the
 * kernels do per core busy, while wall time also shows the waiting.
 */
export interface ConvBenchShape {
  name: string;
  /** [batch, height, width, in-channels] */
  input: [number, number, number, number];
  /** [kh, kw, in-channels, out-channels] */
  filter: [number, number, number, number];
  stride: number;
  pad: number;
  dilation: number;
}

export type ConvKernelName = 'Conv2D' | 'Conv2DBackpropInput' | 'Conv2DBackpropFilter';

export interface ConvBenchRow {
  backend: string;
  threads: number;
  shape: string;
  kernel: ConvKernelName;
  gflop: number;
  /** Best of `repeats`, milliseconds. */
  wallMs: number;
  cpuMs: number;
  gflopsPerSecond: number;
  gflopsPerCpuSecond: number;
}

const vggLayer = (
  name: string,
  side: number,
  inC: number,
  outC: number,
  extra: Partial<ConvBenchShape> = {},
) => ({
  name,
  input: [1, side, side, inC] as [number, number, number, number],
  filter: [3, 3, inC, outC] as [number, number, number, number],
  stride: 1,
  pad: 1,
  dilation: 1,
  ...extra,
});

/** VGG-16 SSD300 layers, batch 1: the base at each resolution, atrous fc6, and a stride-2 extra. */
export const VGG_SSD300_SHAPES: readonly ConvBenchShape[] = [
  vggLayer('conv1_2 300x300x64->64', 300, 64, 64),
  vggLayer('conv2_2 150x150x128->128', 150, 128, 128),
  vggLayer('conv3_2 75x75x256->256', 75, 256, 256),
  vggLayer('conv4_2 38x38x512->512', 38, 512, 512),
  vggLayer('fc6 19x19x512->1024 dilation 6', 19, 512, 1024, { pad: 6, dilation: 6 }),
  vggLayer('conv8_2 19x19x256->512 stride 2', 19, 256, 512, { stride: 2 }),
];

/** Small enough for the pure-JS cpu backend (~0.1 GFLOP). */
export const CPU_SHAPES: readonly ConvBenchShape[] = [vggLayer('19x19x128->128', 19, 128, 128)];

function runKernel(
  kernel: ConvKernelName,
  s: ConvBenchShape,
  x: tf.Tensor,
  w: tf.Tensor,
  dy: tf.Tensor,
): tf.Tensor {
  const attrs = { strides: s.stride, pad: s.pad, dataFormat: 'NHWC', dimRoundingMode: undefined };
  if (kernel === 'Conv2D')
    return tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, s.stride, s.pad, 'NHWC', s.dilation);
  // tfjs's own backward kernels ignore `dilations`; ours on wasm honour it (see extra-gradients.ts).
  const dilation = s.dilation > 1 ? { dilations: s.dilation } : {};
  const inputs: tf.NamedTensorMap = kernel === 'Conv2DBackpropInput' ? { dy, filter: w } : { x, dy };
  const shapeAttr = kernel === 'Conv2DBackpropInput' ? { inputShape: s.input } : { filterShape: s.filter };
  return tf.engine().runKernel(kernel, inputs, {
    ...attrs,
    ...shapeAttr,
    ...dilation,
  } as unknown as tf.NamedAttrMap) as tf.Tensor;
}

function timeBest(repeats: number, f: () => tf.Tensor): { wallMs: number; cpuMs: number } {
  let wallMs = Number.POSITIVE_INFINITY;
  let cpuMs = Number.POSITIVE_INFINITY;
  for (let i = 0; i < repeats; i++) {
    const cpu = process.cpuUsage();
    const start = performance.now();
    const out = f();
    out.dataSync();
    wallMs = Math.min(wallMs, performance.now() - start);
    const used = process.cpuUsage(cpu);
    cpuMs = Math.min(cpuMs, (used.user + used.system) / 1000);
    out.dispose();
  }
  return { wallMs, cpuMs };
}

/** Times the three kernels on the active backend, one warm-up call each, best of `repeats`. */
export function benchShapes(shapes: readonly ConvBenchShape[], repeats = 3, threads = 1): ConvBenchRow[] {
  const rows: ConvBenchRow[] = [];
  for (const s of shapes) {
    const x = tf.randomNormal(s.input, 0, 1, 'float32', 1);
    const w = tf.randomNormal(s.filter, 0, 1, 'float32', 2);
    const y = tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, s.stride, s.pad, 'NHWC', s.dilation);
    const dy = tf.randomNormal(y.shape, 0, 1, 'float32', 3);
    const gflop = (2 * y.size * s.filter[0] * s.filter[1] * s.filter[2]) / 1e9;
    for (const kernel of ['Conv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter'] as const) {
      const { wallMs, cpuMs } = timeBest(repeats + 1, () => runKernel(kernel, s, x, w, dy));
      const round = (v: number) => Number(v.toPrecision(3));
      rows.push({
        backend: tf.getBackend(),
        threads,
        shape: s.name,
        kernel,
        gflop: round(gflop),
        wallMs: round(wallMs),
        cpuMs: round(cpuMs),
        gflopsPerSecond: round(gflop / (wallMs / 1000)),
        gflopsPerCpuSecond: round(gflop / (cpuMs / 1000)),
      });
    }
    tf.dispose([x, w, y, dy]);
  }
  return rows;
}

/** wasm on the VGG shapes, then cpu on one small shape. Leaves wasm as the active backend. */
export async function benchConvKernels(options: {
  logger: Logger;
  threads?: number;
  repeats?: number;
}): Promise<ConvBenchRow[]> {
  const wasm = await initBackend('wasm', { logger: options.logger, threads: options.threads ?? 1 });
  const rows = benchShapes(VGG_SSD300_SHAPES, options.repeats, wasm.threads);
  await initBackend('cpu', { logger: options.logger });
  rows.push(...benchShapes(CPU_SHAPES, options.repeats));
  await initBackend('wasm', { logger: options.logger, threads: wasm.threads });
  return rows;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const threads = Number(process.argv[2] ?? 1);
  for (const row of await benchConvKernels({ logger: createLogger({ level: 'warn' }), threads })) {
    process.stdout.write(`${JSON.stringify(row)}\n`);
  }
}
