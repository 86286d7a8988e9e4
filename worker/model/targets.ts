/**
 * SSD training targets for one image: anchor-to-ground-truth matching and box encoding. Pure, on the data path.
 *
 * Matching (GluonCV CompositeMatcher([BipartiteMatcher(share_max=False), MaximumMatcher(t)]), caffe
 * match_type PER_PREDICTION):
 *  1. Bipartite: MXNet contrib.bipartite_matching walks all (anchor, gt) pairs by IoU descending (a stable
 *     sort, so equal IoUs go in flat order anchor-major, then gt) and takes a pair when neither side is taken
 *     and IoU > 1e-12. Equivalently: repeatedly take the best free pair, ties to the smaller anchor index and
 *     then the smaller gt index. That is what bipartiteMatch does, in O(N M) plus one column rescan each time
 *     a gt loses its best anchor to another gt, instead of sorting N * M pairs.
 *  2. Every anchor left unmatched whose best IoU (first gt on ties) is >= overlapThreshold takes that gt.
 * IoU is computed in float64 on the float32 inputs without the +1 pixel offset (the boxes are normalised).
 */

import { ClusterError } from '../../shared/errors.js';
import { centerToCorner, DEFAULT_VARIANCES, encodeBox, type Variances } from './box.js';

export { iou } from './box.js';

/** Ground truth of one image: M corner boxes normalised to [0, 1] and their 0-based class ids. */
export interface GroundTruth {
  boxes: Float32Array;
  classes: Int32Array;
}

export interface AnchorMatch {
  /** For each anchor, the index of its ground-truth box, or -1 for background. */
  matchedGt: Int32Array;
}

export interface EncodedTargets {
  /** 0 = background, class + 1 otherwise. */
  clsTarget: Int32Array;
  /** [N * 4] encoded offsets; zero for background anchors. */
  locTarget: Float32Array;
  numPositives: number;
}

/** Pairs with IoU at or below this are never matched by the bipartite step (MXNet's default threshold). */
const BIPARTITE_MIN_IOU = 1e-12;

/** Anchors as separate coordinate columns plus areas, cached per anchor array (the same one every image). */
interface AnchorColumns {
  x1: Float64Array;
  y1: Float64Array;
  x2: Float64Array;
  y2: Float64Array;
  area: Float64Array;
}
const columnCache = new WeakMap<Float32Array, AnchorColumns>();

function anchorColumns(anchors: Float32Array): AnchorColumns {
  const cached = columnCache.get(anchors);
  if (cached) return cached;
  const n = anchors.length / 4;
  const cols = {
    x1: new Float64Array(n),
    y1: new Float64Array(n),
    x2: new Float64Array(n),
    y2: new Float64Array(n),
    area: new Float64Array(n),
  };
  for (let a = 0; a < n; a++) {
    cols.x1[a] = anchors[a * 4]!;
    cols.y1[a] = anchors[a * 4 + 1]!;
    cols.x2[a] = anchors[a * 4 + 2]!;
    cols.y2[a] = anchors[a * 4 + 3]!;
    cols.area[a] = (cols.x2[a]! - cols.x1[a]!) * (cols.y2[a]! - cols.y1[a]!);
  }
  columnCache.set(anchors, cols);
  return cols;
}

function gtCount(gt: GroundTruth): number {
  const m = gt.boxes.length / 4;
  if (!Number.isInteger(m) || gt.classes.length !== m) {
    throw new ClusterError(
      'INTERNAL',
      `ground truth has ${gt.boxes.length} box values for ${gt.classes.length} classes (need 4 per class)`,
    );
  }
  return m;
}

/** IoU of anchor `a` with corner box `b[o..o+4]`; the arithmetic of cornerIou with offset 0. */
function anchorIou(cols: AnchorColumns, a: number, b: ArrayLike<number>, o: number): number {
  const iw = Math.min(cols.x2[a]!, b[o + 2]!) - Math.max(cols.x1[a]!, b[o]!);
  if (iw <= 0) return 0;
  const ih = Math.min(cols.y2[a]!, b[o + 3]!) - Math.max(cols.y1[a]!, b[o + 1]!);
  if (ih <= 0) return 0;
  const inter = iw * ih;
  const union = cols.area[a]! + (b[o + 2]! - b[o]!) * (b[o + 3]! - b[o + 1]!) - inter;
  return union > 0 ? inter / union : 0;
}

/** Best anchor for gt `g` among anchors not taken (first anchor on ties). */
function bestFreeAnchor(cols: AnchorColumns, gt: Float32Array, g: number, taken: Uint8Array) {
  let best = 0;
  let bestIou = 0;
  for (let a = 0; a < taken.length; a++) {
    if (taken[a]) continue;
    const v = anchorIou(cols, a, gt, g * 4);
    if (v > bestIou) {
      bestIou = v;
      best = a;
    }
  }
  return { anchor: best, iou: bestIou };
}

/** Step 1 (see header). `bestAnchor`/`bestIou` per gt come in from the full IoU pass and are updated here. */
function bipartiteMatch(
  cols: AnchorColumns,
  gt: Float32Array,
  bestAnchor: Int32Array,
  bestIou: Float64Array,
  matchedGt: Int32Array,
): void {
  const m = bestAnchor.length;
  const taken = new Uint8Array(matchedGt.length);
  const done = new Uint8Array(m);
  for (let round = 0; round < m; round++) {
    let pick = -1;
    for (let g = 0; g < m; g++) {
      if (done[g]) continue;
      const isBetter =
        pick < 0 ||
        bestIou[g]! > bestIou[pick]! ||
        (bestIou[g] === bestIou[pick] && bestAnchor[g]! < bestAnchor[pick]!);
      if (isBetter) pick = g;
    }
    if (pick < 0 || !(bestIou[pick]! > BIPARTITE_MIN_IOU)) return;
    const anchor = bestAnchor[pick]!;
    done[pick] = 1;
    taken[anchor] = 1;
    matchedGt[anchor] = pick;
    for (let g = 0; g < m; g++) {
      if (done[g] || bestAnchor[g] !== anchor) continue;
      const next = bestFreeAnchor(cols, gt, g, taken);
      bestAnchor[g] = next.anchor;
      bestIou[g] = next.iou;
    }
  }
}

/**
 * Full IoU pass: each anchor's best gt (first on ties) and each gt's best anchor (first on ties). The same
 * arithmetic as cornerIou (offset 0), inlined and column-wise with early rejects: this is the data path's hot loop.
 * A pair without overlap has IoU 0, so skipping it leaves the "first on ties" results unchanged.
 */
function bestPairs(anchors: Float32Array, gtBoxes: Float32Array, m: number) {
  const cols = anchorColumns(anchors);
  const n = cols.area.length;
  const anchorBestGt = new Int32Array(n);
  const anchorBestIou = new Float64Array(n);
  const gtBestAnchor = new Int32Array(m);
  const gtBestIou = new Float64Array(m);
  const { x1, y1, x2, y2, area } = cols;
  for (let g = 0; g < m; g++) {
    const gx1 = gtBoxes[g * 4]!;
    const gy1 = gtBoxes[g * 4 + 1]!;
    const gx2 = gtBoxes[g * 4 + 2]!;
    const gy2 = gtBoxes[g * 4 + 3]!;
    const gArea = (gx2 - gx1) * (gy2 - gy1);
    let best = 0;
    let bestAnchor = 0;
    for (let a = 0; a < n; a++) {
      // anchorIou inlined (same arithmetic, so the bipartite rescans see identical values).
      const iw = Math.min(x2[a]!, gx2) - Math.max(x1[a]!, gx1);
      if (iw <= 0) continue;
      const ih = Math.min(y2[a]!, gy2) - Math.max(y1[a]!, gy1);
      if (ih <= 0) continue;
      const inter = iw * ih;
      const union = area[a]! + gArea - inter;
      const v = union > 0 ? inter / union : 0;
      if (v > anchorBestIou[a]!) {
        anchorBestIou[a] = v;
        anchorBestGt[a] = g;
      }
      if (v > best) {
        best = v;
        bestAnchor = a;
      }
    }
    gtBestIou[g] = best;
    gtBestAnchor[g] = bestAnchor;
  }
  return { anchorBestGt, anchorBestIou, gtBestAnchor, gtBestIou };
}

/**
 * Matches anchors (corner form, [N * 4]) to ground truth: the bipartite step, then IoU >= overlapThreshold.
 * 8732 anchors x 20 boxes takes about a millisecond.
 */
export function matchAnchors(
  anchorsCorner: Float32Array,
  gt: GroundTruth,
  overlapThreshold: number,
): AnchorMatch {
  const n = anchorsCorner.length / 4;
  const m = gtCount(gt);
  const matchedGt = new Int32Array(n).fill(-1);
  if (m === 0) return { matchedGt };
  const best = bestPairs(anchorsCorner, gt.boxes, m);
  bipartiteMatch(anchorColumns(anchorsCorner), gt.boxes, best.gtBestAnchor, best.gtBestIou, matchedGt);
  for (let a = 0; a < n; a++) {
    if (matchedGt[a] === -1 && best.anchorBestIou[a]! >= overlapThreshold)
      matchedGt[a] = best.anchorBestGt[a]!;
  }
  return { matchedGt };
}

/** Class and box targets from a match; anchors in centre form (cx, cy, w, h), ground truth in corners. */
export function encodeTargets(
  anchors: Float32Array,
  gt: GroundTruth,
  matchedGt: Int32Array,
  variances: Variances = DEFAULT_VARIANCES,
): EncodedTargets {
  const n = matchedGt.length;
  const clsTarget = new Int32Array(n);
  const locTarget = new Float32Array(n * 4);
  let numPositives = 0;
  for (let a = 0; a < n; a++) {
    const g = matchedGt[a]!;
    if (g < 0) continue;
    clsTarget[a] = gt.classes[g]! + 1;
    encodeBox(anchors, a * 4, gt.boxes, g * 4, variances, locTarget, a * 4);
    numPositives++;
  }
  return { clsTarget, locTarget, numPositives };
}

export interface TargetOptions {
  overlapThreshold?: number;
  variances?: Variances;
}

/**
 * matchAnchors + encodeTargets for callers holding anchors in centre form. Pass `anchorsCorner` (from
 * centerToCorner) to avoid recomputing it per image.
 */
export function computeTargets(
  anchors: Float32Array,
  gt: GroundTruth,
  options: TargetOptions & { anchorsCorner?: Float32Array } = {},
): EncodedTargets {
  const corners = options.anchorsCorner ?? centerToCorner(anchors);
  const { matchedGt } = matchAnchors(corners, gt, options.overlapThreshold ?? 0.5);
  return encodeTargets(anchors, gt, matchedGt, options.variances ?? DEFAULT_VARIANCES);
}
