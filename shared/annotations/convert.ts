import type { Annotation, SourcedAnnotation } from './annotation.js';
import { AnnotationError, type FieldPath } from './fields.js';

/**
 * From SageMaker pixel boxes (left, top, width, height) to the normalised corner boxes of a RecordIO
 * detection label (SPEC part 1, section 2):
 *   xmin = left / W, ymin = top / H, xmax = (left + width) / W, ymax = (top + height) / H,
 * clipped to [0, 1] (annotation.ts only lets boxes through that overshoot by a small tolerance).
 */
export interface NormalizedObject {
  class: number;
  xmin: number;
  ymin: number;
  xmax: number;
  ymax: number;
}

const clip01 = (x: number) => Math.min(1, Math.max(0, x));

export function toNormalizedObjects(annotation: Annotation): NormalizedObject[] {
  const { width: w, height: h } = annotation;
  return annotation.objects.map((o) => ({
    class: o.classId,
    xmin: clip01(o.left / w),
    ymin: clip01(o.top / h),
    xmax: clip01((o.left + o.width) / w),
    ymax: clip01((o.top + o.height) / h),
  }));
}

export interface ClassSet {
  classCount: number;
  /** Index = class id; from `categories` (or a manifest's class-map), else `class_<id>`. */
  names: string[];
}

/**
 * The classes of a whole data set. Class ids, from objects and categories together, must be the
 * consecutive integers 0..K-1 (SPEC part 1, section 2); a category name must be the same in every
 * file that gives one.
 */
export function compileClassSet(entries: readonly SourcedAnnotation[]): ClassSet {
  const firstUse = new Map<number, FieldPath>();
  const names = new Map<number, { name: string; source: string }>();
  for (const { source, annotation } of entries) {
    annotation.objects.forEach((o, i) => {
      if (!firstUse.has(o.classId)) firstUse.set(o.classId, { source, field: `annotations[${i}].class_id` });
    });
    annotation.categories?.forEach((c, i) => {
      const field = `categories[${i}]`;
      if (!firstUse.has(c.classId)) firstUse.set(c.classId, { source, field: `${field}.class_id` });
      const known = names.get(c.classId);
      if (known && known.name !== c.name) {
        const problem = `class_id ${c.classId} is named ${JSON.stringify(c.name)} here but ${JSON.stringify(known.name)} in ${known.source}`;
        throw new AnnotationError(source, `${field}.name`, problem);
      }
      names.set(c.classId, { name: c.name, source });
    });
  }
  const classCount = checkConsecutive(firstUse);
  return {
    classCount,
    names: Array.from({ length: classCount }, (_, id) => names.get(id)?.name ?? `class_${id}`),
  };
}

function checkConsecutive(firstUse: ReadonlyMap<number, FieldPath>): number {
  if (firstUse.size === 0)
    throw new AnnotationError('(data set)', 'annotations', 'no objects in any annotation');
  const largest = Math.max(...firstUse.keys());
  const missing: number[] = [];
  for (let id = 0; id <= largest && missing.length < 10; id++) if (!firstUse.has(id)) missing.push(id);
  if (missing.length > 0) {
    const where = firstUse.get(largest)!;
    throw new AnnotationError(
      where.source,
      where.field,
      `class ids must be consecutive from 0, but ${missing.join(', ')} never occur(s) while ${largest} does`,
    );
  }
  return largest + 1;
}
