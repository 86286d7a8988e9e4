/**
 * SSD multibox loss with hard negative mining (caffe MultiBoxLoss, GluonCV SSDMultiBoxLoss).
 *
 * Contract with the training step (data parallelism depends on it):
 *  - Both terms are SUMS over the batch, not yet divided by the number of positives. The step divides by the
 *    GLOBAL positive count after the all-reduce, so N workers with batch b equal one process with batch N*b
 *    (GluonCV divides by the positives of the whole batch across devices, the same rule).
 *  - Every image contributes independently: loss(batch) = sum of loss(image), so sharding does not change it.
 *
 * Per image i with P_i positives (clsTarget > 0):
 *  1. ce[a] = -log softmax(clsLogits[a])[clsTarget[a]] (softmax cross-entropy over C + 1 classes).
 *  2. Hard negatives: the ceil(negativeRatio * P_i) negatives with the largest ce, ties to the smaller anchor index
 *     (GluonCV keeps rank < ratio * P_i, i.e. the ceiling; caffe floors, the same for the integer default 3).
 *     The choice is made in JS from the values (no gradient flows through it); the mask is a constant.
 *     An image with no positives keeps no negatives and contributes nothing (caffe and GluonCV both: P_i * 3 = 0).
 *  3. clsLossSum = sum of ce over positives and chosen negatives.
 *  4. locLossSum = sum over positives of smooth L1 (beta 1) of locPred - locTarget: 0.5 d^2 if |d| < 1, else |d| - 0.5.
 */
import type * as tfc from '@tensorflow/tfjs-core';
import { topKIndices } from './box.js';

export type Tf = typeof tfc;

export interface MultiboxInputs {
  /** [B, N, C + 1] raw class scores. */
  clsLogits: tfc.Tensor3D;
  /** [B, N, 4] predicted offsets. */
  locPred: tfc.Tensor3D;
  /** [B, N] int32: 0 background, class + 1 otherwise. */
  clsTarget: tfc.Tensor2D;
  /** [B, N, 4] encoded offsets (only positives matter). */
  locTarget: tfc.Tensor3D;
}

export interface MultiboxOptions {
  negativeRatio?: number;
}

export interface MultiboxLoss {
  /** Sum of cross-entropy over positives and mined negatives of the whole batch. Caller disposes. */
  clsLossSum: tfc.Scalar;
  /** Sum of smooth L1 over the positives of the whole batch. Caller disposes. */
  locLossSum: tfc.Scalar;
  numPositives: number;
  /** Mined negatives kept in clsLossSum. */
  numNegatives: number;
}

export interface HardNegativeSelection {
  /** [B * N]: 1 for positives and chosen negatives, 0 otherwise. */
  clsMask: Float32Array;
  /** [B * N]: 1 for positives. */
  positiveMask: Float32Array;
  numPositives: number;
  numNegatives: number;
}

/** Step 2 of the header, pure: which anchors enter the classification loss. */
export function selectHardNegatives(
  ce: Float32Array,
  clsTarget: ArrayLike<number>,
  batch: number,
  numAnchors: number,
  negativeRatio: number,
): HardNegativeSelection {
  const clsMask = new Float32Array(batch * numAnchors);
  const positiveMask = new Float32Array(batch * numAnchors);
  let numPositives = 0;
  let numNegatives = 0;
  for (let b = 0; b < batch; b++) {
    const base = b * numAnchors;
    let positives = 0;
    for (let a = 0; a < numAnchors; a++) {
      if (clsTarget[base + a]! > 0) {
        positives++;
        clsMask[base + a] = 1;
        positiveMask[base + a] = 1;
      }
    }
    const wanted = Math.min(Math.ceil(negativeRatio * positives), numAnchors - positives);
    const ceOfImage = ce.subarray(base, base + numAnchors);
    const chosen = topKIndices(ceOfImage, wanted, (a) => !(clsTarget[base + a]! > 0));
    for (const a of chosen) clsMask[base + a] = 1;
    numPositives += positives;
    numNegatives += chosen.length;
  }
  return { clsMask, positiveMask, numPositives, numNegatives };
}

/** Smooth L1 with beta 1, written as 0.5 q^2 + (|d| - q) with q = min(|d|, 1) so it is smooth everywhere. */
function smoothL1(tf: Tf, diff: tfc.Tensor): tfc.Tensor {
  const a = tf.abs(diff);
  const q = tf.minimum(a, 1);
  return tf.add(tf.mul(0.5, tf.square(q)), tf.sub(a, q));
}

/**
 * The multibox loss of a batch (see the header). Synchronous (it reads the cross-entropy values to mine
 * negatives), so it can run inside tf.grad / tf.variableGrads; intermediate tensors are freed.
 */
export function multiboxLoss(tf: Tf, inputs: MultiboxInputs, options: MultiboxOptions = {}): MultiboxLoss {
  const { clsLogits, locPred, clsTarget, locTarget } = inputs;
  const [batch, numAnchors, numClasses] = clsLogits.shape;
  const negativeRatio = options.negativeRatio ?? 3;
  let selection: HardNegativeSelection | undefined;
  const sums = tf.tidy(() => {
    const logProb = tf.logSoftmax(clsLogits);
    const oneHot = tf.oneHot(tf.cast(clsTarget, 'int32'), numClasses);
    const ce = tf.neg(tf.sum(tf.mul(logProb, oneHot), -1));
    const targets = clsTarget.dataSync();
    selection = selectHardNegatives(ce.dataSync() as Float32Array, targets, batch, numAnchors, negativeRatio);
    const clsLossSum = tf.sum<tfc.Scalar>(tf.mul(ce, tf.tensor2d(selection.clsMask, [batch, numAnchors])));
    const positive = tf.tensor3d(selection.positiveMask, [batch, numAnchors, 1]);
    const locLossSum = tf.sum<tfc.Scalar>(tf.mul(smoothL1(tf, tf.sub(locPred, locTarget)), positive));
    return { clsLossSum, locLossSum };
  });
  const { numPositives, numNegatives } = selection!;
  return { clsLossSum: sums.clsLossSum, locLossSum: sums.locLossSum, numPositives, numNegatives };
}
