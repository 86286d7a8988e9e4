import { type ParseArgsConfig, parseArgs } from 'node:util';
import { closestName } from '../shared/config/closest-name.js';
import { UsageError } from '../shared/errors.js';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

/** Options every command accepts. */
export const commonOptions = {
  help: { type: 'boolean', short: 'h' },
  'log-level': { type: 'string' },
  's3-endpoint': { type: 'string' },
} as const satisfies OptionSpec;

/**
 * util.parseArgs in strict mode, with errors turned into a UsageError that names the command and
 * the flag. Unknown flags are errors.
 */
export function parseCommandArgs<const O extends OptionSpec>(
  command: string,
  argv: string[],
  options: O,
  { allowPositionals = false } = {},
) {
  try {
    return parseArgs({
      args: argv,
      options: { ...commonOptions, ...options },
      allowPositionals,
      strict: true,
    });
  } catch (err) {
    const hint = didYouMean(err, Object.keys({ ...commonOptions, ...options }));
    // No command prefix: cli/main.ts writes 'ssd-cluster COMMAND: ' before every error.
    throw new UsageError(`${(err as Error).message}${hint} (see ssd-cluster ${command} --help)`, {
      cause: err,
    });
  }
}

/** ' (did you mean --mini-batch-size?)' for a misspelt flag, else ''. */
function didYouMean(err: unknown, flags: readonly string[]): string {
  if ((err as { code?: unknown }).code !== 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return '';
  const given = /'--([^'=]+)/.exec((err as Error).message)?.[1];
  const near = given === undefined ? undefined : closestName(given, flags);
  return near === undefined ? '' : ` (did you mean --${near}?)`;
}

/** Parses an integer flag value, naming the flag when it is not one. */
export function intFlag(flag: string, value: string | undefined, { min = -Infinity, max = Infinity } = {}) {
  if (value === undefined) return undefined;
  const n = Number(value);
  // Number('') and Number(' ') are 0: an empty value (an unset variable) is an error, not zero.
  if (value.trim() === '' || !Number.isInteger(n) || n < min || n > max) {
    const range = Number.isFinite(min) ? ` >= ${min}` : '';
    throw new UsageError(
      `--${flag}: expected an integer${range}${Number.isFinite(max) ? ` and <= ${max}` : ''}, got '${value}'`,
    );
  }
  return n;
}

/** Parses a number flag value, naming the flag when it is not one. */
export function numberFlag(flag: string, value: string | undefined) {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n))
    throw new UsageError(`--${flag}: expected a number, got '${value}'`);
  return n;
}

export function requireFlag<T>(flag: string, value: T | undefined): T {
  if (value === undefined) throw new UsageError(`--${flag} is required`);
  return value;
}
