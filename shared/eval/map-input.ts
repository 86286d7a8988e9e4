/**
 * Parsing of the `ssd-cluster map` input files (pure): JSON arrays of
 *   ground truth  {"image": string, "class": int, "box": [xmin, ymin, xmax, ymax], "difficult"?: bool}
 *   detections    {"image": string, "class": int, "score": number, "box": [xmin, ymin, xmax, ymax]}
 * Every error names the file and the element and field, e.g. `gt.json: element [3].box[2]: expected a finite number`.
 */
import { ClusterError } from '../errors.js';
import type { DetectionEntry, GroundTruthEntry } from './voc-map.js';

type Json = Record<string, unknown>;

function problem(source: string, where: string, message: string): ClusterError {
  return new ClusterError('ANNOTATION', `${source}: ${where}: ${message}`);
}

function parseArray(text: string, source: string): unknown[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ClusterError('ANNOTATION', `${source}: not valid JSON (${(err as Error).message})`, {
      cause: err,
    });
  }
  if (!Array.isArray(value))
    throw new ClusterError('ANNOTATION', `${source}: expected a JSON array of objects`);
  return value;
}

function objectAt(value: unknown, source: string, where: string): Json {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw problem(source, where, `expected an object, got ${JSON.stringify(value)}`);
  }
  return value as Json;
}

function imageOf(o: Json, source: string, where: string): string {
  const image = o.image;
  if (typeof image !== 'string' || image === '') {
    throw problem(source, `${where}.image`, `expected a non-empty string, got ${JSON.stringify(image)}`);
  }
  return image;
}

function classOf(o: Json, source: string, where: string): number {
  const cls = o.class;
  if (typeof cls !== 'number' || !Number.isInteger(cls) || cls < 0) {
    throw problem(source, `${where}.class`, `expected an integer >= 0, got ${JSON.stringify(cls)}`);
  }
  return cls;
}

function boxOf(o: Json, source: string, where: string): number[] {
  const box = o.box;
  if (!Array.isArray(box) || box.length !== 4) {
    throw problem(source, `${where}.box`, `expected [xmin, ymin, xmax, ymax], got ${JSON.stringify(box)}`);
  }
  for (const [k, v] of box.entries()) {
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw problem(source, `${where}.box[${k}]`, `expected a finite number, got ${JSON.stringify(v)}`);
    }
  }
  if (box[2] < box[0] || box[3] < box[1]) {
    throw problem(source, `${where}.box`, `xmax < xmin or ymax < ymin in ${JSON.stringify(box)}`);
  }
  return box as number[];
}

export function parseGroundTruthJson(text: string, source: string): GroundTruthEntry[] {
  return parseArray(text, source).map((value, k) => {
    const where = `element [${k}]`;
    const o = objectAt(value, source, where);
    const difficult = o.difficult ?? false;
    if (typeof difficult !== 'boolean') {
      throw problem(source, `${where}.difficult`, `expected true or false, got ${JSON.stringify(difficult)}`);
    }
    return {
      imageId: imageOf(o, source, where),
      classId: classOf(o, source, where),
      box: boxOf(o, source, where),
      difficult,
    };
  });
}

export function parseDetectionsJson(text: string, source: string): DetectionEntry[] {
  return parseArray(text, source).map((value, k) => {
    const where = `element [${k}]`;
    const o = objectAt(value, source, where);
    const score = o.score;
    if (typeof score !== 'number' || !Number.isFinite(score)) {
      throw problem(source, `${where}.score`, `expected a finite number, got ${JSON.stringify(score)}`);
    }
    return {
      imageId: imageOf(o, source, where),
      classId: classOf(o, source, where),
      score,
      box: boxOf(o, source, where),
    };
  });
}
