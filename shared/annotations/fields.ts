import { ClusterError } from '../errors.js';

/**
 * A malformed SageMaker annotation: names the file (or `manifest:line`), the field path inside it
 * (`annotations[2].width`) and what is wrong.
 */
export class AnnotationError extends ClusterError {
  readonly source: string;
  readonly field: string;
  constructor(source: string, field: string, problem: string, options?: { cause?: unknown }) {
    super('ANNOTATION', `${source}: ${field}: ${problem}`, options);
    this.name = 'AnnotationError';
    this.source = source;
    this.field = field;
  }
}

/** Where a value sits: the file (or manifest line) and the field path inside it. */
export interface FieldPath {
  source: string;
  field: string;
}

export function at(parent: FieldPath, key: string | number): FieldPath {
  const field =
    typeof key === 'number' ? `${parent.field}[${key}]` : parent.field ? `${parent.field}.${key}` : key;
  return { source: parent.source, field };
}

function describe(value: unknown): string {
  if (value === undefined) return 'missing';
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  return typeof value === 'string'
    ? `the string ${JSON.stringify(value)}`
    : `${typeof value} ${String(value)}`;
}

export function fail(path: FieldPath, problem: string): never {
  throw new AnnotationError(path.source, path.field || '(root)', problem);
}

export function readObject(value: unknown, path: FieldPath): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    fail(path, `expected an object, got ${describe(value)}`);
  return value as Record<string, unknown>;
}

export function readArray(value: unknown, path: FieldPath): unknown[] {
  if (!Array.isArray(value)) fail(path, `expected an array, got ${describe(value)}`);
  return value;
}

export function readString(value: unknown, path: FieldPath): string {
  if (typeof value !== 'string' || value === '')
    fail(path, `expected a non-empty string, got ${describe(value)}`);
  return value;
}

export function readNumber(value: unknown, path: FieldPath): number {
  if (typeof value !== 'number' || !Number.isFinite(value))
    fail(path, `expected a finite number, got ${describe(value)}`);
  return value;
}

/** An integer >= min; a JSON number such as 2.0 is accepted, 2.5 is not. */
export function readInteger(value: unknown, path: FieldPath, min: number): number {
  const n = readNumber(value, path);
  if (!Number.isInteger(n) || n < min) fail(path, `expected an integer >= ${min}, got ${n}`);
  return n;
}
