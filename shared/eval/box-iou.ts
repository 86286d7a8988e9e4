/**
 * Intersection over union of two corner boxes (xmin, ymin, xmax, ymax), each read from an array at an
 * offset so callers can walk packed Float32Arrays without allocating.
 *
 * pixelOffset 1 is the PASCAL VOC convention for integer pixel boxes (the VOC devkit, py-faster-rcnn and
 * GluonCV all use it): a box covers x1..x2 inclusive, so widths are x2 - x1 + 1. Use 0 for normalised boxes.
 * A box with no area on either side gives 0, never NaN.
 */
export function cornerIou(
  a: ArrayLike<number>,
  aOffset: number,
  b: ArrayLike<number>,
  bOffset: number,
  pixelOffset = 0,
): number {
  const ax1 = a[aOffset]!;
  const ay1 = a[aOffset + 1]!;
  const ax2 = a[aOffset + 2]!;
  const ay2 = a[aOffset + 3]!;
  const bx1 = b[bOffset]!;
  const by1 = b[bOffset + 1]!;
  const bx2 = b[bOffset + 2]!;
  const by2 = b[bOffset + 3]!;
  const iw = Math.min(ax2, bx2) - Math.max(ax1, bx1) + pixelOffset;
  const ih = Math.min(ay2, by2) - Math.max(ay1, by1) + pixelOffset;
  if (iw <= 0 || ih <= 0) return 0;
  const inter = iw * ih;
  const areaA = (ax2 - ax1 + pixelOffset) * (ay2 - ay1 + pixelOffset);
  const areaB = (bx2 - bx1 + pixelOffset) * (by2 - by1 + pixelOffset);
  const union = areaA + areaB - inter;
  return union > 0 ? inter / union : 0;
}
