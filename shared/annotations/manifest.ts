import { type Annotation, type Category, parseLabelBody, type SourcedAnnotation } from './annotation.js';
import { AnnotationError, at, type FieldPath, fail, readObject, readString } from './fields.js';

/**
 * One line of a SageMaker augmented manifest (JSON Lines), e.g. from a Ground Truth labelling job:
 *
 * ```json
 * {"source-ref": "s3://b/image1.jpg",
 *  "bounding-box": {"image_size": [{"width": 500, "height": 400, "depth": 3}], "annotations": [...]},
 *  "bounding-box-metadata": {"class-map": {"0": "dog"}, "type": "groundtruth/object_detection"}}
 * ```
 * The label attribute is the one named by `labelAttribute`, else the first key that is neither
 * `source-ref` nor ends in `-metadata` (SageMaker's AttributeNames are ["source-ref", label] in
 * that order). SageMaker ignores the metadata when training; we only read its `class-map` (when
 * present) as category names, for classes.json.
 */
export interface ManifestOptions {
  labelAttribute?: string;
}

/** `source` names the manifest and `lineNo` is 1-based; errors name `source:lineNo` and the field. */
export function parseManifestLine(
  line: string,
  source: string,
  lineNo: number,
  options: ManifestOptions = {},
): Annotation {
  const where = `${source}:${lineNo}`;
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (err) {
    throw new AnnotationError(where, '(line)', `not valid JSON (${(err as Error).message})`, { cause: err });
  }
  const root = { source: where, field: '' };
  const object = readObject(value, root);
  const file = readString(object['source-ref'], at(root, 'source-ref'));
  const attribute = options.labelAttribute ?? findLabelAttribute(object, root);
  const body = parseLabelBody(readObject(object[attribute], at(root, attribute)), at(root, attribute));
  const classMap = object[`${attribute}-metadata`];
  if (body.categories !== undefined || classMap === undefined) return { file, ...body };
  const categories = parseClassMap(classMap, at(root, `${attribute}-metadata`));
  return categories ? { file, ...body, categories } : { file, ...body };
}

function findLabelAttribute(object: Record<string, unknown>, root: FieldPath): string {
  const key = Object.keys(object).find((k) => k !== 'source-ref' && !k.endsWith('-metadata'));
  if (key === undefined)
    fail(root, 'no label attribute (a key other than source-ref and *-metadata); use --label-attribute');
  return key;
}

/** `{"class-map": {"0": "dog", ...}}` -> categories; undefined when the metadata has no class-map. */
function parseClassMap(metadata: unknown, path: FieldPath): Category[] | undefined {
  const meta = readObject(metadata, path);
  if (meta['class-map'] === undefined) return undefined;
  const mapPath = at(path, 'class-map');
  const map = readObject(meta['class-map'], mapPath);
  return Object.entries(map).map(([key, name]) => {
    const classId = Number(key);
    if (!/^\d+$/.test(key) || !Number.isSafeInteger(classId))
      fail(at(mapPath, key), 'class-map keys must be class ids (integers >= 0)');
    return { classId, name: readString(name, at(mapPath, key)) };
  });
}

/**
 * Parses a whole manifest: blank lines are skipped, line numbers count every line.
 * Returns the annotations in line order (their keys in a RecordIO file follow that order).
 */
export function parseManifest(
  text: string,
  source: string,
  options: ManifestOptions = {},
): SourcedAnnotation[] {
  const out: SourcedAnnotation[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    out.push({ source: `${source}:${i + 1}`, annotation: parseManifestLine(line, source, i + 1, options) });
  });
  return out;
}
