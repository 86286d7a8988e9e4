import { createRng, RNG_STREAM } from '../../../shared/random.js';
import { initBackend, parseBackendName } from '../../../worker/backend/backend.js';
import type { GroundTruth } from '../../../worker/data/ground-truth.js';
import { createSsdModel } from '../../../worker/model/ssd.js';
import { createOptimizer } from '../../../worker/train/optimizers.js';
import { createTrainStep, type StepBatch } from '../../../worker/train/step.js';
import { intFlag, parseCommandArgs } from '../../args.js';
import { parseThreadsFlag } from '../../cluster-options.js';
import { type CliCommand, writeJsonLine } from '../../command.js';
import { parseBaseNetwork } from '../model-info.js';

const USAGE = `Usage: ssd-cluster bench step --base-network NAME --image-shape PX --batch-size B
                                 [--backend NAME] [--threads N] [--steps N] [--warmup N] [--json]

Times full training steps of an SSD in this process: targets, forward, multibox loss, backward, the
gradient packing of the data-parallel step (no other worker), and an SGD update (momentum 0.9,
weight decay 5e-4). Inputs are seeded noise images with 3 boxes each; the numbers do not depend on them.

Options:
  --base-network NAME   vgg-16 (default), resnet-50 or tiny
  --image-shape PX      input side (default 300; tiny: a multiple of 32 from 64)
  --batch-size B        images per step (default 2)
  --num-classes K       object classes (default 20, as VOC)
  --use-pretrained-model 0|1
                        the network's setup for a pretrained base (1: resnet-50's base BatchNorms frozen) or
                        from scratch (0, default: no base is loaded here, and bench scaling's workers run 0)
  --backend NAME        auto (default), tensorflow-gpu, tensorflow, wasm or cpu
  --threads N           XNNPACK threads on wasm (default 1)
  --warmup N            untimed steps first (default 1)
  --steps N             timed steps (default 3)
  --json                one JSON object: {"backend", "batchSize", "medianStepSeconds", "imagesPerSecond",
                        "baseNetwork", "imageShape", "threads", "steps", "stepSeconds", "phases"}
`;

/** Seeded noise images and three boxes per image: the step's cost does not depend on the values. */
function syntheticBatch(batch: number, side: number, numClasses: number): StepBatch {
  const rng = createRng(0, RNG_STREAM.test, batch, side);
  const images = new Float32Array(batch * side * side * 3);
  for (let i = 0; i < images.length; i++) images[i] = rng.normal();
  const gt: GroundTruth[] = Array.from({ length: batch }, (_, b) => ({
    boxes: Float32Array.from([0.1, 0.1, 0.4, 0.5, 0.5, 0.2, 0.9, 0.6, 0.3, 0.55, 0.7, 0.95]),
    classes: Int32Array.from([b % numClasses, (b + 1) % numClasses, (b + 2) % numClasses]),
    difficult: new Uint8Array(3),
  }));
  return { images, gt };
}

const median = (values: readonly number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

const round = (x: number, digits = 4) => Number(x.toPrecision(digits));

export const command: CliCommand = {
  name: 'bench step',
  summary: 'time full SSD training steps',
  usage: USAGE,
  async run(argv, ctx) {
    const { values } = parseCommandArgs('bench step', argv, {
      'base-network': { type: 'string' },
      'image-shape': { type: 'string' },
      'batch-size': { type: 'string' },
      'num-classes': { type: 'string' },
      'use-pretrained-model': { type: 'string' },
      backend: { type: 'string' },
      threads: { type: 'string' },
      warmup: { type: 'string' },
      steps: { type: 'string' },
      json: { type: 'boolean' },
    });
    const baseNetwork = parseBaseNetwork(values['base-network']);
    const imageShape = intFlag('image-shape', values['image-shape'], { min: 1 }) ?? 300;
    const batchSize = intFlag('batch-size', values['batch-size'], { min: 1 }) ?? 2;
    const numClasses = intFlag('num-classes', values['num-classes'], { min: 1 }) ?? 20;
    const pretrainedBase =
      intFlag('use-pretrained-model', values['use-pretrained-model'], { min: 0, max: 1 }) === 1;
    const warmup = intFlag('warmup', values.warmup, { min: 0 }) ?? 1;
    const steps = intFlag('steps', values.steps, { min: 1 }) ?? 3;
    const threads = parseThreadsFlag(values.threads);
    const backend = await initBackend(parseBackendName(values.backend ?? 'auto'), {
      logger: ctx.logger,
      threads,
    });
    const { tf } = backend;
    const model = createSsdModel({ baseNetwork, imageShape, numClasses, seed: 0, pretrainedBase });
    const optimizer = createOptimizer(tf, { optimizer: 'sgd', momentum: 0.9, weight_decay: 5e-4 });
    try {
      const step = createTrainStep({ tf, model, optimizer, trainableNames: model.trainableNames() });
      const batch = syntheticBatch(batchSize, imageShape, numClasses);
      const times: number[] = [];
      let phases = { compute: 0, allreduce: 0, update: 0 };
      for (let i = 0; i < warmup + steps; i++) {
        const started = performance.now();
        const result = await step.step(batch, { lr: 1e-4, signal: ctx.signal });
        const seconds = (performance.now() - started) / 1000;
        ctx.logger.info('bench step', { step: i, warmup: i < warmup, seconds, ...result.phases });
        if (i < warmup) continue;
        times.push(seconds);
        phases = { ...result.phases };
      }
      const medianStepSeconds = median(times);
      const result = {
        backend: backend.name,
        batchSize,
        medianStepSeconds: round(medianStepSeconds),
        imagesPerSecond: round(batchSize / medianStepSeconds),
        baseNetwork,
        imageShape,
        threads: backend.threads,
        steps,
        stepSeconds: times.map((s) => round(s)),
        phases: {
          compute: round(phases.compute),
          allreduce: round(phases.allreduce),
          update: round(phases.update),
        },
      };
      if (values.json) writeJsonLine(ctx.stdout, result);
      else
        ctx.stdout.write(
          `${baseNetwork} SSD${imageShape} on ${backend.name}: batch ${batchSize}, median step ${result.medianStepSeconds} s, ${result.imagesPerSecond} images/s\n`,
        );
      return 0;
    } finally {
      optimizer.dispose();
      model.dispose();
    }
  },
};
