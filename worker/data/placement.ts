/**
 * How a window of the original image becomes the S x S network input, as plain numbers (pure):
 *
 *   1. the whole decoded image is resized to scaledWidth x scaledHeight, the size at which the window
 *      spans S x S (rounded to whole pixels): by libvips (JPEG shrink-on-load applies, and it computes
 *      only the pixels extracted next) or, for small images, by resample.ts, which renders only the
 *      region (decode.ts rendersInJs picks);
 *   2. `region` (in the resized image) is extracted: the part of the window the image covers;
 *   3. it lands at (left, top) of the output, the rest of which is mean fill.
 *
 * An image point x maps to output point originX + x * scaleX (likewise y), with scaleX =
 * scaledWidth / width exactly, so boxes mapped with mapBoxes stay on the pixels they cover.
 */
import type { PixelRect } from './crop.js';
import { allocateGroundTruth, type GroundTruth, selectGroundTruth } from './ground-truth.js';

export interface Placement {
  /** Output side S. */
  size: number;
  scaledWidth: number;
  scaledHeight: number;
  /** The part of the resized image inside the output, or null when the window holds only fill. */
  region: PixelRect | null;
  /** Output pixel of the region's top-left. */
  left: number;
  top: number;
  originX: number;
  originY: number;
  scaleX: number;
  scaleY: number;
}

/** Largest side we ever resize a whole image to (the window is >= ~0.2 of the canvas, so ~5 S). */
const MAX_SCALED_SIDE = 16384;

function axis(start: number, span: number, extent: number, size: number) {
  const scaled = Math.min(MAX_SCALED_SIDE, Math.max(1, Math.round((extent * size) / span)));
  const scale = scaled / extent;
  const origin = 0 - Math.round(start * scale); // (not Math.round(-x): no -0)
  const from = Math.min(size, Math.max(0, origin));
  const to = Math.min(size, Math.max(0, origin + scaled));
  return { scaled, scale, origin, from, to };
}

/** Places `window` (original-image pixels) of a width x height image onto an S x S output. */
export function placeWindow(window: PixelRect, width: number, height: number, size: number): Placement {
  const x = axis(window.x, window.width, width, size);
  const y = axis(window.y, window.height, height, size);
  const empty = x.to <= x.from || y.to <= y.from;
  return {
    size,
    scaledWidth: x.scaled,
    scaledHeight: y.scaled,
    region: empty
      ? null
      : { x: x.from - x.origin, y: y.from - y.origin, width: x.to - x.from, height: y.to - y.from },
    left: x.from,
    top: y.from,
    originX: x.origin,
    originY: y.origin,
    scaleX: x.scale,
    scaleY: y.scale,
  };
}

/** The plain resize of validation: the whole image to S x S. */
export function placeWholeImage(width: number, height: number, size: number): Placement {
  return placeWindow({ x: 0, y: 0, width, height }, width, height, size);
}

/**
 * Boxes given as pixel corners relative to the window (`kept` says which ground-truth objects they are)
 * mapped onto the output, clipped to it, normalised by S and mirrored when `flip`; boxes left without
 * area are dropped.
 */
export function mapBoxes(
  source: GroundTruth,
  kept: readonly number[],
  windowBoxes: ArrayLike<number>,
  window: PixelRect,
  p: Placement,
  flip: boolean,
): GroundTruth {
  const s = p.size;
  const clip = (v: number) => Math.min(1, Math.max(0, v / s));
  const out: number[] = [];
  const survivors: number[] = [];
  kept.forEach((from, i) => {
    let x1 = clip(p.originX + (windowBoxes[4 * i]! + window.x) * p.scaleX);
    const y1 = clip(p.originY + (windowBoxes[4 * i + 1]! + window.y) * p.scaleY);
    let x2 = clip(p.originX + (windowBoxes[4 * i + 2]! + window.x) * p.scaleX);
    const y2 = clip(p.originY + (windowBoxes[4 * i + 3]! + window.y) * p.scaleY);
    if (flip) [x1, x2] = [1 - x2, 1 - x1];
    if (!(x2 > x1 && y2 > y1)) return;
    out.push(x1, y1, x2, y2);
    survivors.push(from);
  });
  return survivors.length === 0 ? allocateGroundTruth(0) : selectGroundTruth(source, survivors, out);
}
