/**
 * The ground truth of one image as the model consumes it: M boxes packed as normalised corners
 * (xmin, ymin, xmax, ymax) in [0, 1] of the image's width and height, their class ids (0-based, no
 * background) and difficult flags. Pure.
 *
 * Label rules shared by RecordIO labels and SageMaker JSON annotations (checked by labelProblem):
 * coordinates are finite; classes are integers >= 0 and < numClasses when it is known; a box may not be
 * inverted (xmin > xmax or ymin > ymax). packGroundTruth then clips boxes to [0, 1] and drops those left
 * with no area (zero-size boxes and boxes entirely outside the image), which cannot be matched to anchors.
 */
import type { DetectionObjectInput } from '../../shared/recordio/detection-label.js';

export interface GroundTruth {
  /** M*4 normalised corners xmin, ymin, xmax, ymax. */
  boxes: Float32Array;
  classes: Int32Array;
  difficult: Uint8Array;
}

/** One labelled object as the label formats give it (normalised corners). */
export type LabelObject = DetectionObjectInput;

export function boxCount(gt: GroundTruth): number {
  return gt.classes.length;
}

export function emptyGroundTruth(): GroundTruth {
  return { boxes: new Float32Array(0), classes: new Int32Array(0), difficult: new Uint8Array(0) };
}

/** Why these objects are not a usable label (naming the object and field), or null. */
export function labelProblem(objects: readonly LabelObject[], numClasses?: number): string | null {
  for (let i = 0; i < objects.length; i++) {
    const o = objects[i]!;
    if (!Number.isInteger(o.class) || o.class < 0)
      return `object ${i} has class ${o.class}, not an integer >= 0`;
    if (numClasses !== undefined && o.class >= numClasses) {
      return `object ${i} has class ${o.class}, but num_classes is ${numClasses} (classes 0..${numClasses - 1})`;
    }
    for (const key of ['xmin', 'ymin', 'xmax', 'ymax'] as const) {
      if (!Number.isFinite(o[key])) return `object ${i} has ${key} ${o[key]}`;
    }
    if (o.xmin > o.xmax) return `object ${i} is inverted: xmin ${o.xmin} > xmax ${o.xmax}`;
    if (o.ymin > o.ymax) return `object ${i} is inverted: ymin ${o.ymin} > ymax ${o.ymax}`;
  }
  return null;
}

const clip01 = (x: number) => Math.min(1, Math.max(0, x));

/** Packs objects (already checked by labelProblem), clipped to [0, 1], without the ones left empty. */
export function packGroundTruth(objects: readonly LabelObject[]): GroundTruth {
  const kept = objects
    .map((o) => ({
      ...o,
      xmin: clip01(o.xmin),
      ymin: clip01(o.ymin),
      xmax: clip01(o.xmax),
      ymax: clip01(o.ymax),
    }))
    .filter((o) => o.xmax > o.xmin && o.ymax > o.ymin);
  const gt = allocateGroundTruth(kept.length);
  kept.forEach((o, i) => {
    gt.boxes.set([o.xmin, o.ymin, o.xmax, o.ymax], 4 * i);
    gt.classes[i] = o.class;
    gt.difficult[i] = o.difficult ? 1 : 0;
  });
  return gt;
}

export function allocateGroundTruth(count: number): GroundTruth {
  return {
    boxes: new Float32Array(4 * count),
    classes: new Int32Array(count),
    difficult: new Uint8Array(count),
  };
}

/**
 * A new GroundTruth holding the objects `kept` (indices into `source`) with the given boxes
 * (kept.length * 4 normalised corners, in the same order).
 */
export function selectGroundTruth(
  source: GroundTruth,
  kept: readonly number[],
  boxes: ArrayLike<number>,
): GroundTruth {
  const gt = allocateGroundTruth(kept.length);
  kept.forEach((from, i) => {
    for (let k = 0; k < 4; k++) gt.boxes[4 * i + k] = boxes[4 * i + k]!;
    gt.classes[i] = source.classes[from]!;
    gt.difficult[i] = source.difficult[from]!;
  });
  return gt;
}
