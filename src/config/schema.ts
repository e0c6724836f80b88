/**
 * A small declarative schema for config documents. A schema both validates a plain JS value
 * (parsed YAML) and returns it typed. Every problem is reported with the path of the field, so
 * the caller can turn it into `file:line:col: Kind/name: field.path: message`.
 *
 * Conventions, following protobuf JSON as Istio's CRDs do:
 * - object fields are optional unless listed in `required`; an absent field is `undefined`;
 * - unknown fields are errors, with a "did you mean" suggestion;
 * - a value that fails validation becomes `undefined` and the walk continues, so one pass reports
 *   every problem in a document.
 */
import { didYouMean } from '../core/did-you-mean.js';
import { parseDuration } from '../core/duration.js';
import { translateRe2 } from '../core/re2.js';

export type Path = ReadonlyArray<string | number>;

export interface Issue {
  readonly path: Path;
  readonly message: string;
  /** The problem is the key itself (an unknown field), not its value. */
  readonly atKey: boolean;
  readonly severity: 'error' | 'warning';
}

export class Issues {
  readonly list: Issue[] = [];

  error(path: Path, message: string, atKey = false): void {
    this.list.push({ path, message, atKey, severity: 'error' });
  }

  warn(path: Path, message: string): void {
    this.list.push({ path, message, atKey: false, severity: 'warning' });
  }

  get hasErrors(): boolean {
    return this.list.some((i) => i.severity === 'error');
  }
}

export interface Schema<T> {
  /** Human name of the expected type, used in "expected X" messages. */
  readonly expected: string;
  parse(value: unknown, path: Path, issues: Issues): T | undefined;
}

export type Infer<S> = S extends Schema<infer T> ? T : never;

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return `the string ${JSON.stringify(v)}`;
  return `${typeof v} ${String(v)}`;
}

function wrongType(expected: string, v: unknown): string {
  return `expected ${expected}, got ${typeName(v)}`;
}

// === primitives ===

export function string(opts: { nonEmpty?: boolean; pattern?: RegExp; patternHint?: string } = {}): Schema<string> {
  return {
    expected: 'a string',
    parse(v, path, issues) {
      if (typeof v !== 'string') {
        issues.error(path, wrongType('a string', v));
        return undefined;
      }
      if (opts.nonEmpty && v === '') {
        issues.error(path, 'must not be empty');
        return undefined;
      }
      if (opts.pattern && !opts.pattern.test(v)) {
        issues.error(path, `invalid value ${JSON.stringify(v)}${opts.patternHint ? `: ${opts.patternHint}` : ''}`);
        return undefined;
      }
      return v;
    },
  };
}

export function boolean(): Schema<boolean> {
  return {
    expected: 'true or false',
    parse(v, path, issues) {
      if (typeof v !== 'boolean') {
        issues.error(path, wrongType('true or false', v));
        return undefined;
      }
      return v;
    },
  };
}

/** An integer in [min, max]. Strings of digits are accepted, as protobuf JSON allows for int64. */
export function integer(opts: { min?: number; max?: number } = {}): Schema<number> {
  const min = opts.min ?? -(2 ** 31);
  const max = opts.max ?? 2 ** 32 - 1;
  return {
    expected: 'an integer',
    parse(v, path, issues) {
      const n = typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : v;
      if (typeof n !== 'number' || !Number.isInteger(n)) {
        issues.error(path, wrongType('an integer', v));
        return undefined;
      }
      if (n < min || n > max) {
        issues.error(path, `${n} is out of range: must be between ${min} and ${max}`);
        return undefined;
      }
      return n;
    },
  };
}

export function number(opts: { min?: number; max?: number } = {}): Schema<number> {
  return {
    expected: 'a number',
    parse(v, path, issues) {
      if (typeof v !== 'number' || !Number.isFinite(v)) {
        issues.error(path, wrongType('a number', v));
        return undefined;
      }
      if ((opts.min !== undefined && v < opts.min) || (opts.max !== undefined && v > opts.max)) {
        issues.error(path, `${v} is out of range: must be between ${opts.min ?? '-∞'} and ${opts.max ?? '∞'}`);
        return undefined;
      }
      return v;
    },
  };
}

/** A duration string ("5s", "100ms", "1m"), returned in milliseconds. */
export function duration(opts: { minMs?: number; allowZero?: boolean } = {}): Schema<number> {
  return {
    expected: 'a duration',
    parse(v, path, issues) {
      if (typeof v !== 'string') {
        issues.error(path, wrongType('a duration such as "5s" or "100ms"', v));
        return undefined;
      }
      const d = parseDuration(v);
      if ('error' in d) {
        issues.error(path, d.error);
        return undefined;
      }
      if (d.ms === 0 && opts.allowZero) return 0;
      if (opts.minMs !== undefined && d.ms < opts.minMs) {
        issues.error(path, `duration ${v} is too short: must be at least ${opts.minMs}ms`);
        return undefined;
      }
      return d.ms;
    },
  };
}

export function enumOf<const V extends string>(values: readonly V[]): Schema<V> {
  const expected = `one of ${values.join(', ')}`;
  return {
    expected,
    parse(v, path, issues) {
      if (typeof v === 'string' && (values as readonly string[]).includes(v)) return v as V;
      if (typeof v === 'string') {
        issues.error(path, `invalid value ${JSON.stringify(v)}: expected ${expected}${didYouMean(v, values)}`);
      } else {
        issues.error(path, wrongType(expected, v));
      }
      return undefined;
    },
  };
}

/** An RE2 regular expression (checked for RE2 compatibility). */
export function re2(): Schema<string> {
  return {
    expected: 'an RE2 regular expression',
    parse(v, path, issues) {
      if (typeof v !== 'string') {
        issues.error(path, wrongType('an RE2 regular expression', v));
        return undefined;
      }
      const t = translateRe2(v);
      if ('error' in t) {
        issues.error(path, `invalid RE2 regex ${JSON.stringify(v)}: ${t.error}`);
        return undefined;
      }
      return v;
    },
  };
}

// === composites ===

export function array<T>(item: Schema<T>, opts: { minItems?: number; maxItems?: number } = {}): Schema<T[]> {
  return {
    expected: 'a list',
    parse(v, path, issues) {
      if (!Array.isArray(v)) {
        issues.error(path, wrongType(`a list of ${item.expected.replace(/^an? /, '')}s`, v));
        return undefined;
      }
      if (opts.minItems !== undefined && v.length < opts.minItems) {
        issues.error(path, `must have at least ${opts.minItems} item${opts.minItems === 1 ? '' : 's'}`);
      }
      if (opts.maxItems !== undefined && v.length > opts.maxItems) {
        issues.error(path, `must have at most ${opts.maxItems} items`);
      }
      const out: T[] = [];
      v.forEach((x, i) => {
        const parsed = item.parse(x, [...path, i], issues);
        if (parsed !== undefined) out.push(parsed);
      });
      return out;
    },
  };
}

/** A map with string keys (YAML mapping), e.g. labels or header matchers. */
export function record<T>(
  value: Schema<T>,
  opts: { key?: { pattern: RegExp; hint: string } } = {},
): Schema<Record<string, T>> {
  return {
    expected: 'a map',
    parse(v, path, issues) {
      if (v === null || typeof v !== 'object' || Array.isArray(v)) {
        issues.error(path, wrongType('a map', v));
        return undefined;
      }
      const out: Record<string, T> = {};
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
        if (opts.key && !opts.key.pattern.test(k)) {
          issues.error([...path, k], `invalid key ${JSON.stringify(k)}: ${opts.key.hint}`, true);
          continue;
        }
        const parsed = value.parse(x, [...path, k], issues);
        if (parsed !== undefined) out[k] = parsed;
      }
      return out;
    },
  };
}

type Shape = Record<string, Schema<unknown>>;
export type ObjectOf<S extends Shape> = { [K in keyof S]?: Infer<S[K]> };

export interface ObjectOptions<S extends Shape> {
  required?: ReadonlyArray<keyof S & string>;
  /** Groups of fields of which at most one may be set (protobuf oneof). */
  oneOf?: ReadonlyArray<ReadonlyArray<keyof S & string>>;
  /** Groups of fields of which exactly one must be set. */
  exactlyOneOf?: ReadonlyArray<ReadonlyArray<keyof S & string>>;
  /** Fields accepted without validation (e.g. Kubernetes metadata noise). */
  ignored?: readonly string[];
  /** Extra cross-field checks, run when the fields themselves are valid. */
  check?: (value: ObjectOf<S>, path: Path, issues: Issues) => void;
}

export function object<S extends Shape>(shape: S, opts: ObjectOptions<S> = {}): Schema<ObjectOf<S>> {
  const known = Object.keys(shape);
  const ignored = new Set(opts.ignored ?? []);
  return {
    expected: 'an object',
    parse(v, path, issues) {
      if (v === null || typeof v !== 'object' || Array.isArray(v)) {
        issues.error(path, wrongType('an object', v));
        return undefined;
      }
      const input = v as Record<string, unknown>;
      const out: Record<string, unknown> = {};
      const before = issues.list.length;
      for (const [k, x] of Object.entries(input)) {
        const field = shape[k];
        if (field === undefined) {
          if (!ignored.has(k)) issues.error([...path, k], `unknown field "${k}"${didYouMean(k, known)}`, true);
          continue;
        }
        // YAML `key:` with no value is null: treat as absent, as protobuf JSON does.
        if (x === null) continue;
        const parsed = field.parse(x, [...path, k], issues);
        if (parsed !== undefined) out[k] = parsed;
      }
      for (const r of opts.required ?? []) {
        if (input[r] === undefined || input[r] === null) issues.error([...path, r], 'required field is missing');
      }
      const isSet = (k: string): boolean => input[k] !== undefined && input[k] !== null;
      for (const group of opts.oneOf ?? []) {
        const set = group.filter(isSet);
        if (set.length > 1) issues.error([...path, set[1]!], `only one of ${group.join(', ')} may be set`, true);
      }
      for (const group of opts.exactlyOneOf ?? []) {
        const set = group.filter(isSet);
        if (set.length > 1) issues.error([...path, set[1]!], `only one of ${group.join(', ')} may be set`, true);
        if (set.length === 0) issues.error(path, `one of ${group.join(', ')} must be set`);
      }
      const typed = out as ObjectOf<S>;
      if (opts.check && issues.list.length === before) opts.check(typed, path, issues);
      return typed;
    },
  };
}

/** A schema whose parsed value is further checked or transformed. */
export function refine<T, U>(
  base: Schema<T>,
  fn: (value: T, path: Path, issues: Issues) => U | undefined,
): Schema<U> {
  return {
    expected: base.expected,
    parse(v, path, issues) {
      const parsed = base.parse(v, path, issues);
      return parsed === undefined ? undefined : fn(parsed, path, issues);
    },
  };
}

/** Accepts anything; for fields whose content skiff does not read (e.g. annotations values). */
export function any(): Schema<unknown> {
  return { expected: 'a value', parse: (v) => v };
}
