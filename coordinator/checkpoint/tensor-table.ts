import {
  at,
  type FieldPath,
  readArray,
  readInteger,
  readObject,
  readString,
} from '../../shared/annotations/fields.js';
import type { NamedArray } from '../../worker/train/trainer-state.js';
import { fieldProblem } from './manifest.js';

/**
 * The layout of tensors.bin (pure): every weight, then every optimizer slot, in the state's Map order,
 * as float32 little-endian. Each entry starts at a multiple of 64 bytes and is zero-padded up to the
 * next one, so offsets follow from names and shapes alone and the file is exactly `tableBytes` long.
 *
 * Bytes are copied, never converted through numbers, so values round-trip bit for bit (NaN payloads
 * included) on hosts of either endianness.
 */
export const TENSOR_ALIGN_BYTES = 64;

export interface TensorEntry {
  name: string;
  shape: number[];
  dtype: 'float32';
  offsetBytes: number;
  lengthBytes: number;
}

export interface TensorTable {
  weights: TensorEntry[];
  slots: TensorEntry[];
}

type Arrays = ReadonlyMap<string, NamedArray>;

const IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const ZEROS = new Uint8Array(TENSOR_ALIGN_BYTES);

/** Everything that keeps `weights` and `slots` from being written (a caller's bug), as messages. */
export function tensorProblems(weights: Arrays, slots: Arrays): string[] {
  const problems = [...arrayProblems('weights', weights), ...arrayProblems('optimizer.slots', slots)];
  const weightShapes = new Map([...weights].map(([name, a]) => [name, a.shape]));
  for (const [name, { shape }] of slots) {
    const problem = slotProblem(name, shape, weightShapes);
    if (problem) problems.push(`optimizer.slots: ${problem}`);
  }
  return problems;
}

export function layOutTable(weights: Arrays, slots: Arrays): TensorTable {
  const w = layOut(
    [...weights].map(([name, a]) => ({ name, shape: a.shape })),
    0,
  );
  return {
    weights: w,
    slots: layOut(
      [...slots].map(([name, a]) => ({ name, shape: a.shape })),
      end(w, 0),
    ),
  };
}

/** The size of tensors.bin for `table`. */
export function tableBytes(table: TensorTable): number {
  return end(table.slots, end(table.weights, 0));
}

/** tensors.bin as chunks: views of the arrays (swapped copies on big-endian hosts) and zero padding. */
export function tensorChunks(weights: Arrays, slots: Arrays): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  for (const { values } of [...weights.values(), ...slots.values()]) {
    const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    chunks.push(IS_LITTLE_ENDIAN ? bytes : swapWords(bytes.slice()));
    const pad = alignUp(bytes.length) - bytes.length;
    if (pad > 0) chunks.push(ZEROS.subarray(0, pad));
  }
  return chunks;
}

/**
 * Reads the table from state.json: names unique, shapes whole numbers, each entry exactly where the
 * encoder puts it, each slot `<weight>/<slot>` with its weight's shape.
 */
export function readTensorTable(value: unknown, path: FieldPath): TensorTable {
  const o = readObject(value, path);
  const weights = readEntries(o.weights, at(path, 'weights'), 0);
  const slots = readEntries(o.slots, at(path, 'slots'), end(weights, 0));
  const weightShapes = new Map(weights.map((w) => [w.name, w.shape]));
  for (const [i, s] of slots.entries()) {
    const problem = slotProblem(s.name, s.shape, weightShapes);
    if (problem) fieldProblem(at(at(at(path, 'slots'), i), 'name'), problem);
  }
  return { weights, slots };
}

/**
 * The arrays of `entries` from tensors.bin (whose size the caller has checked): views when an entry is
 * 4-byte aligned in memory on a little-endian host, copies otherwise.
 */
export function readTensors(tensors: Uint8Array, entries: readonly TensorEntry[]): Map<string, NamedArray> {
  const out = new Map<string, NamedArray>();
  for (const { name, shape, offsetBytes, lengthBytes } of entries) {
    const start = tensors.byteOffset + offsetBytes;
    let values: Float32Array;
    if (IS_LITTLE_ENDIAN && start % 4 === 0)
      values = new Float32Array(tensors.buffer, start, lengthBytes / 4);
    else {
      const copy = new Uint8Array(tensors.subarray(offsetBytes, offsetBytes + lengthBytes)); // aligned
      values = new Float32Array((IS_LITTLE_ENDIAN ? copy : swapWords(copy)).buffer);
    }
    out.set(name, { shape: [...shape], values });
  }
  return out;
}

function readEntries(value: unknown, path: FieldPath, startBytes: number): TensorEntry[] {
  const seen = new Set<string>();
  let offset = startBytes;
  return readArray(value, path).map((item, i) => {
    const p = at(path, i);
    const o = readObject(item, p);
    const name = readString(o.name, at(p, 'name'));
    if (seen.has(name)) fieldProblem(at(p, 'name'), `duplicate tensor '${name}'`);
    seen.add(name);
    const shape = readArray(o.shape, at(p, 'shape')).map((d, k) => readInteger(d, at(at(p, 'shape'), k), 0));
    if (o.dtype !== 'float32')
      fieldProblem(at(p, 'dtype'), `expected 'float32', got ${JSON.stringify(o.dtype)}`);
    const [entry] = layOut([{ name, shape }], offset);
    for (const key of ['offsetBytes', 'lengthBytes'] as const) {
      const declared = readInteger(o[key], at(p, key), 0);
      if (declared !== entry![key]) fieldProblem(at(p, key), `is ${declared}, expected ${entry![key]}`);
    }
    offset = end([entry!], offset);
    return entry!;
  });
}

function layOut(tensors: { name: string; shape: readonly number[] }[], startBytes: number): TensorEntry[] {
  let offset = startBytes;
  return tensors.map(({ name, shape }) => {
    const lengthBytes = 4 * elementCount(shape);
    const entry = { name, shape: [...shape], dtype: 'float32' as const, offsetBytes: offset, lengthBytes };
    offset = alignUp(offset + lengthBytes);
    return entry;
  });
}

/** One past the padded end of the last entry; `startBytes` when there is none. */
function end(entries: readonly TensorEntry[], startBytes: number): number {
  const last = entries.at(-1);
  return last ? alignUp(last.offsetBytes + last.lengthBytes) : startBytes;
}

function alignUp(bytes: number): number {
  return Math.ceil(bytes / TENSOR_ALIGN_BYTES) * TENSOR_ALIGN_BYTES;
}

function elementCount(shape: readonly number[]): number {
  return shape.reduce((n, d) => n * d, 1);
}

/** Optimizer slots are `${variable}/${slot}` (worker/train/optimizers.ts) with the variable's shape. */
function slotProblem(
  name: string,
  shape: readonly number[],
  weights: ReadonlyMap<string, readonly number[]>,
): string | undefined {
  const cut = name.lastIndexOf('/');
  const weight = cut > 0 ? weights.get(name.slice(0, cut)) : undefined;
  if (!weight) return `'${name}' does not name a weight as '<weight>/<slot>'`;
  if (weight.join(',') !== shape.join(','))
    return `'${name}' has shape [${shape}], its weight '${name.slice(0, cut)}' [${weight}]`;
  return undefined;
}

function arrayProblems(group: string, arrays: Arrays): string[] {
  const problems: string[] = [];
  for (const [name, { shape, values }] of arrays) {
    if (name === '') problems.push(`${group}: an empty name`);
    if (!(values instanceof Float32Array)) problems.push(`${group} '${name}': values are not a Float32Array`);
    else if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0) || elementCount(shape) !== values.length)
      problems.push(`${group} '${name}': shape [${shape}] does not hold ${values.length} values`);
  }
  return problems;
}

/** Reverses the bytes of each 32-bit word in place (bit patterns, so NaN payloads survive). */
function swapWords(bytes: Uint8Array): Uint8Array {
  for (let i = 0; i + 4 <= bytes.length; i += 4) bytes.subarray(i, i + 4).reverse();
  return bytes;
}
