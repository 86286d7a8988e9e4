/**
 * Box arithmetic shared by target encoding, detection and loss mining. Pure, on packed arrays:
 * a box is 4 consecutive numbers, either corners (xmin, ymin, xmax, ymax) or centre form (cx, cy, w, h),
 * normalised to [0, 1] by the image side unless a caller says otherwise.
 */
import { cornerIou } from '../../shared/eval/box-iou.js';

/** (cx, cy, w, h) scale divisors of the SSD box encoding (caffe CENTER_SIZE, GluonCV stds, MXNet variances). */
export type Variances = readonly [number, number, number, number];
export const DEFAULT_VARIANCES: Variances = [0.1, 0.1, 0.2, 0.2];

/** IoU of two normalised corner boxes. */
export function iou(a: ArrayLike<number>, b: ArrayLike<number>): number {
  return cornerIou(a, 0, b, 0, 0);
}

/** [N * 4] centre boxes to [N * 4] corner boxes. */
export function centerToCorner(boxes: ArrayLike<number>): Float32Array {
  const out = new Float32Array(boxes.length);
  for (let k = 0; k < boxes.length; k += 4) {
    const halfW = boxes[k + 2]! / 2;
    const halfH = boxes[k + 3]! / 2;
    out[k] = boxes[k]! - halfW;
    out[k + 1] = boxes[k + 1]! - halfH;
    out[k + 2] = boxes[k]! + halfW;
    out[k + 3] = boxes[k + 1]! + halfH;
  }
  return out;
}

/**
 * Writes the regression target of corner box `gt[g..g+4]` relative to centre anchor `anchors[a..a+4]`:
 * tx = (gcx - acx) / (v0 aw), ty = (gcy - acy) / (v1 ah), tw = ln(gw / aw) / v2, th = ln(gh / ah) / v3.
 */
export function encodeBox(
  anchors: ArrayLike<number>,
  a: number,
  gt: ArrayLike<number>,
  g: number,
  variances: Variances,
  out: Float32Array,
  o: number,
): void {
  const aw = anchors[a + 2]!;
  const ah = anchors[a + 3]!;
  const gw = gt[g + 2]! - gt[g]!;
  const gh = gt[g + 3]! - gt[g + 1]!;
  out[o] = (gt[g]! + gw / 2 - anchors[a]!) / aw / variances[0];
  out[o + 1] = (gt[g + 1]! + gh / 2 - anchors[a + 1]!) / ah / variances[1];
  out[o + 2] = Math.log(gw / aw) / variances[2];
  out[o + 3] = Math.log(gh / ah) / variances[3];
}

/** Inverse of encodeBox: writes the corner box predicted by offsets `loc[l..l+4]` for centre anchor `a`. */
export function decodeBox(
  anchors: ArrayLike<number>,
  a: number,
  loc: ArrayLike<number>,
  l: number,
  variances: Variances,
  out: Float32Array,
  o: number,
): void {
  const aw = anchors[a + 2]!;
  const ah = anchors[a + 3]!;
  const cx = loc[l]! * variances[0] * aw + anchors[a]!;
  const cy = loc[l + 1]! * variances[1] * ah + anchors[a + 1]!;
  const halfW = (Math.exp(loc[l + 2]! * variances[2]) * aw) / 2;
  const halfH = (Math.exp(loc[l + 3]! * variances[3]) * ah) / 2;
  out[o] = cx - halfW;
  out[o + 1] = cy - halfH;
  out[o + 2] = cx + halfW;
  out[o + 3] = cy + halfH;
}

/**
 * Indices of the k best entries of `values` among those `accept`s, best first. Order: larger value first,
 * equal values by smaller index (so the choice is deterministic); NaN ranks below every number.
 * O(n log k) with a bounded min-heap whose root is the worst kept entry.
 */
export function topKIndices(
  values: ArrayLike<number>,
  k: number,
  accept: (index: number) => boolean = () => true,
): Int32Array {
  const key = (i: number) => {
    const v = values[i]!;
    return Number.isNaN(v) ? Number.NEGATIVE_INFINITY : v;
  };
  // Strictly better: a larger key, or the same key at a smaller index.
  const better = (i: number, j: number) => key(i) > key(j) || (key(i) === key(j) && i < j);
  const heap: number[] = [];
  if (k <= 0) return new Int32Array(0);
  for (let i = 0; i < values.length; i++) {
    if (!accept(i)) continue;
    if (heap.length < k) {
      heap.push(i);
      siftUp(heap, heap.length - 1, better);
    } else if (better(i, heap[0]!)) {
      heap[0] = i;
      siftDown(heap, 0, better);
    }
  }
  heap.sort((i, j) => (better(i, j) ? -1 : 1));
  return Int32Array.from(heap);
}

type Better = (i: number, j: number) => boolean;

/** Min-heap by `better`: a parent is never better than its children. */
function siftUp(heap: number[], at: number, better: Better): void {
  while (at > 0) {
    const parent = (at - 1) >> 1;
    if (!better(heap[parent]!, heap[at]!)) break;
    [heap[parent], heap[at]] = [heap[at]!, heap[parent]!];
    at = parent;
  }
}

function siftDown(heap: number[], at: number, better: Better): void {
  for (;;) {
    const left = 2 * at + 1;
    if (left >= heap.length) return;
    const right = left + 1;
    const worse = right < heap.length && better(heap[left]!, heap[right]!) ? right : left;
    if (!better(heap[at]!, heap[worse]!)) return;
    [heap[at], heap[worse]] = [heap[worse]!, heap[at]!];
    at = worse;
  }
}
