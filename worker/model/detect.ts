/**
 * SSD post-processing for one image: decode the predicted offsets, keep confident candidates, per-class NMS,
 * and return SageMaker prediction rows [class, score, xmin, ymin, xmax, ymax] (SPEC 1.4). Pure.
 *
 * Order of operations and where each rule comes from:
 *  1. Candidates. 'per-class' (default; GluonCV SSD and caffe DetectionOutput): every (anchor, class >= 1) pair
 *     with probability >= scoreThreshold. 'best-class' (MXNet MultiBoxDetection, the SageMaker deploy.py path):
 *     each anchor's most probable non-background class only (first on ties), if >= scoreThreshold.
 *  2. Top-k: the topK best candidates over all classes (GluonCV box_nms topk=400 and MXNet nms_topk are both
 *     global; caffe's top_k is per class). Ties: smaller anchor, then smaller class. topK < 0 keeps all.
 *  3. Decode with the variances and clip to [0, 1] (MXNet MultiBoxDetection clip=true clips before its NMS).
 *  4. Greedy NMS in score order within each class: a box is dropped when its IoU with a kept box of the same class
 *     is > nmsThreshold (GluonCV box_nms; MXNet MultiBoxDetection uses >=, different only at exact equality).
 *  5. The first keepTopK survivors (GluonCV post_nms=100; caffe keep_top_k=200), sorted by score descending.
 * Class ids in the rows are 0-based (background removed), as SageMaker returns them.
 */
import { ClusterError } from '../../shared/errors.js';
import { cornerIou } from '../../shared/eval/box-iou.js';
import { DEFAULT_VARIANCES, decodeBox, topKIndices, type Variances } from './box.js';

/** [class, score, xmin, ymin, xmax, ymax], box normalised to [0, 1]. */
export type DetectionRow = [number, number, number, number, number, number];

export interface DetectOptions {
  /** SageMaker nms_threshold; default 0.45. */
  nmsThreshold?: number;
  /** Minimum class probability; default 0.01. */
  scoreThreshold?: number;
  /** Candidates kept before NMS, over all classes; default 400 (SageMaker nms_topk); < 0 keeps all. */
  topK?: number;
  /** Detections kept after NMS; default 100 (GluonCV post_nms); < 0 keeps all. */
  keepTopK?: number;
  candidates?: 'per-class' | 'best-class';
  variances?: Variances;
}

export const DEFAULT_DETECT_OPTIONS: Required<DetectOptions> = {
  nmsThreshold: 0.45,
  scoreThreshold: 0.01,
  topK: 400,
  keepTopK: 100,
  candidates: 'per-class',
  variances: DEFAULT_VARIANCES,
};

/** Field by field, so an explicit `undefined` means the default too. */
function withDefaults(options: DetectOptions): Required<DetectOptions> {
  const d = DEFAULT_DETECT_OPTIONS;
  return {
    nmsThreshold: options.nmsThreshold ?? d.nmsThreshold,
    scoreThreshold: options.scoreThreshold ?? d.scoreThreshold,
    topK: options.topK ?? d.topK,
    keepTopK: options.keepTopK ?? d.keepTopK,
    candidates: options.candidates ?? d.candidates,
    variances: options.variances ?? d.variances,
  };
}

interface Candidates {
  anchor: Int32Array;
  /** 1-based class (0 is background). */
  cls: Int32Array;
  score: Float32Array;
}

const limit = (k: number) => (k < 0 ? Number.POSITIVE_INFINITY : k);

/** Probabilities are float32, so the threshold is too (as in MXNet): a stored 0.01 passes a 0.01 threshold. */
const scoreFloor = (o: Required<DetectOptions>) => Math.fround(o.scoreThreshold);

function perClassCandidates(clsProb: Float32Array, width: number, o: Required<DetectOptions>): Candidates {
  const floor = scoreFloor(o);
  const picked = topKIndices(clsProb, limit(o.topK), (i) => i % width !== 0 && clsProb[i]! >= floor);
  return {
    anchor: picked.map((i) => Math.floor(i / width)),
    cls: picked.map((i) => i % width),
    score: Float32Array.from(picked, (i) => clsProb[i]!),
  };
}

function bestClassCandidates(clsProb: Float32Array, width: number, o: Required<DetectOptions>): Candidates {
  const n = clsProb.length / width;
  const best = new Float32Array(n);
  const bestCls = new Int32Array(n);
  for (let a = 0; a < n; a++) {
    let score = -1;
    for (let c = 1; c < width; c++) {
      const p = clsProb[a * width + c]!;
      if (p > score) [score, bestCls[a]] = [p, c];
    }
    best[a] = score;
  }
  const floor = scoreFloor(o);
  const picked = topKIndices(best, limit(o.topK), (a) => best[a]! >= floor);
  return {
    anchor: picked,
    cls: picked.map((a) => bestCls[a]!),
    score: Float32Array.from(picked, (a) => best[a]!),
  };
}

/** Steps 4-5: indices into the candidates (already in score order) that survive NMS, at most keepTopK. */
function nonMaximumSuppression(boxes: Float32Array, cls: Int32Array, o: Required<DetectOptions>): number[] {
  const kept: number[] = [];
  const max = limit(o.keepTopK);
  for (let i = 0; i < cls.length && kept.length < max; i++) {
    const suppressed = kept.some(
      (k) => cls[k] === cls[i] && cornerIou(boxes, k * 4, boxes, i * 4) > o.nmsThreshold,
    );
    if (!suppressed) kept.push(i);
  }
  return kept;
}

function checkShapes(anchors: Float32Array, clsProb: Float32Array, locPred: Float32Array): number {
  const n = anchors.length / 4;
  const width = clsProb.length / n;
  if (!Number.isInteger(n) || !Number.isInteger(width) || width < 2 || locPred.length !== anchors.length) {
    throw new ClusterError(
      'MODEL',
      `detectObjects: ${anchors.length / 4} anchors need ${anchors.length} box offsets (got ${locPred.length}) and ` +
        `a multiple of them as class probabilities, at least 2 per anchor (got ${clsProb.length})`,
    );
  }
  return width;
}

/**
 * Detections for one image. anchors: [N * 4] (cx, cy, w, h) normalised; clsProb: [N * (C + 1)] softmax
 * probabilities, background first; locPred: [N * 4] predicted offsets.
 */
export function detectObjects(
  anchors: Float32Array,
  clsProb: Float32Array,
  locPred: Float32Array,
  options: DetectOptions = {},
): DetectionRow[] {
  const o = withDefaults(options);
  const width = checkShapes(anchors, clsProb, locPred);
  const cand =
    o.candidates === 'best-class'
      ? bestClassCandidates(clsProb, width, o)
      : perClassCandidates(clsProb, width, o);
  const boxes = new Float32Array(cand.anchor.length * 4);
  for (let i = 0; i < cand.anchor.length; i++) {
    decodeBox(anchors, cand.anchor[i]! * 4, locPred, cand.anchor[i]! * 4, o.variances, boxes, i * 4);
    for (let k = i * 4; k < i * 4 + 4; k++) boxes[k] = Math.min(1, Math.max(0, boxes[k]!));
  }
  return nonMaximumSuppression(boxes, cand.cls, o).map((i) => [
    cand.cls[i]! - 1,
    cand.score[i]!,
    boxes[i * 4]!,
    boxes[i * 4 + 1]!,
    boxes[i * 4 + 2]!,
    boxes[i * 4 + 3]!,
  ]);
}
