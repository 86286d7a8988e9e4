/**
 * Value types for hyperparameters. SageMaker hands every value to the container as a string
 * (hyperparameters.json), while our own JSON files and tests may use numbers and booleans: each
 * type accepts both and says, in one phrase, what it allows ("an integer > 0"), for error messages
 * and `describeHyperparameters()`. Pure: no I/O.
 */

export type ParseResult<T> = { ok: true; value: T } | { ok: false; why?: string };

export interface ValueType<T> {
  /** What is allowed, completing "must be ...": "an integer > 0", "one of 'sgd', 'adam'". */
  readonly allowed: string;
  /** The parsed value, or a failure; `why` replaces the generic "must be <allowed>" message. */
  parse(raw: unknown): ParseResult<T>;
  /** SageMaker's string form of a value (hyperparams.json in a model artifact). */
  format(value: T): string;
}

const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const INTEGER = /^[+-]?\d+$/;

const ok = <T>(value: T): ParseResult<T> => ({ ok: true, value });
const FAIL: ParseResult<never> = { ok: false };

/** A value as it appears in an error message: strings quoted, the rest as JSON. */
export function showValue(raw: unknown): string {
  if (typeof raw === 'string') return `'${raw}'`;
  if (raw === undefined) return 'undefined';
  if (typeof raw === 'number' && !Number.isFinite(raw)) return String(raw);
  try {
    return JSON.stringify(raw) ?? String(raw);
  } catch {
    return String(raw);
  }
}

/** A finite number from a JSON number or a decimal string (no hex, no '', no 'Infinity'). */
function toNumber(raw: unknown, pattern: RegExp): number | undefined {
  if (typeof raw === 'number') return Number.isFinite(raw) ? raw : undefined;
  if (typeof raw !== 'string' || !pattern.test(raw.trim())) return undefined;
  const n = Number(raw.trim());
  return Number.isFinite(n) ? n : undefined;
}

interface Bounds {
  min?: number;
  max?: number;
  /** The bound itself is excluded: (min, ...) instead of [min, ...). */
  minOpen?: boolean;
  maxOpen?: boolean;
}

function inBounds(n: number, b: Bounds): boolean {
  if (b.min !== undefined && (b.minOpen ? n <= b.min : n < b.min)) return false;
  if (b.max !== undefined && (b.maxOpen ? n >= b.max : n > b.max)) return false;
  return true;
}

function describeBounds(b: Bounds): string {
  if (b.min !== undefined && b.max !== undefined) {
    return ` in ${b.minOpen ? '(' : '['}${b.min}, ${b.max}${b.maxOpen ? ')' : ']'}`;
  }
  if (b.min !== undefined) return ` ${b.minOpen ? '>' : '>='} ${b.min}`;
  if (b.max !== undefined) return ` ${b.maxOpen ? '<' : '<='} ${b.max}`;
  return '';
}

export function integerType(bounds: Bounds = {}): ValueType<number> {
  return {
    allowed: `an integer${describeBounds(bounds)}`,
    parse(raw) {
      const n = toNumber(raw, INTEGER);
      return n !== undefined && Number.isSafeInteger(n) && inBounds(n, bounds) ? ok(n) : FAIL;
    },
    format: String,
  };
}

export function numberType(bounds: Bounds = {}): ValueType<number> {
  return {
    allowed: `a number${describeBounds(bounds)}`,
    parse(raw) {
      const n = toNumber(raw, DECIMAL);
      return n !== undefined && inBounds(n, bounds) ? ok(n) : FAIL;
    },
    format: String,
  };
}

/**
 * One of a fixed set of strings. `rejected` names values that are recognised but refused, with
 * the reason (e.g. kv_store 'dist_async': ssd-cluster trains synchronously).
 */
export function enumType<const V extends string>(
  values: readonly V[],
  rejected: Readonly<Record<string, string>> = {},
): ValueType<V> {
  const allowed = `one of ${values.map((v) => `'${v}'`).join(', ')}`;
  return {
    allowed,
    parse(raw) {
      if (typeof raw !== 'string') return FAIL;
      if ((values as readonly string[]).includes(raw)) return ok(raw as V);
      const reason = Object.hasOwn(rejected, raw) ? rejected[raw] : undefined;
      return reason === undefined
        ? FAIL
        : { ok: false, why: `${showValue(raw)} is not supported (${reason})` };
    },
    format: (v) => v,
  };
}

const TRUE_STRINGS = ['True', 'true', '1'];
const FALSE_STRINGS = ['False', 'false', '0'];

function parseBoolean(raw: unknown): boolean | undefined {
  if (typeof raw === 'boolean') return raw;
  if (raw === 1 || raw === 0) return raw === 1;
  if (typeof raw !== 'string') return undefined;
  if (TRUE_STRINGS.includes(raw)) return true;
  if (FALSE_STRINGS.includes(raw)) return false;
  return undefined;
}

/** SageMaker writes Python booleans ('True'/'False'); also accepts true/false/1/0. */
export function booleanType(): ValueType<boolean> {
  return {
    allowed: 'a boolean: True, False, true, false, 1 or 0',
    parse(raw) {
      const b = parseBoolean(raw);
      return b === undefined ? FAIL : ok(b);
    },
    format: (b) => (b ? 'True' : 'False'),
  };
}

/** A 0/1 flag (use_pretrained_model); booleans are accepted too. */
export function flagType(): ValueType<0 | 1> {
  return {
    allowed: '0 or 1',
    parse(raw) {
      const b = parseBoolean(raw);
      return b === undefined ? FAIL : ok(b ? 1 : 0);
    },
    format: String,
  };
}

function listItems(raw: unknown): unknown[] | undefined {
  if (Array.isArray(raw)) return raw;
  if (typeof raw !== 'string') return undefined;
  const text = raw.trim();
  if (text === '') return [];
  if (text.startsWith('[')) {
    try {
      const parsed: unknown = JSON.parse(text);
      return Array.isArray(parsed) ? parsed : undefined;
    } catch {
      return undefined;
    }
  }
  return text.split(',');
}

/**
 * A strictly increasing list of integers >= 1 (epoch numbers), written "e1, e2" by SageMaker,
 * or as a JSON array (of numbers or numeric strings, or the array's JSON text). '' is the empty list.
 * MXNet's MultiFactorScheduler demands the same: an increasing list of steps >= 1.
 */
export function epochListType(): ValueType<readonly number[]> {
  const item = integerType({ min: 1 });
  return {
    allowed: "a comma-separated list of increasing integers >= 1 ('80, 160'), a JSON array, or ''",
    parse(raw) {
      const items = listItems(raw);
      if (items === undefined) return FAIL;
      const out: number[] = [];
      for (const entry of items) {
        const parsed = item.parse(typeof entry === 'string' ? entry.trim() : entry);
        if (!parsed.ok || (out.length > 0 && parsed.value <= out[out.length - 1]!)) return FAIL;
        out.push(parsed.value);
      }
      return ok(out);
    },
    format: (list) => list.join(','),
  };
}

/** A JavaScript regular expression source; '' means "none". Kept as the source string. */
export function regexType(): ValueType<string> {
  return {
    allowed: "a regular expression, or '' for none",
    parse(raw) {
      if (typeof raw !== 'string') return FAIL;
      try {
        new RegExp(raw);
        return ok(raw);
      } catch (err) {
        return {
          ok: false,
          why: `${showValue(raw)} is not a valid regular expression (${(err as Error).message})`,
        };
      }
    },
    format: (v) => v,
  };
}
