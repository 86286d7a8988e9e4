/**
 * The detection label layout inside an image record's float array (SPEC part 1, 3.4):
 *
 *   [A, B, extra_header_1 .. extra_header_(A-2), obj_1[B], obj_2[B], ...]
 *   obj = [class_id, xmin, ymin, xmax, ymax, extra...]       (B >= 6: extra[0] is "difficult")
 *
 * Checks, as MXNet's ImageDetLabel::FromArray: A >= 2, B >= 5, (length - A) % B == 0. Unlike MXNet we
 * accept a label with no objects (a background image); degenerate boxes are kept (the training data
 * path decides what to drop). Rows whose class is -1 (label_pad_value) are padding: they end the object
 * list, and every row after one must be padding too. Pure.
 */
import { ClusterError, RecordIOError } from '../errors.js';
import type { RecordContext } from './image-record.js';

export interface DetectionObject {
  class: number;
  xmin: number;
  ymin: number;
  xmax: number;
  ymax: number;
  /** Present when B >= 6: field 5 != 0. */
  difficult?: boolean;
  /** Every per-object field after ymax (so with B >= 6, extra[0] is the raw difficult value). */
  extra: number[];
}

export interface DetectionLabel {
  /** A: header width, counting itself and B. */
  headerWidth: number;
  /** B: floats per object. */
  objectWidth: number;
  /** The A - 2 extra header values (GluonCV: image width and height). */
  header: number[];
  objects: DetectionObject[];
}

/** The class value of a padding row (MXNet's label_pad_value). */
export const LABEL_PAD_VALUE = -1;

/** Why `labels` is not a detection label, or null when it is one. */
export function detectionLabelProblem(labels: ArrayLike<number> | null): string | null {
  if (labels === null) return 'the record has a scalar label (IRHeader flag 0), not a label array';
  if (labels.length < 2) return `a detection label needs at least 2 floats [A, B], got ${labels.length}`;
  const a = labels[0]!;
  const b = labels[1]!;
  if (!Number.isInteger(a) || a < 2) return `header width A = ${a} must be an integer >= 2`;
  if (!Number.isInteger(b) || b < 5) return `object width B = ${b} must be an integer >= 5`;
  if (a > labels.length) return `header width A = ${a} exceeds the label length ${labels.length}`;
  if ((labels.length - a) % b !== 0) {
    return `label length ${labels.length} minus header width ${a} is not a multiple of object width ${b}`;
  }
  return rowsProblem(labels, a, b);
}

function rowsProblem(labels: ArrayLike<number>, a: number, b: number): string | null {
  let padding = false;
  for (let row = 0, at = a; at < labels.length; row++, at += b) {
    const cls = labels[at]!;
    if (cls === LABEL_PAD_VALUE) padding = true;
    else if (padding) return `object ${row} (class ${cls}) follows a padding row (class -1)`;
    else if (!Number.isInteger(cls) || cls < 0) return `object ${row} has class ${cls}, not an integer >= 0`;
    if (padding) continue;
    for (let k = 1; k < b; k++) {
      if (!Number.isFinite(labels[at + k]!)) return `object ${row} field ${k} is ${labels[at + k]}`;
    }
  }
  return null;
}

/** The parsed label, or null when `labels` is not a detection label (see detectionLabelProblem). */
export function parseDetectionLabel(labels: ArrayLike<number> | null): DetectionLabel | null {
  if (detectionLabelProblem(labels) !== null) return null;
  const values = labels!;
  const a = values[0]!;
  const b = values[1]!;
  const objects: DetectionObject[] = [];
  for (let at = a; at < values.length && values[at] !== LABEL_PAD_VALUE; at += b) {
    objects.push(readObject(values, at, b));
  }
  return {
    headerWidth: a,
    objectWidth: b,
    header: Array.from({ length: a - 2 }, (_, i) => values[2 + i]!),
    objects,
  };
}

function readObject(values: ArrayLike<number>, at: number, b: number): DetectionObject {
  const extra = Array.from({ length: b - 5 }, (_, i) => values[at + 5 + i]!);
  const object: DetectionObject = {
    class: values[at]!,
    xmin: values[at + 1]!,
    ymin: values[at + 2]!,
    xmax: values[at + 3]!,
    ymax: values[at + 4]!,
    extra,
  };
  if (b >= 6) object.difficult = extra[0] !== 0;
  return object;
}

/** Like parseDetectionLabel, but a label that is not a detection label is a RecordIOError naming the record. */
export function expectDetectionLabel(labels: ArrayLike<number> | null, ctx: RecordContext): DetectionLabel {
  const problem = detectionLabelProblem(labels);
  if (problem !== null)
    throw new RecordIOError(ctx.source, ctx.offset, `unparsable detection label: ${problem}`);
  return parseDetectionLabel(labels)!;
}

export type DetectionObjectInput = Pick<
  DetectionObject,
  'class' | 'xmin' | 'ymin' | 'xmax' | 'ymax' | 'difficult'
>;

export interface EncodeDetectionLabelOptions {
  /** 5: [cls, xmin, ymin, xmax, ymax]; 6: plus difficult (1/0). Default 5. */
  objectWidth?: 5 | 6;
  /** Extra header values after [A, B] (GluonCV: [width, height]). */
  header?: number[];
}

/** [A, B, ...header, objects...] as float32, ready for encodeImageRecord's `label`. */
export function encodeDetectionLabel(
  objects: readonly DetectionObjectInput[],
  options: EncodeDetectionLabelOptions = {},
): Float32Array {
  const b = options.objectWidth ?? 5;
  const header = options.header ?? [];
  const a = 2 + header.length;
  const out = new Float32Array(a + b * objects.length);
  out.set([a, b, ...header]);
  objects.forEach((o, i) => {
    if (!Number.isInteger(o.class) || o.class < 0) {
      throw new ClusterError(
        'RECORDIO',
        `encodeDetectionLabel: object ${i} class ${o.class} must be an integer >= 0`,
      );
    }
    if (b === 5 && o.difficult === true) {
      throw new ClusterError(
        'RECORDIO',
        `encodeDetectionLabel: object ${i} is difficult but objectWidth 5 has no field for it`,
      );
    }
    const row = [o.class, o.xmin, o.ymin, o.xmax, o.ymax];
    if (b === 6) row.push(o.difficult ? 1 : 0);
    out.set(row, a + b * i);
  });
  return out;
}
