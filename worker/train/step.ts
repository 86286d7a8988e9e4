/**
 * One data-parallel training step: compute gradients, all-reduce, then apply (tfjs's
 * Optimizer.minimize split in two, with the ring in between, as Horovod does it).
 *
 * Protocol of a step (every worker runs it on its slice of the same global batch):
 *  1. Targets: each image's ground truth is matched to the anchors and encoded (targets.ts), in JS.
 *  2. Compute: forward, multibox loss SUMS (not divided by positives) and their gradients with
 *     tf.variableGrads over the trainable variables.
 *  3. Pack: the gradients, in layout order, then the extras [clsLossSum, locLossSum, numPositives],
 *     into one Float32Array (tensor-pack.ts), the same one every step.
 *  4. Reduce: reducer.reduce sums the buffer in place across workers (nothing to do in one process).
 *     After it, the extras are the global sums.
 *  5. Normalise: the gradients are divided by max(1, global positives), so N workers with batch b make
 *     exactly the update of one process with batch N*b (GluonCV divides by the positives of the whole
 *     batch across devices). gradNorm is the global L2 norm of that gradient; with clipGradientNorm > 0
 *     a larger norm is scaled down to it.
 *  6. Update: unpack and optimizer.apply(grads, variables, lr). Every tensor made by the step is
 *     disposed before it returns (tf.memory().numTensors is unchanged).
 * Workers must agree on `layout.hash` before the first step, or their buffers do not line up.
 */
import { performance } from 'node:perf_hooks';
import type * as tfc from '@tensorflow/tfjs-core';
import { ClusterError } from '../../shared/errors.js';
import type { GroundTruth } from '../data/ground-truth.js';
import { centerToCorner } from '../model/box.js';
import { multiboxLoss } from '../model/loss.js';
import type { SsdModel } from '../model/ssd.js';
import { computeTargets } from '../model/targets.js';
import type { Optimizer } from './optimizers.js';
import {
  createLayout,
  type GradientLayout,
  packGradients,
  readExtras,
  scaleGradients,
  unpackGradients,
} from './tensor-pack.js';

/** Sums a packed buffer in place across all workers; the one-process reducer leaves it as it is. */
export interface GradientReducer {
  reduce(buffer: Float32Array, signal: AbortSignal): Promise<void>;
}

export const localReducer: GradientReducer = {
  async reduce(_buffer, signal) {
    signal.throwIfAborted();
  },
};

/** The scalars that travel after the gradients in the packed buffer, in this order. */
export const STEP_EXTRAS = ['clsLossSum', 'locLossSum', 'numPositives'] as const;

/** IoU at which an anchor is matched to a ground-truth box (SSD and GluonCV: 0.5). */
export const MATCH_OVERLAP_THRESHOLD = 0.5;

export interface TrainStepOptions {
  tf: typeof tfc;
  model: SsdModel;
  optimizer: Optimizer;
  /** The variables to train, a subset of model.variables (see SsdModel.trainableNames). */
  trainableNames: readonly string[];
  /** Default localReducer. */
  reducer?: GradientReducer;
  /** Global gradient-norm clipping after normalisation; 0 or undefined = off. */
  clipGradientNorm?: number;
  /** Anchor matching IoU (default MATCH_OVERLAP_THRESHOLD). */
  matchThreshold?: number;
}

/** This worker's share of a global batch: images [B*S*S*3] normalised HWC, and their ground truth (B may be 0). */
export interface StepBatch {
  images: Float32Array;
  gt: readonly GroundTruth[];
}

export interface StepPhases {
  /** Targets, forward, loss and backward, plus downloading the gradients into the buffer. */
  compute: number;
  allreduce: number;
  /** Normalise, clip, unpack and apply. */
  update: number;
}

export interface StepResult {
  /** Global cross-entropy sum / max(1, global positives). */
  clsLoss: number;
  /** Global smooth-L1 sum / max(1, global positives). */
  locLoss: number;
  /** Positives of the whole global batch. */
  numPositives: number;
  /** L2 norm of the normalised gradient before clipping. */
  gradNorm: number;
  clipped: boolean;
  /** Seconds. */
  phases: StepPhases;
}

export interface TrainStep {
  readonly layout: GradientLayout;
  step(batch: StepBatch, options: { lr: number; signal: AbortSignal }): Promise<StepResult>;
}

/** The fusion-buffer layout of a model's trainable variables plus the step's extras. */
export function trainLayout(model: SsdModel, trainableNames: readonly string[]): GradientLayout {
  const wanted = new Set(trainableNames);
  for (const name of wanted) {
    if (!model.variables.has(name))
      throw new ClusterError('MODEL', `train step: '${name}' is not a variable of the model`);
  }
  const params = model.params.filter((p) => wanted.has(p.name));
  return createLayout(params, STEP_EXTRAS);
}

interface Targets {
  clsTarget: Int32Array;
  locTarget: Float32Array;
}

/** Step 1: the encoded targets of every image, concatenated [B*N] and [B*N*4]. */
function batchTargets(model: SsdModel, gt: readonly GroundTruth[], anchorsCorner: Float32Array, iou: number) {
  const n = model.numAnchors;
  const out: Targets = {
    clsTarget: new Int32Array(gt.length * n),
    locTarget: new Float32Array(gt.length * n * 4),
  };
  gt.forEach((g, i) => {
    const t = computeTargets(model.anchors, g, { anchorsCorner, overlapThreshold: iou });
    out.clsTarget.set(t.clsTarget, i * n);
    out.locTarget.set(t.locTarget, i * n * 4);
  });
  return out;
}

function checkBatch(model: SsdModel, batch: StepBatch): number {
  const side = model.config.imageShape;
  const b = batch.gt.length;
  if (batch.images.length !== b * side * side * 3) {
    throw new ClusterError(
      'INTERNAL',
      `train step: ${batch.images.length} pixel values do not make ${b} images of ${side}x${side}x3`,
    );
  }
  return b;
}

export function createTrainStep(options: TrainStepOptions): TrainStep {
  const { tf, model, optimizer } = options;
  const reducer = options.reducer ?? localReducer;
  const clip = options.clipGradientNorm ?? 0;
  const layout = trainLayout(model, options.trainableNames);
  const varList = layout.entries.map((e) => model.variables.get(e.name)!);
  // variableGrads keys gradients by the engine-wide variable name; the layout uses the model's names.
  const layoutName = new Map(varList.map((v, i) => [v.name, layout.entries[i]!.name]));
  const anchorsCorner = centerToCorner(model.anchors);
  const side = model.config.imageShape;
  const iou = options.matchThreshold ?? MATCH_OVERLAP_THRESHOLD;
  // One fusion buffer for every step: steps never overlap, and the reducer writes nothing into it after
  // its call settles. Against a fresh buffer and a copy per gradient each step: ~5 MB less external
  // memory per step of tiny for the garbage collector. After a FAILED call the transport may still be
  // sending bytes of it (an aborted write settles before HTTP/2 has taken the payload), so the buffer is
  // left to it and the next step packs into a new one: what a peer receives under the failed key is what
  // this worker computed, and not the next step's gradient.
  let fusionBuffer = new Float32Array(layout.totalSize);

  /** Steps 1-3: the packed local buffer. */
  const compute = (batch: StepBatch): Float32Array => {
    const b = checkBatch(model, batch);
    // A worker whose samples were all skipped as bad data still takes part in the reduction, with zeros.
    if (b === 0) return fusionBuffer.fill(0);
    const targets = batchTargets(model, batch.gt, anchorsCorner, iou);
    const sums = { cls: 0, loc: 0, positives: 0 };
    const { value, grads } = tf.variableGrads(() => {
      const images = tf.tensor4d(batch.images, [b, side, side, 3]);
      const { clsLogits, locPred } = model.apply(images, { training: true });
      const loss = multiboxLoss(tf, {
        clsLogits,
        locPred,
        clsTarget: tf.tensor2d(targets.clsTarget, [b, model.numAnchors], 'int32'),
        locTarget: tf.tensor3d(targets.locTarget, [b, model.numAnchors, 4]),
      });
      sums.cls = loss.clsLossSum.dataSync()[0]!;
      sums.loc = loss.locLossSum.dataSync()[0]!;
      sums.positives = loss.numPositives;
      return tf.add(loss.clsLossSum, loss.locLossSum) as tfc.Scalar;
    }, varList);
    try {
      const named = new Map(Object.entries(grads).map(([name, g]) => [layoutName.get(name) ?? name, g]));
      return packGradients(tf, layout, named, [sums.cls, sums.loc, sums.positives], fusionBuffer);
    } finally {
      value.dispose();
      tf.dispose(grads);
    }
  };

  /** Steps 5-6 on the reduced buffer. */
  const update = (buffer: Float32Array, lr: number) => {
    const extras = readExtras(layout, buffer);
    const positives = extras.numPositives!;
    const scale = 1 / Math.max(1, positives);
    const gradNorm = scaleGradients(layout, buffer, scale);
    if (!Number.isFinite(gradNorm)) {
      throw new ClusterError(
        'MODEL',
        `train step: the gradient norm is ${gradNorm} (losses: cross-entropy ${extras.clsLossSum}, smooth L1 ${extras.locLossSum}); ` +
          'the weights were left unchanged; lower learning_rate, add lr_warmup_steps or set clip_gradient_norm',
      );
    }
    const clipped = clip > 0 && gradNorm > clip;
    if (clipped) scaleGradients(layout, buffer, clip / gradNorm);
    const grads = unpackGradients(tf, layout, buffer);
    try {
      optimizer.apply(grads, model.variables, lr);
    } finally {
      tf.dispose([...grads.values()]);
    }
    return {
      clsLoss: extras.clsLossSum! * scale,
      locLoss: extras.locLossSum! * scale,
      numPositives: positives,
      gradNorm,
      clipped,
    };
  };

  return {
    layout,
    async step(batch, { lr, signal }) {
      signal.throwIfAborted();
      const t0 = performance.now();
      const buffer = compute(batch);
      const t1 = performance.now();
      try {
        await reducer.reduce(buffer, signal);
      } catch (err) {
        fusionBuffer = new Float32Array(layout.totalSize);
        throw err;
      }
      signal.throwIfAborted();
      const t2 = performance.now();
      const result = update(buffer, lr);
      const t3 = performance.now();
      const phases = { compute: (t1 - t0) / 1000, allreduce: (t2 - t1) / 1000, update: (t3 - t2) / 1000 };
      return { ...result, phases };
    },
  };
}
