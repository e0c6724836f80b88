/**
 * Reading Envoy v3 resources given as parsed YAML or proto3 JSON (what the xDS decoder, a config
 * dump or a file yields). Field names may be snake_case or lowerCamelCase; durations are "1.5s"
 * strings or `{seconds, nanos}`; wrapped integers are numbers, decimal strings or `{value}`.
 *
 * Contract: a translator reads every message through `message` with a Spec, so each field is
 * translated, accepted with a stated reason, or reported as an XdsProblem naming its snake_case
 * path. Any problem means the resource is refused (a NACK).
 */
import { translateRe2 } from '../../core/re2.js';
import type { HeaderMatch } from '../../model/route.js';
import type { StringMatch } from '../../model/string-match.js';

export interface XdsProblem {
  /** snake_case field path, e.g. `virtual_hosts[0].routes[3].match.safe_regex.regex`. */
  readonly path: string;
  readonly message: string;
}

/** How one message's fields are handled: translated, accepted without effect (why), or refused unless unset. */
export interface Spec {
  readonly handled: readonly string[];
  readonly ignored?: Readonly<Record<string, string>>;
  readonly refused?: Readonly<Record<string, string>>;
}

export type Obj = Readonly<Record<string, unknown>>;
/** A message's fields by snake_case name (absent and null fields left out). */
export type Fields = ReadonlyMap<string, unknown>;

export const snake = (name: string): string => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
export const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A refused field counts as set unless it holds its proto3 default. */
export function isSet(v: unknown): boolean {
  if (v === undefined || v === null || v === false || v === 0 || v === '' || v === '0') return false;
  if (Array.isArray(v)) return v.length > 0;
  if (isObject(v)) return Object.keys(v).length > 0;
  return true;
}

const REGEX_MATCHER: Spec = { handled: ['regex', 'google_re2'] };
const STRING_MATCHER: Spec = {
  handled: ['exact', 'prefix', 'suffix', 'safe_regex', 'contains', 'ignore_case'],
  refused: { custom: 'custom string matchers are not supported' },
};
const HEADER_MATCHER: Spec = {
  handled: [
    'name', 'exact_match', 'safe_regex_match', 'present_match', 'prefix_match', 'suffix_match', 'contains_match',
    'string_match', 'invert_match', 'treat_missing_header_as_empty',
  ],
  refused: { range_match: 'range matches are not supported' },
};
const FRACTIONAL_PERCENT: Spec = { handled: ['numerator', 'denominator'] };
const DENOMINATORS = ['HUNDRED', 'TEN_THOUSAND', 'MILLION'] as const;
const DENOMINATOR_VALUES = [100, 10_000, 1_000_000] as const;
const GOOGLE_RE2: Spec = { handled: [], ignored: { max_program_size: 'deprecated; program size is not limited' } };

/** Field readers that record problems; translators extend it. */
export class FieldReader {
  readonly problems: XdsProblem[] = [];

  protected problem(path: string, message: string): void {
    this.problems.push({ path, message });
  }

  /** Reads a message: checks that it is an object, maps names to snake_case, reports unknown, duplicate and refused fields. */
  protected message(v: unknown, path: string, spec: Spec): Fields {
    const out = new Map<string, unknown>();
    if (v === undefined || v === null) return out;
    if (!isObject(v)) {
      this.problem(path, 'must be an object');
      return out;
    }
    for (const [key, value] of Object.entries(v)) {
      const name = snake(key);
      const at = path === '' ? name : `${path}.${name}`;
      if (out.has(name)) {
        this.problem(at, 'set twice (snake_case and lowerCamelCase)');
        continue;
      }
      if (value === null) continue;
      if (spec.handled.includes(name)) out.set(name, value);
      else if (spec.ignored !== undefined && name in spec.ignored) continue;
      else if (spec.refused !== undefined && name in spec.refused) {
        if (isSet(value)) this.problem(at, `not supported: ${spec.refused[name]}`);
      } else this.problem(at, 'unknown field');
    }
    return out;
  }

  protected string(v: unknown, path: string): string | undefined {
    if (v === undefined) return undefined;
    if (typeof v === 'string') return v;
    this.problem(path, 'must be a string');
    return undefined;
  }

  /** bool, or a BoolValue wrapper `{value}`. */
  protected bool(v: unknown, path: string): boolean | undefined {
    if (v === undefined) return undefined;
    if (isObject(v) && Object.keys(v).every((k) => k === 'value')) return this.bool(v['value'] ?? false, path);
    if (typeof v === 'boolean') return v;
    this.problem(path, 'must be a boolean');
    return undefined;
  }

  /** uint32/uint64 or their wrappers: a number, a decimal string, or `{value}`. */
  protected uint(v: unknown, path: string): number | undefined {
    if (v === undefined) return undefined;
    if (isObject(v) && Object.keys(v).every((k) => k === 'value')) return this.uint(v['value'] ?? 0, path);
    const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : NaN;
    if (Number.isSafeInteger(n) && n >= 0) return n;
    this.problem(path, 'must be a non-negative integer');
    return undefined;
  }

  /** google.protobuf.Duration: `"1.5s"` or `{seconds, nanos}`; milliseconds. */
  protected duration(v: unknown, path: string): number | undefined {
    if (v === undefined) return undefined;
    if (typeof v === 'string') {
      const m = /^(\d+)(?:\.(\d{1,9}))?s$/.exec(v.trim());
      if (m === null) {
        this.problem(path, `invalid duration ${JSON.stringify(v)}: expected seconds with an "s" suffix, e.g. "15s" or "0.25s"`);
        return undefined;
      }
      return Number(m[1]) * 1000 + Number((m[2] ?? '').padEnd(9, '0')) / 1e6;
    }
    if (isObject(v)) {
      const f = this.message(v, path, { handled: ['seconds', 'nanos'] });
      const seconds = this.uint(f.get('seconds'), `${path}.seconds`) ?? 0;
      const nanos = this.uint(f.get('nanos'), `${path}.nanos`) ?? 0;
      if (nanos > 999_999_999) this.problem(`${path}.nanos`, 'must be below 1e9');
      return seconds * 1000 + nanos / 1e6;
    }
    this.problem(path, 'must be a duration ("15s" or {seconds, nanos})');
    return undefined;
  }

  /** An enum given by name or number; returns its index. */
  protected enum(v: unknown, path: string, names: readonly string[]): number | undefined {
    if (v === undefined) return undefined;
    const i = typeof v === 'number' ? v : typeof v === 'string' ? names.indexOf(v) : -1;
    if (Number.isInteger(i) && i >= 0 && i < names.length) return i;
    this.problem(path, `must be one of ${names.join(', ')}`);
    return undefined;
  }

  protected list(v: unknown, path: string): readonly unknown[] {
    if (v === undefined) return [];
    if (Array.isArray(v)) return v;
    this.problem(path, 'must be a list');
    return [];
  }

  protected strings(v: unknown, path: string): string[] {
    return this.list(v, path).flatMap((s, i) => this.string(s, `${path}[${i}]`) ?? []);
  }

  /** A google.protobuf.Any (`typed_config` and the like); undefined (and a problem) when it has no `@type`. */
  protected any(v: unknown, path: string): AnyMessage | undefined {
    if (v === undefined) return undefined;
    if (!isObject(v) || typeof v['@type'] !== 'string') {
      this.problem(path, 'must be an Any with "@type"');
      return undefined;
    }
    const { ['@type']: typeUrl, ...body } = v;
    return { typeUrl: typeUrl as string, body };
  }

  /**
   * Envoy HeaderMatcher (every legacy form and string_match) → the model's HeaderMatch, name
   * lowercased. Undefined (with problems) when it cannot be read: callers refuse the whole
   * resource then, so nothing half-read is ever enforced.
   */
  protected headerMatcher(v: unknown, path: string): HeaderMatch | undefined {
    const f = this.message(v, path, HEADER_MATCHER);
    const name = this.string(f.get('name'), `${path}.name`) ?? '';
    if (name === '') {
      this.problem(`${path}.name`, 'required');
      return undefined;
    }
    let invert = this.bool(f.get('invert_match'), `${path}.invert_match`) ?? false;
    const treatMissingAsEmpty = this.bool(f.get('treat_missing_header_as_empty'), `${path}.treat_missing_header_as_empty`) ?? false;
    const kinds = ['exact_match', 'safe_regex_match', 'present_match', 'prefix_match', 'suffix_match', 'contains_match', 'string_match'].filter((k) => f.has(k));
    if (kinds.length > 1) {
      this.problem(path, `only one of ${kinds.join(', ')} may be set`);
      return undefined;
    }
    let match: StringMatch | undefined;
    const kind = kinds[0];
    switch (kind) {
      case 'exact_match':
      case 'prefix_match':
      case 'suffix_match':
      case 'contains_match': {
        const literal = kind.slice(0, -'_match'.length) as 'exact' | 'prefix' | 'suffix' | 'contains';
        const value = this.string(f.get(kind), `${path}.${kind}`);
        if (value === undefined) return undefined;
        if (value === '' && literal !== 'exact') this.problem(`${path}.${kind}`, 'must not be empty');
        match = { kind: literal, value };
        break;
      }
      case 'safe_regex_match': {
        const regex = this.regex(f.get('safe_regex_match'), `${path}.safe_regex_match`);
        if (regex === undefined) return undefined;
        match = { kind: 'regex', value: regex };
        break;
      }
      case 'string_match':
        match = this.stringMatcher(f.get('string_match'), `${path}.string_match`);
        if (match === undefined) return undefined;
        break;
      case 'present_match':
        // present_match: false matches when the header is absent.
        if (this.bool(f.get('present_match'), `${path}.present_match`) === false) invert = !invert;
        break;
      default:
        break; // no specifier: a presence match
    }
    return { name: name.toLowerCase(), ...(match !== undefined ? { match } : {}), invert, treatMissingAsEmpty };
  }

  /** envoy.type.matcher.v3.StringMatcher → a StringMatch (ignore_case does not apply to safe_regex). */
  protected stringMatcher(v: unknown, path: string): StringMatch | undefined {
    const f = this.message(v, path, STRING_MATCHER);
    const ignoreCase = this.bool(f.get('ignore_case'), `${path}.ignore_case`) ?? false;
    const kinds = ['exact', 'prefix', 'suffix', 'safe_regex', 'contains'].filter((k) => f.has(k));
    if (kinds.length !== 1) {
      this.problem(path, 'exactly one of exact, prefix, suffix, safe_regex or contains is required');
      return undefined;
    }
    const kind = kinds[0] as 'exact' | 'prefix' | 'suffix' | 'safe_regex' | 'contains';
    if (kind === 'safe_regex') {
      const regex = this.regex(f.get('safe_regex'), `${path}.safe_regex`);
      return regex === undefined ? undefined : { kind: 'regex', value: regex };
    }
    const value = this.string(f.get(kind), `${path}.${kind}`);
    if (value === undefined) return undefined;
    if (value === '' && kind !== 'exact') this.problem(`${path}.${kind}`, 'must not be empty');
    return { kind, value, ...(ignoreCase ? { ignoreCase } : {}) };
  }

  /** envoy.type.v3.FractionalPercent → a percentage 0–100 (capped); unset is 0%. */
  protected fractionalPercent(v: unknown, path: string): number {
    const d = this.message(v, path, FRACTIONAL_PERCENT);
    const numerator = this.uint(d.get('numerator'), `${path}.numerator`) ?? 0;
    const denominator = this.enum(d.get('denominator'), `${path}.denominator`, DENOMINATORS) ?? 0;
    return Math.min(100, (numerator / DENOMINATOR_VALUES[denominator]!) * 100);
  }

  /** An RE2 pattern, validated as the Istio translator does (core/re2). */
  protected regex(v: unknown, path: string): string | undefined {
    const f = this.message(v, path, REGEX_MATCHER);
    this.message(f.get('google_re2'), `${path}.google_re2`, GOOGLE_RE2);
    const regex = this.string(f.get('regex'), `${path}.regex`);
    if (regex === undefined) {
      this.problem(`${path}.regex`, 'required');
      return undefined;
    }
    const t = translateRe2(regex);
    if ('error' in t) {
      this.problem(`${path}.regex`, `invalid RE2 regex ${JSON.stringify(regex)}: ${t.error}`);
      return undefined;
    }
    return regex;
  }
}

/** A google.protobuf.Any in proto3 JSON form: `{"@type": url, ...fields}`. */
export interface AnyMessage {
  /** The full type URL, e.g. type.googleapis.com/envoy.config.cluster.v3.Cluster. */
  readonly typeUrl: string;
  /** The message's fields (without `@type`). */
  readonly body: Obj;
}

/** The type name of a type URL: what follows the last `/`. */
export const typeName = (typeUrl: string): string => typeUrl.slice(typeUrl.lastIndexOf('/') + 1);

/** The TypedStruct wrappers (udpa.type.v1 and xds.type.v3), by type name: their `type_url` names the real type. */
const TYPED_STRUCTS: ReadonlySet<string> = new Set(['udpa.type.v1.TypedStruct', 'xds.type.v3.TypedStruct']);
const GOOGLE_TYPE_URL_PREFIX = 'type.googleapis.com/';

/** Whether a type name, or a type URL with the `type.googleapis.com/` prefix, is a TypedStruct. */
export function isTypedStruct(typeUrlOrName: string): boolean {
  const name = typeUrlOrName.startsWith(GOOGLE_TYPE_URL_PREFIX) ? typeUrlOrName.slice(GOOGLE_TYPE_URL_PREFIX.length) : typeUrlOrName;
  return TYPED_STRUCTS.has(name);
}
