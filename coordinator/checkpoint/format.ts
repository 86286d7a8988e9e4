import {
  at,
  type FieldPath,
  readArray,
  readInteger,
  readNumber,
  readObject,
  readString,
} from '../../shared/annotations/fields.js';
import { OPTIMIZERS } from '../../shared/config/hyperparameters.js';
import { ClusterError } from '../../shared/errors.js';
import type { OptimizerName } from '../../worker/train/optimizers.js';
import type { TrainerState, TrainingProgress } from '../../worker/train/trainer-state.js';
import {
  CheckpointCorruptError,
  fieldProblem,
  parseCheckpointJson,
  readCheckpointJson,
  readIsoTime,
} from './manifest.js';
import {
  layOutTable,
  readTensors,
  readTensorTable,
  type TensorTable,
  tableBytes,
  tensorChunks,
  tensorProblems,
} from './tensor-table.js';

/**
 * The two data files of a checkpoint (pure: plain data in, bytes out, and back):
 *
 * - `tensors.bin`: the weights and optimizer slots as float32 LE, 64-byte aligned (tensor-table.ts).
 * - `state.json`: { format, version, progress (TrainingProgress as is), optimizer: { name, updates },
 *   meta (the caller's free-form JSON), tensorsBytes, tensors: { weights: [entry], slots: [entry] } }
 *   with entry = { name, shape, dtype: 'float32', offsetBytes, lengthBytes }.
 *
 * Decoding checks everything (a failure is CHECKPOINT_CORRUPT naming the checkpoint, the file and the
 * field): known format and version, every progress field present, typed and finite with no unknown
 * ones, a known optimizer, the tensor table laid out exactly as the encoder would, and tensors.bin
 * exactly `tensorsBytes` long. The round trip is bit-exact and keeps Map order.
 */
export const STATE_FILE = 'state.json';
export const TENSORS_FILE = 'tensors.bin';
export const STATE_FORMAT = 'ssd-cluster-checkpoint-state';
export const STATE_VERSION = 1;

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** Free-form description of the run (hyperparameters as SageMaker strings, workers, layout hash, backend). */
export interface CheckpointMeta {
  /** ISO-8601 time of the snapshot, from the caller's clock (the core never reads the time). */
  createdAt: string;
  [key: string]: JsonValue;
}

export interface EncodedCheckpoint {
  stateJson: Uint8Array;
  /** tensors.bin in order: views of the state's arrays (copies only on big-endian hosts) and padding. */
  tensorChunks: Uint8Array[];
  tensorsBytes: number;
}

export interface DecodedCheckpoint {
  state: TrainerState;
  meta: CheckpointMeta;
}

/**
 * Throws ClusterError('INTERNAL') naming every field that cannot be written (a caller's bug: NaN in
 * the progress, a shape that does not match its values, a slot without its weight...). The chunks
 * alias the state's arrays: they must not change until written (see copyTrainerState and Trainer.readStateInto).
 */
export function encodeCheckpoint(state: TrainerState, meta: CheckpointMeta): EncodedCheckpoint {
  const { weights, optimizer } = state;
  const problems = [
    ...jsonProblems(state.progress, 'progress'),
    ...jsonProblems(meta, 'meta'),
    ...tensorProblems(weights, optimizer.slots),
  ];
  if (typeof meta.createdAt !== 'string' || Number.isNaN(Date.parse(meta.createdAt)))
    problems.push(`meta.createdAt: expected an ISO-8601 time, got ${JSON.stringify(meta.createdAt)}`);
  if (problems.length > 0) throw new ClusterError('INTERNAL', `checkpoint encode: ${problems.join('; ')}`);
  const tensors = layOutTable(weights, optimizer.slots);
  const tensorsBytes = tableBytes(tensors);
  const file = {
    format: STATE_FORMAT,
    version: STATE_VERSION,
    progress: state.progress,
    optimizer: { name: optimizer.name, updates: optimizer.updates },
    meta,
    tensorsBytes,
    tensors,
  };
  return {
    stateJson: new TextEncoder().encode(`${JSON.stringify(file)}\n`),
    tensorChunks: tensorChunks(weights, optimizer.slots),
    tensorsBytes,
  };
}

/**
 * Decodes and checks state.json and tensors.bin of `checkpoint` (a URL, for messages). The arrays are
 * views of `tensors` where alignment allows, copies otherwise.
 */
export function decodeCheckpoint(
  checkpoint: string,
  stateJson: Uint8Array,
  tensors: Uint8Array,
): DecodedCheckpoint {
  const json = parseCheckpointJson(checkpoint, STATE_FILE, stateJson);
  const file = readCheckpointJson(checkpoint, () => readStateFile(json, { source: STATE_FILE, field: '' }));
  if (tensors.length !== file.tensorsBytes) {
    throw new CheckpointCorruptError(
      checkpoint,
      `${TENSORS_FILE}: is ${tensors.length} bytes, ${STATE_FILE} says tensorsBytes ${file.tensorsBytes}`,
    );
  }
  const state: TrainerState = {
    progress: file.progress,
    weights: readTensors(tensors, file.tensors.weights),
    optimizer: { ...file.optimizer, slots: readTensors(tensors, file.tensors.slots) },
  };
  return { state, meta: file.meta };
}

interface StateFile {
  progress: TrainingProgress;
  optimizer: { name: OptimizerName; updates: number };
  meta: CheckpointMeta;
  tensorsBytes: number;
  tensors: TensorTable;
}

function readStateFile(value: unknown, path: FieldPath): StateFile {
  const o = readObject(value, path);
  if (o.format !== STATE_FORMAT)
    fieldProblem(at(path, 'format'), `expected '${STATE_FORMAT}', got ${JSON.stringify(o.format)}`);
  if (o.version !== STATE_VERSION)
    fieldProblem(at(path, 'version'), `unsupported version ${JSON.stringify(o.version)} (expected 1)`);
  const optPath = at(path, 'optimizer');
  const opt = readObject(o.optimizer, optPath);
  const name = readString(opt.name, at(optPath, 'name'));
  if (!(OPTIMIZERS as readonly string[]).includes(name))
    fieldProblem(at(optPath, 'name'), `expected one of ${OPTIMIZERS.join(', ')}, got '${name}'`);
  const meta = readObject(o.meta, at(path, 'meta'));
  readIsoTime(meta.createdAt, at(at(path, 'meta'), 'createdAt'));
  const tensorsBytes = readInteger(o.tensorsBytes, at(path, 'tensorsBytes'), 0);
  const tensors = readTensorTable(o.tensors, at(path, 'tensors'));
  if (tableBytes(tensors) !== tensorsBytes)
    fieldProblem(at(path, 'tensorsBytes'), `is ${tensorsBytes}, the table ends at ${tableBytes(tensors)}`);
  return {
    progress: readProgress(o.progress, at(path, 'progress')),
    optimizer: { name: name as OptimizerName, updates: readInteger(opt.updates, at(optPath, 'updates'), 0) },
    meta: meta as CheckpointMeta, // JSON.parse yields only finite JSON values
    tensorsBytes,
    tensors,
  };
}

const PROGRESS_KEYS = [
  'seed',
  'epoch',
  'position',
  'globalStep',
  'imagesTrained',
  'skippedRecords',
  'earlyStopping',
  'validationMaps',
  'finished',
  'stoppedEarly',
] as const satisfies readonly (keyof TrainingProgress)[];
const EARLY_STOPPING_KEYS = ['bestMap', 'bestEpoch', 'epochsWithoutImprovement'] as const;

/** TrainingProgress, field by field; an unknown field means a format this code does not know. */
function readProgress(value: unknown, path: FieldPath): TrainingProgress {
  const o = readKnownObject(value, path, PROGRESS_KEYS);
  const count = (key: (typeof PROGRESS_KEYS)[number]) => readInteger(o[key], at(path, key), 0);
  const esPath = at(path, 'earlyStopping');
  const es = readKnownObject(o.earlyStopping, esPath, EARLY_STOPPING_KEYS);
  const mapsPath = at(path, 'validationMaps');
  return Object.freeze({
    seed: count('seed'),
    epoch: count('epoch'),
    position: count('position'),
    globalStep: count('globalStep'),
    imagesTrained: count('imagesTrained'),
    skippedRecords: count('skippedRecords'),
    earlyStopping: Object.freeze({
      bestMap: es.bestMap === null ? null : readNumber(es.bestMap, at(esPath, 'bestMap')),
      bestEpoch: es.bestEpoch === null ? null : readInteger(es.bestEpoch, at(esPath, 'bestEpoch'), 0),
      epochsWithoutImprovement: readInteger(
        es.epochsWithoutImprovement,
        at(esPath, 'epochsWithoutImprovement'),
        0,
      ),
    }),
    validationMaps: Object.freeze(
      readArray(o.validationMaps, mapsPath).map((m, i) => readNumber(m, at(mapsPath, i))),
    ),
    finished: readBoolean(o.finished, at(path, 'finished')),
    stoppedEarly: readBoolean(o.stoppedEarly, at(path, 'stoppedEarly')),
  });
}

function readKnownObject(value: unknown, path: FieldPath, keys: readonly string[]): Record<string, unknown> {
  const o = readObject(value, path);
  const unknown = Object.keys(o).find((k) => !keys.includes(k));
  if (unknown !== undefined) fieldProblem(at(path, unknown), 'unknown field');
  return o;
}

function readBoolean(value: unknown, path: FieldPath): boolean {
  if (typeof value !== 'boolean') fieldProblem(path, `expected true or false, got ${JSON.stringify(value)}`);
  return value;
}

/** Paths of values that JSON.stringify would not round-trip (NaN, Infinity, undefined, functions...). */
function jsonProblems(value: unknown, path: string): string[] {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return [];
  if (typeof value === 'number') return Number.isFinite(value) ? [] : [`${path}: ${value} is not finite`];
  if (Array.isArray(value)) return value.flatMap((v, i) => jsonProblems(v, `${path}[${i}]`));
  if (typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype)
    return Object.entries(value).flatMap(([k, v]) => jsonProblems(v, `${path}.${k}`));
  return [`${path}: ${typeof value} is not JSON`];
}
