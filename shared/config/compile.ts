/**
 * compileHyperparameters: raw key/value pairs (strings as SageMaker writes them, or JSON values) to a
 * fully defaulted, deeply frozen `Hyperparameters`, or one ConfigError that lists every problem.
 * Pure: runs once at the edge (load.ts) and the core only ever sees the compiled object.
 *
 * Order: 1. sort keys into known, '_'-internal (kept in `extra`) and unknown (an error, with the
 * closest known name); 2. parse each known key or take its default; 3. cross-field rules, only
 * between fields that parsed (so one bad value is reported once).
 */
import { ConfigError } from '../errors.js';
import { closestName } from './closest-name.js';
import {
  HYPERPARAMETER_NAMES,
  HYPERPARAMETER_SCHEMA,
  type HyperparameterName,
  type HyperparameterSpec,
  type Hyperparameters,
  isHyperparameterName,
  SAGEMAKER_MIN_IMAGE_SHAPE,
  TINY_DEFAULT_IMAGE_SHAPE,
} from './hyperparameters.js';
import { showValue } from './value-types.js';

export interface HyperparameterProblem {
  /** The key the problem is about (the first key for a cross-field problem). */
  readonly key: string;
  /** Starts with the key: "mini_batch_size: must be an integer >= 1, got 'abc'". */
  readonly message: string;
}

export type HyperparameterResult =
  | { ok: true; hyperparameters: Readonly<Hyperparameters> }
  | { ok: false; problems: readonly HyperparameterProblem[] };

type Values = Partial<Record<HyperparameterName, unknown>>;

/** Like compileHyperparameters, but returns the problems instead of throwing (load.ts annotates them). */
export function checkHyperparameters(raw: Readonly<Record<string, unknown>>): HyperparameterResult {
  const problems: HyperparameterProblem[] = [];
  const problem = (key: string, text: string) => problems.push({ key, message: `${key}: ${text}` });
  const extra = collectExtra(raw, problem);
  const values = parseKnown(raw, problem);
  applyCrossFieldRules(values, raw, problem);
  if (problems.length > 0) return { ok: false, problems };
  const hyperparameters = {
    ...values,
    lr_scheduler_step: Object.freeze([...(values.lr_scheduler_step as number[])]),
    extra: Object.freeze(extra),
  } as Hyperparameters;
  return { ok: true, hyperparameters: Object.freeze(hyperparameters) };
}

/** Compiles raw hyperparameters; throws one ConfigError naming every bad key, value and what is allowed. */
export function compileHyperparameters(raw: Readonly<Record<string, unknown>>): Readonly<Hyperparameters> {
  const result = checkHyperparameters(raw);
  if (!result.ok) throw new ConfigError(result.problems.map((p) => p.message));
  return result.hyperparameters;
}

type Report = (key: string, text: string) => void;

function collectExtra(raw: Readonly<Record<string, unknown>>, problem: Report): Record<string, string> {
  const extra: [string, string][] = [];
  for (const [key, value] of Object.entries(raw)) {
    if (value === undefined || isHyperparameterName(key)) continue;
    if (!key.startsWith('_')) {
      const near = closestName(key, HYPERPARAMETER_NAMES);
      problem(key, `unknown hyperparameter${near === undefined ? '' : ` (did you mean ${near}?)`}`);
    } else if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') {
      extra.push([key, String(value)]);
    } else {
      problem(key, `must be a string, number or boolean, got ${showValue(value)}`);
    }
  }
  // fromEntries defines own properties, so a '__proto__' key stays data.
  return Object.fromEntries(extra);
}

function parseKnown(raw: Readonly<Record<string, unknown>>, problem: Report): Values {
  const values: Values = {};
  for (const name of HYPERPARAMETER_NAMES) {
    const spec: HyperparameterSpec<unknown> = HYPERPARAMETER_SCHEMA[name];
    const value = raw[name];
    if (value === undefined) {
      if (spec.default === undefined) problem(name, `required, must be ${spec.type.allowed}`);
      else values[name] = spec.default;
      continue;
    }
    const parsed = spec.type.parse(value);
    if (parsed.ok) values[name] = parsed.value;
    else problem(name, parsed.why ?? `must be ${spec.type.allowed}, got ${showValue(value)}`);
  }
  return values;
}

/**
 * base_network decides image_shape's range: SageMaker's >= 300 for vgg-16 and resnet-50; for tiny a
 * multiple of 32 from 64 (its four stride-2 stages halve the side exactly), defaulting to 128. tiny
 * has no pretrained weights, so use_pretrained_model reads as 0 there.
 */
function applyCrossFieldRules(values: Values, raw: Readonly<Record<string, unknown>>, problem: Report): void {
  const network = values.base_network;
  if (network === undefined) return;
  if (network === 'tiny') {
    values.use_pretrained_model = 0;
    if (raw.image_shape === undefined) values.image_shape = TINY_DEFAULT_IMAGE_SHAPE;
  }
  const side = values.image_shape as number | undefined;
  if (side === undefined) return;
  const got = `, got ${showValue(raw.image_shape)}`;
  if (network === 'tiny' && (side < 64 || side % 32 !== 0)) {
    problem('image_shape', `must be a multiple of 32 >= 64 for base_network 'tiny'${got}`);
  } else if (network !== 'tiny' && side < SAGEMAKER_MIN_IMAGE_SHAPE) {
    problem(
      'image_shape',
      `must be an integer >= ${SAGEMAKER_MIN_IMAGE_SHAPE} for base_network '${network}'${got}`,
    );
  }
}

/** hyperparams.json for a model artifact: every value a string, as SageMaker writes it; extras last. */
export function toSageMakerHyperparams(hp: Readonly<Hyperparameters>): Record<string, string> {
  const known = HYPERPARAMETER_NAMES.map((name): [string, string] => {
    const spec: HyperparameterSpec<unknown> = HYPERPARAMETER_SCHEMA[name];
    return [name, spec.type.format(hp[name])];
  });
  return Object.fromEntries([...known, ...Object.entries(hp.extra)]);
}

/** The compiled freeze_layer_pattern, or undefined when nothing is frozen. */
export function freezeLayerRegExp(hp: Pick<Hyperparameters, 'freeze_layer_pattern'>): RegExp | undefined {
  return hp.freeze_layer_pattern === '' ? undefined : new RegExp(hp.freeze_layer_pattern);
}

/**
 * SageMaker requires num_training_samples to equal the train channel's size (the learning-rate
 * schedule and distributed accuracy depend on it). Returns a message when they differ.
 */
export function checkNumTrainingSamples(
  hp: Pick<Hyperparameters, 'num_training_samples'>,
  actual: number,
): string | undefined {
  if (hp.num_training_samples === actual) return undefined;
  // 0 is no valid setting: an empty (or wholly corrupt) channel needs other data, not another number.
  if (actual === 0)
    return 'num_training_samples: the train data has no usable records (empty, or every record was skipped as corrupt)';
  return (
    `num_training_samples: is ${hp.num_training_samples} but the train data has ${actual} records; ` +
    `set num_training_samples to ${actual} (corrupt records count too: training skips them and logs each one)`
  );
}
