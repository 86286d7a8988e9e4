/**
 * The hyperparameters of SageMaker's built-in object-detection algorithm (SPEC 1.1): the same
 * snake_case names, types, defaults and ranges, so that a SageMaker hyperparameters.json (every value
 * a string) trains ssd-cluster unchanged and our model artifacts carry a hyperparams.json SageMaker
 * tooling can read.
 *
 * ssd-cluster extensions (marked `extension` in the table and in describeHyperparameters()):
 * - base_network 'tiny': a small CPU demo base. image_shape is then any multiple of 32 from 64
 *   (default 128) instead of SageMaker's >= 300, and use_pretrained_model does not apply (it reads as 0);
 * - lr_warmup_steps: linear learning-rate warm-up over the first N optimizer steps;
 * - clip_gradient_norm: global gradient-norm clipping (0 = off);
 * - nms_topk is not in SageMaker's docs but appears in real artifacts (SPEC 1.1); kept with its value 400.
 * - kv_store also takes 'local' and 'device' (seen in real artifacts); 'dist_async' is refused.
 * Keys that start with '_' (SageMaker internals: _kvstore, _num_kv_servers, ...) land in `extra`.
 */
import {
  booleanType,
  enumType,
  epochListType,
  flagType,
  integerType,
  numberType,
  regexType,
  type ValueType,
} from './value-types.js';

export const BASE_NETWORKS = ['vgg-16', 'resnet-50', 'tiny'] as const;
export type BaseNetwork = (typeof BASE_NETWORKS)[number];
export const OPTIMIZERS = ['sgd', 'adam', 'rmsprop', 'adadelta'] as const;
export type OptimizerName = (typeof OPTIMIZERS)[number];
export const KV_STORES = ['dist_sync', 'device', 'local', '-'] as const;
export type KvStore = (typeof KV_STORES)[number];

/** image_shape for base_network 'tiny' when none is given (SageMaker's 300 is not a multiple of 32). */
export const TINY_DEFAULT_IMAGE_SHAPE = 128;
/** The smallest image_shape SageMaker accepts for vgg-16 and resnet-50. */
export const SAGEMAKER_MIN_IMAGE_SHAPE = 300;

export interface Hyperparameters {
  readonly num_classes: number;
  readonly num_training_samples: number;
  readonly base_network: BaseNetwork;
  readonly use_pretrained_model: 0 | 1;
  readonly epochs: number;
  readonly learning_rate: number;
  /** Epochs (0-based indices) at whose start the learning rate is multiplied by the factor. */
  readonly lr_scheduler_step: readonly number[];
  readonly lr_scheduler_factor: number;
  readonly optimizer: OptimizerName;
  readonly momentum: number;
  readonly weight_decay: number;
  /** Per machine (per worker); the global batch is mini_batch_size x workers (SageMaker dist_sync). */
  readonly mini_batch_size: number;
  readonly image_shape: number;
  readonly label_width: number;
  readonly overlap_threshold: number;
  readonly nms_threshold: number;
  readonly nms_topk: number;
  /** RegExp source of layer names to freeze; '' freezes nothing. */
  readonly freeze_layer_pattern: string;
  readonly kv_store: KvStore;
  readonly early_stopping: boolean;
  readonly early_stopping_min_epochs: number;
  readonly early_stopping_patience: number;
  readonly early_stopping_tolerance: number;
  readonly lr_warmup_steps: number;
  readonly clip_gradient_norm: number;
  /** Keys starting with '_', kept as the strings SageMaker wrote. */
  readonly extra: Readonly<Record<string, string>>;
}

export type HyperparameterName = Exclude<keyof Hyperparameters, 'extra'>;

export interface HyperparameterSpec<T> {
  readonly type: ValueType<T>;
  /** `undefined`: required. */
  readonly default: T | undefined;
  readonly doc: string;
  /** An ssd-cluster extension, not part of SageMaker's algorithm. */
  readonly extension?: true;
}

type Schema = { readonly [K in HyperparameterName]: HyperparameterSpec<Hyperparameters[K]> };

const positiveInt = integerType({ min: 1 });
const unitOpenClosed = numberType({ min: 0, minOpen: true, max: 1 });
const nmsTopk: ValueType<number> = {
  allowed: 'an integer >= 1, or -1 for all',
  parse: (raw) => (raw === -1 || raw === '-1' ? { ok: true, value: -1 } : positiveInt.parse(raw)),
  format: String,
};

/** The table, in SageMaker's documentation order; extensions last. */
export const HYPERPARAMETER_SCHEMA: Schema = {
  num_classes: { type: positiveInt, default: undefined, doc: 'object classes in the data (no background)' },
  num_training_samples: {
    type: positiveInt,
    default: undefined,
    doc: 'records in the train channel; must match the data',
  },
  base_network: {
    type: enumType(BASE_NETWORKS),
    default: 'vgg-16',
    doc: "'tiny' is an ssd-cluster extension",
  },
  use_pretrained_model: { type: flagType(), default: 1, doc: 'load an ImageNet-pretrained base; 0 for tiny' },
  epochs: { type: positiveInt, default: 30, doc: 'training epochs' },
  learning_rate: { type: unitOpenClosed, default: 0.001, doc: 'initial learning rate' },
  lr_scheduler_step: {
    type: epochListType(),
    default: [],
    doc: 'epochs at which the rate is multiplied by the factor',
  },
  lr_scheduler_factor: {
    type: numberType({ min: 0, minOpen: true, max: 1, maxOpen: true }),
    default: 0.1,
    doc: 'lr_new = lr_old x factor',
  },
  optimizer: { type: enumType(OPTIMIZERS), default: 'sgd', doc: 'optimizer' },
  momentum: { type: unitOpenClosed, default: 0.9, doc: 'sgd only' },
  weight_decay: {
    type: numberType({ min: 0, minOpen: true, max: 1, maxOpen: true }),
    default: 0.0005,
    doc: 'sgd and rmsprop only',
  },
  mini_batch_size: {
    type: positiveInt,
    default: 32,
    doc: 'batch per worker; global = mini_batch_size x workers',
  },
  image_shape: {
    type: positiveInt,
    default: SAGEMAKER_MIN_IMAGE_SHAPE,
    doc: `input side; >= ${SAGEMAKER_MIN_IMAGE_SHAPE} for vgg-16/resnet-50; tiny (extension): a multiple of 32 >= 64, default ${TINY_DEFAULT_IMAGE_SHAPE}`,
  },
  label_width: {
    type: integerType({ min: 7 }),
    default: 350,
    doc: 'label padding width (header + 5 x objects)',
  },
  overlap_threshold: { type: unitOpenClosed, default: 0.5, doc: 'IoU for a true positive in mAP' },
  nms_threshold: { type: unitOpenClosed, default: 0.45, doc: 'NMS IoU threshold' },
  nms_topk: {
    type: nmsTopk,
    default: 400,
    doc: 'detections kept before NMS (-1: all); seen in real artifacts, not documented',
  },
  freeze_layer_pattern: { type: regexType(), default: '', doc: 'layer names to freeze (RegExp)' },
  kv_store: {
    type: enumType(KV_STORES, { dist_async: 'ssd-cluster trains synchronously; use dist_sync' }),
    default: '-',
    doc: 'accepted for compatibility; workers always sum gradients synchronously',
  },
  early_stopping: { type: booleanType(), default: false, doc: 'stop when validation mAP stops improving' },
  early_stopping_min_epochs: { type: positiveInt, default: 10, doc: 'epochs before early stopping may act' },
  early_stopping_patience: {
    type: positiveInt,
    default: 5,
    doc: 'epochs without improvement before stopping',
  },
  early_stopping_tolerance: {
    type: numberType({ min: 0, max: 1 }),
    default: 0,
    doc: 'no improvement when (mAP - best) / best < tolerance',
  },
  lr_warmup_steps: {
    type: integerType({ min: 0 }),
    default: 0,
    doc: 'linear learning-rate warm-up over the first N optimizer steps',
    extension: true,
  },
  clip_gradient_norm: {
    type: numberType({ min: 0 }),
    default: 0,
    doc: 'clip the global gradient norm to this value (0 = off)',
    extension: true,
  },
};

export const HYPERPARAMETER_NAMES = Object.keys(HYPERPARAMETER_SCHEMA) as HyperparameterName[];

export function isHyperparameterName(name: string): name is HyperparameterName {
  return Object.hasOwn(HYPERPARAMETER_SCHEMA, name);
}

/** A text table of every hyperparameter for --help: name, allowed values, default, notes. */
export function describeHyperparameters(): string {
  const rows = HYPERPARAMETER_NAMES.map((name) => {
    const spec: HyperparameterSpec<unknown> = HYPERPARAMETER_SCHEMA[name];
    const fallback = spec.default === undefined ? 'required' : `default ${showDefault(spec)}`;
    const note = spec.extension ? `${spec.doc} [ssd-cluster extension]` : spec.doc;
    return [name, `${spec.type.allowed}; ${fallback}`, note];
  });
  const width = Math.max(...rows.map((r) => r[0]!.length));
  const lines = rows.map(
    ([name, allowed, note]) => `  ${name!.padEnd(width)}  ${allowed}\n  ${''.padEnd(width)}  ${note}`,
  );
  return [
    'Hyperparameters (SageMaker object-detection names; values may be strings, as SageMaker writes them):',
    ...lines,
    "  _*  keys starting with '_' (SageMaker internals such as _kvstore) are kept unchanged",
  ].join('\n');
}

function showDefault(spec: HyperparameterSpec<unknown>): string {
  const text = spec.type.format(spec.default);
  return text === '' ? "''" : text;
}
