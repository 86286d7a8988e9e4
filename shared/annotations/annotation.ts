import {
  AnnotationError,
  at,
  type FieldPath,
  fail,
  readArray,
  readInteger,
  readNumber,
  readObject,
  readString,
} from './fields.js';

/**
 * SageMaker's raw-image JSON annotation (SPEC part 1, section 2), parsed and validated. Pure: text in,
 * plain data out; every error names the source and the field.
 *
 * ```json
 * {"file": "images/a.jpg", "image_size": [{"width": 500, "height": 400, "depth": 3}],
 *  "annotations": [{"class_id": 0, "left": 111, "top": 134, "width": 61, "height": 128}],
 *  "categories": [{"class_id": 0, "name": "dog"}]}
 * ```
 * Boxes are in pixels, left/top = top-left corner. A box may stick out of the image by at most
 * OUTSIDE_TOLERANCE of the image's width or height (labelling tools often overshoot by a pixel or
 * two); it is clipped when converted (convert.ts). A box further out, or entirely outside, is an error.
 */
export interface AnnotationObject {
  classId: number;
  left: number;
  top: number;
  width: number;
  height: number;
}

export interface Category {
  classId: number;
  name: string;
}

export interface Annotation {
  /** The image, relative to the channel root (JSON files) or the manifest's `source-ref`. */
  file: string;
  width: number;
  height: number;
  objects: AnnotationObject[];
  categories?: Category[];
}

/** An annotation and where it came from (file name or `manifest:line`), for error messages. */
export interface SourcedAnnotation {
  source: string;
  annotation: Annotation;
}

/** An annotation with the URL of its image (resolved against the channel root or the manifest). */
export interface AnnotatedImage extends SourcedAnnotation {
  imageUrl: string;
}

/** How far (fraction of the image's width or height) a box may extend outside the image. */
export const OUTSIDE_TOLERANCE = 0.05;

/** Parses one `.json` annotation file; `source` names it in errors. */
export function parseAnnotationFile(text: string, source: string): Annotation {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new AnnotationError(source, '(root)', `not valid JSON (${(err as Error).message})`, { cause: err });
  }
  const root = { source, field: '' };
  const object = readObject(value, root);
  const file = readString(object.file, at(root, 'file'));
  return { file, ...parseLabelBody(object, root) };
}

/**
 * The fields shared by annotation files and manifest label attributes: image_size, annotations and
 * (optional) categories.
 */
export function parseLabelBody(object: Record<string, unknown>, path: FieldPath): Omit<Annotation, 'file'> {
  const { width, height } = parseImageSize(object.image_size, at(path, 'image_size'));
  const list = readArray(object.annotations, at(path, 'annotations'));
  const objects = list.map((item, i) => parseObject(item, at(at(path, 'annotations'), i), width, height));
  if (object.categories === undefined) return { width, height, objects };
  return { width, height, objects, categories: parseCategories(object.categories, at(path, 'categories')) };
}

function parseImageSize(value: unknown, path: FieldPath): { width: number; height: number } {
  const list = readArray(value, path);
  if (list.length !== 1) fail(path, `expected a list of exactly one object, got ${list.length} entries`);
  const first = at(path, 0);
  const size = readObject(list[0], first);
  const width = readInteger(size.width, at(first, 'width'), 1);
  const height = readInteger(size.height, at(first, 'height'), 1);
  const depth = readInteger(size.depth, at(first, 'depth'), 1);
  if (depth !== 3) fail(at(first, 'depth'), `only 3-channel images are supported, got ${depth}`);
  return { width, height };
}

function parseObject(
  value: unknown,
  path: FieldPath,
  imageWidth: number,
  imageHeight: number,
): AnnotationObject {
  const item = readObject(value, path);
  const classId = readInteger(item.class_id, at(path, 'class_id'), 0);
  const left = readNumber(item.left, at(path, 'left'));
  const top = readNumber(item.top, at(path, 'top'));
  const width = readNumber(item.width, at(path, 'width'));
  const height = readNumber(item.height, at(path, 'height'));
  if (width <= 0) fail(at(path, 'width'), `must be > 0, got ${width}`);
  if (height <= 0) fail(at(path, 'height'), `must be > 0, got ${height}`);
  checkSpan(path, ['left', 'width'], left, width, imageWidth);
  checkSpan(path, ['top', 'height'], top, height, imageHeight);
  return { classId, left, top, width, height };
}

/** One axis of a box: [start, start + size) must overlap [0, limit) and stay within the tolerance. */
function checkSpan(
  path: FieldPath,
  [startKey, sizeKey]: [string, string],
  start: number,
  size: number,
  limit: number,
) {
  const tolerance = OUTSIDE_TOLERANCE * limit;
  const end = start + size;
  const image = `the image's ${sizeKey} ${limit}`;
  if (start >= limit) fail(at(path, startKey), `${start} lies outside ${image}`);
  if (end <= 0) fail(at(path, startKey), `the box ends at ${end}, before the image starts`);
  if (start < -tolerance) fail(at(path, startKey), `${start} is more than ${tolerance} px outside the image`);
  if (end > limit + tolerance)
    fail(
      at(path, sizeKey),
      `${startKey} + ${sizeKey} = ${end} exceeds ${image} by more than ${tolerance} px`,
    );
}

function parseCategories(value: unknown, path: FieldPath): Category[] {
  const list = readArray(value, path);
  const seen = new Map<number, string>();
  return list.map((item, i) => {
    const p = at(path, i);
    const entry = readObject(item, p);
    const classId = readInteger(entry.class_id, at(p, 'class_id'), 0);
    const name = readString(entry.name, at(p, 'name'));
    const previous = seen.get(classId);
    if (previous !== undefined && previous !== name)
      fail(
        at(p, 'name'),
        `class_id ${classId} is named both ${JSON.stringify(previous)} and ${JSON.stringify(name)}`,
      );
    seen.set(classId, name);
    return { classId, name };
  });
}
