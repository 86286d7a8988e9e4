/**
 * The edge for hyperparameters: command-line flags (one string flag per hyperparameter, the snake
 * name with dashes: --mini-batch-size 16, --lr-scheduler-step 80,160) and a SageMaker-style JSON file
 * (--hyperparameters FILE). Commands spread `hyperparameterOptions` into their own parseArgs options
 * and pass the parsed values to `loadHyperparameters`.
 *
 * Precedence, lowest first: the command's `defaults`, then the file, then the flags (flags win).
 * Every problem names where the bad value came from ("(from --epochs)", "(from hp.json)").
 */
import { readFile as readFileFromDisk } from 'node:fs/promises';
import { ConfigError, errorMessage } from '../errors.js';
import { checkHyperparameters, type HyperparameterProblem } from './compile.js';
import { HYPERPARAMETER_NAMES, type HyperparameterName, type Hyperparameters } from './hyperparameters.js';

type Dashed<S extends string> = S extends `${infer Head}_${infer Tail}` ? `${Head}-${Dashed<Tail>}` : S;
export type HyperparameterFlag = Dashed<HyperparameterName>;
export type HyperparameterOptions = {
  readonly [K in HyperparameterFlag | 'hyperparameters']: { readonly type: 'string' };
};

/** The flag for a hyperparameter: mini_batch_size -> mini-batch-size. */
export function hyperparameterFlag<N extends HyperparameterName>(name: N): Dashed<N> {
  return name.replaceAll('_', '-') as Dashed<N>;
}

/** util.parseArgs options: one string flag per hyperparameter plus --hyperparameters FILE. */
export const hyperparameterOptions: HyperparameterOptions = Object.freeze(
  Object.fromEntries([
    ...HYPERPARAMETER_NAMES.map((name) => [hyperparameterFlag(name), Object.freeze({ type: 'string' })]),
    ['hyperparameters', Object.freeze({ type: 'string' })],
  ]),
) as HyperparameterOptions;

export interface LoadHyperparametersOptions {
  /** Reads --hyperparameters FILE (default: the local file system, UTF-8). */
  readFile?: (path: string) => Promise<string>;
  /** The command's own defaults, below the file and the flags (e.g. base_network 'tiny' for `local`). */
  defaults?: Readonly<Record<string, unknown>>;
}

/** Overlays defaults, the file and the flags, then compiles; one ConfigError lists every problem. */
export async function loadHyperparameters(
  values: Readonly<Record<string, unknown>>,
  options: LoadHyperparametersOptions = {},
): Promise<Readonly<Hyperparameters>> {
  const file = values.hyperparameters;
  const layers: [source: string, raw: Readonly<Record<string, unknown>>][] = [
    ['defaults', options.defaults ?? {}],
    typeof file === 'string' ? [file, await readHyperparameterFile(file, options.readFile)] : ['', {}],
    ['flags', hyperparametersFromFlags(values)],
  ];
  const sources = new Map<string, string>();
  const entries: [string, unknown][] = [];
  for (const [source, raw] of layers) {
    for (const [key, value] of Object.entries(raw)) {
      if (value === undefined) continue;
      sources.set(key, source);
      entries.push([key, value]);
    }
  }
  // fromEntries: later layers win, and a '__proto__' key stays an own data property.
  const result = checkHyperparameters(Object.fromEntries(entries));
  if (result.ok) return result.hyperparameters;
  throw new ConfigError(result.problems.map((p) => withSource(p, sources.get(p.key))));
}

function withSource(problem: HyperparameterProblem, source: string | undefined): string {
  if (source === undefined) return problem.message;
  const from = source === 'flags' ? `--${problem.key.replaceAll('_', '-')}` : source;
  return `${problem.message} (from ${from})`;
}

/** The hyperparameter flags that were given, under their snake_case names. */
export function hyperparametersFromFlags(values: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const name of HYPERPARAMETER_NAMES) {
    const value = values[hyperparameterFlag(name)];
    if (value !== undefined) out[name] = value;
  }
  return out;
}

/** A JSON object of hyperparameters (SageMaker's hyperparameters.json); errors name the file. */
export async function readHyperparameterFile(
  path: string,
  readFile: (path: string) => Promise<string> = (p) => readFileFromDisk(p, 'utf8'),
): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path);
  } catch (err) {
    throw new ConfigError([`--hyperparameters ${path}: cannot read the file (${errorMessage(err)})`], {
      cause: err,
    });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text.replace(/^\uFEFF/, '')); // a byte-order mark, as Windows editors save UTF-8
  } catch (err) {
    throw new ConfigError([`--hyperparameters ${path}: not valid JSON (${errorMessage(err)})`], {
      cause: err,
    });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    const got = parsed === null ? 'null' : Array.isArray(parsed) ? 'an array' : `a ${typeof parsed}`;
    throw new ConfigError([
      `--hyperparameters ${path}: must hold a JSON object of hyperparameters, got ${got}`,
    ]);
  }
  return parsed as Record<string, unknown>;
}
