/**
 * RE2 syntax for JavaScript. Istio and Envoy take regexes in RE2 syntax (`safe_regex`); V8's
 * engine speaks a different dialect. This module checks that a pattern is valid RE2 and
 * translates it into an equivalent JavaScript RegExp source:
 *
 * - features RE2 rejects are rejected here too, with RE2's reason: backreferences, lookaround,
 *   atomic groups, possessive quantifiers, repeat counts over 1000;
 * - RE2-only syntax is rewritten: `(?P<name>`, inline and scoped flags `(?i)` `(?s:…)` `(?m)`,
 *   `\A` `\z`, `\Q…\E`, POSIX classes `[[:alpha:]]`, `\pN`, octal and `\x{…}` escapes;
 * - case-insensitivity is expanded into classes (`a` → `[aA]`, `k` → `[kK\u212a]`, with Unicode
 *   simple case folding as RE2 uses it) instead of using the `i` flag, so the result stays
 *   eligible for V8's linear-time engine (see `enableLinearRegexFallback`). Two constructs are
 *   not eligible: `(?m)` anchors (translated to lookaround, since JS's `m` flag also breaks lines
 *   at \r, U+2028 and U+2029) and anything that needs the `u` flag (`\p{…}`, supplementary
 *   characters in a class).
 *
 * Contract: `translateRe2` never throws; it returns the JS source or an error message.
 */

import { setFlagsFromString } from 'node:v8';

export interface Re2Translation {
  /** JavaScript RegExp source (without anchors added). */
  readonly source: string;
  /** JavaScript RegExp flags: '' or 'u' (Unicode property classes, supplementary characters in a class). */
  readonly flags: string;
  /** Number of capturing groups, for rewrite substitutions such as `\1`. */
  readonly groups: number;
}

export type Re2Result = Re2Translation | { readonly error: string };

interface Flags {
  i: boolean;
  s: boolean;
  m: boolean;
}

const MAX_REPEAT = 1000;
/** Characters that must be escaped to stand for themselves in a JS pattern (valid with or without `u`). */
const JS_SYNTAX = new Set('^$\\.*+?()[]{}|/');
const RE2_SPACE = '\\t\\n\\f\\r ';
/** A code point range, both ends included. */
type Range = readonly [number, number];
const RE2_SPACE_RANGES: readonly Range[] = [[0x09, 0x0a], [0x0c, 0x0d], [0x20, 0x20]];

/** RE2's POSIX classes (ASCII only), as code point ranges. */
const POSIX_CLASSES: Readonly<Record<string, readonly Range[]>> = {
  alnum: [[0x30, 0x39], [0x41, 0x5a], [0x61, 0x7a]],
  alpha: [[0x41, 0x5a], [0x61, 0x7a]],
  ascii: [[0x00, 0x7f]],
  blank: [[0x09, 0x09], [0x20, 0x20]],
  cntrl: [[0x00, 0x1f], [0x7f, 0x7f]],
  digit: [[0x30, 0x39]],
  graph: [[0x21, 0x7e]],
  lower: [[0x61, 0x7a]],
  print: [[0x20, 0x7e]],
  punct: [[0x21, 0x2f], [0x3a, 0x40], [0x5b, 0x60], [0x7b, 0x7e]],
  space: [[0x09, 0x0d], [0x20, 0x20]],
  upper: [[0x41, 0x5a]],
  word: [[0x30, 0x39], [0x41, 0x5a], [0x5f, 0x5f], [0x61, 0x7a]],
  xdigit: [[0x30, 0x39], [0x41, 0x46], [0x61, 0x66]],
};

const GENERAL_CATEGORIES = new Set([
  'C', 'Cc', 'Cf', 'Co', 'Cs', 'L', 'Ll', 'Lm', 'Lo', 'Lt', 'Lu', 'M', 'Mc', 'Me', 'Mn', 'N', 'Nd', 'Nl',
  'No', 'P', 'Pc', 'Pd', 'Pe', 'Pf', 'Pi', 'Po', 'Ps', 'S', 'Sc', 'Sk', 'Sm', 'So', 'Z', 'Zl', 'Zp', 'Zs',
]);

class Re2SyntaxError extends Error {}

function fail(message: string): never {
  throw new Re2SyntaxError(message);
}

function isLetter(c: string): boolean {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

const KELVIN_SIGN = 0x212a;
const LONG_S = 0x17f;
/** No code point above this has a case mapping (the last cased script, Adlam, ends at U+1E94B). */
const MAX_CASED = 0x1ffff;
const MAX_RUNE = 0x10ffff;

let orbitTable: Map<number, readonly number[]> | undefined;

/**
 * Simple case-folding orbits, as RE2's `(?i)` uses them (Unicode CaseFolding.txt, statuses C and
 * S): code points connected by single-code-point case mappings, split into the classes that V8's
 * Unicode case-insensitive matching (also simple case folding) treats as equal. Built on first use.
 */
function orbits(): Map<number, readonly number[]> {
  if (orbitTable !== undefined) return orbitTable;
  const parent = new Map<number, number>();
  const root = (x: number): number => {
    let r = x;
    for (let up = parent.get(r); up !== undefined && up !== r; up = parent.get(r)) r = up;
    return r;
  };
  const join = (a: number, b: number): void => {
    if (!parent.has(a)) parent.set(a, a);
    if (!parent.has(b)) parent.set(b, b);
    const ra = root(a);
    const rb = root(b);
    if (ra !== rb) parent.set(ra, rb);
  };
  for (let cp = 0; cp <= MAX_CASED; cp++) {
    if (cp >= 0xd800 && cp <= 0xdfff) continue;
    const s = String.fromCodePoint(cp);
    for (const t of [s.toLowerCase(), s.toUpperCase()]) {
      if (t === s) continue;
      const other = t.codePointAt(0)!;
      if (String.fromCodePoint(other) === t) join(cp, other);
    }
  }
  const groups = new Map<number, number[]>();
  for (const cp of parent.keys()) {
    const r = root(cp);
    const g = groups.get(r);
    if (g === undefined) groups.set(r, [cp]);
    else g.push(cp);
  }
  const table = new Map<number, readonly number[]>();
  for (const group of groups.values()) {
    for (const cp of group) {
      const same = new RegExp(`^\\u{${cp.toString(16)}}$`, 'iu');
      const orbit = group.filter((o) => same.test(String.fromCodePoint(o))).sort((x, y) => x - y);
      if (orbit.length > 1) table.set(cp, orbit);
    }
  }
  orbitTable = table;
  return table;
}

/** The code points RE2's `(?i)` treats as equal to `cp`, `cp` first; undefined when there are none. */
function foldOrbit(cp: number): readonly number[] | undefined {
  if (cp < 0x80) {
    const c = String.fromCharCode(cp);
    if (!isLetter(c)) return undefined;
    const lower = c.toLowerCase();
    const other = (lower === c ? c.toUpperCase() : lower).charCodeAt(0);
    const extra = lower === 'k' ? [KELVIN_SIGN] : lower === 's' ? [LONG_S] : [];
    return [cp, other, ...extra];
  }
  const orbit = orbits().get(cp);
  return orbit === undefined ? undefined : [cp, ...orbit.filter((o) => o !== cp)];
}

/** A single literal code point as JS pattern text outside a class. */
function literal(ch: string, flags: Flags): string {
  const orbit = flags.i ? foldOrbit(ch.codePointAt(0)!) : undefined;
  if (orbit === undefined) return escapeLiteral(ch);
  if (orbit.every((cp) => cp <= 0xffff)) return `[${orbit.map((cp) => classLiteral(String.fromCodePoint(cp))).join('')}]`;
  return `(?:${orbit.map((cp) => escapeLiteral(String.fromCodePoint(cp))).join('|')})`;
}

/** `\\xHH` / `\\uHHHH` for control characters, surrogates and specials; undefined for others. */
function codeEscape(code: number): string | undefined {
  if (code < 0x20 || code === 0x7f) return '\\x' + code.toString(16).padStart(2, '0');
  if ((code >= 0xd800 && code <= 0xdfff) || (code >= 0xfff0 && code <= 0xffff)) return '\\u' + code.toString(16);
  return undefined;
}

function escapeLiteral(ch: string): string {
  if (JS_SYNTAX.has(ch) || ch === '-') return ch === '-' ? '-' : '\\' + ch;
  const code = ch.codePointAt(0)!;
  const escaped = codeEscape(code);
  if (escaped !== undefined) return escaped;
  // Outside Unicode mode a supplementary character is two code units; group them so that a
  // following repetition operator applies to the whole character, as in RE2.
  if (code > 0xffff) return `(?:${ch})`;
  return ch;
}

/** A literal code point inside a class (callers switch to Unicode mode for supplementary ones). */
function classLiteral(ch: string): string {
  if (ch === ']' || ch === '[' || ch === '\\' || ch === '^' || ch === '-') return '\\' + ch;
  return codeEscape(ch.codePointAt(0)!) ?? ch;
}

/** Sorted, merged copy of `ranges`. */
function normaliseRanges(ranges: readonly Range[]): Range[] {
  const sorted = [...ranges].sort((x, y) => x[0] - y[0]);
  const out: Array<[number, number]> = [];
  for (const [lo, hi] of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && lo <= last[1] + 1) last[1] = Math.max(last[1], hi);
    else out.push([lo, hi]);
  }
  return out;
}

/** `ranges` plus every code point case-fold-equivalent to one of them (RE2's AddFoldedRange). */
function foldRanges(ranges: readonly Range[]): Range[] {
  const out: Range[] = [...ranges];
  const ascii = ranges.every(([, hi]) => hi < 0x80);
  if (ascii) {
    for (const [lo, hi] of ranges) {
      for (const [from, to, shift] of [[0x61, 0x7a, -32], [0x41, 0x5a, 32]] as const) {
        const s = Math.max(lo, from);
        const e = Math.min(hi, to);
        if (s <= e) out.push([s + shift, e + shift]);
      }
      if (lo <= 0x6b && 0x6b <= hi) out.push([KELVIN_SIGN, KELVIN_SIGN]);
      else if (lo <= 0x4b && 0x4b <= hi) out.push([KELVIN_SIGN, KELVIN_SIGN]);
      if ((lo <= 0x73 && 0x73 <= hi) || (lo <= 0x53 && 0x53 <= hi)) out.push([LONG_S, LONG_S]);
    }
    return normaliseRanges(out);
  }
  for (const [cp, orbit] of orbits()) {
    if (ranges.some(([lo, hi]) => lo <= cp && cp <= hi)) for (const o of orbit) out.push([o, o]);
  }
  return normaliseRanges(out);
}

/** The code points in [0, max] not in `ranges`. */
function complementRanges(ranges: readonly Range[], max: number): Range[] {
  const out: Range[] = [];
  let next = 0;
  for (const [lo, hi] of normaliseRanges(ranges)) {
    if (lo > next) out.push([next, Math.min(lo - 1, max)]);
    next = Math.max(next, hi + 1);
    if (next > max) break;
  }
  if (next <= max) out.push([next, max]);
  return out;
}

class Translator {
  readonly #p: string;
  #pos = 0;
  #out = '';
  #flags: Flags;
  readonly #stack: Flags[] = [];
  #groups = 0;
  #unicode = false;
  /** Whether the last emitted item can take a repetition operator. */
  #canRepeat = false;

  /**
   * `unicode`: translate for a `u`-flag RegExp from the start. The first pass runs without it and
   * turns it on when the pattern needs it; the caller then translates again in Unicode mode so
   * that every part is written for it (e.g. complemented classes reaching U+10FFFF).
   */
  constructor(pattern: string, unicode = false) {
    this.#p = pattern;
    this.#flags = { i: false, s: false, m: false };
    this.#unicode = unicode;
  }

  run(): Re2Translation {
    const p = this.#p;
    while (this.#pos < p.length) {
      const c = p[this.#pos]!;
      switch (c) {
        case '\\':
          this.#escape();
          break;
        case '[':
          this.#class();
          break;
        case '(':
          this.#openGroup();
          break;
        case ')':
          if (this.#stack.length === 0) fail('unexpected ): missing opening (');
          this.#flags = this.#stack.pop()!;
          this.#out += ')';
          this.#pos++;
          this.#canRepeat = true;
          break;
        case '*':
        case '+':
        case '?':
          this.#repeat(c, 1);
          break;
        case '{':
          this.#braces();
          break;
        case '|':
          this.#out += '|';
          this.#pos++;
          this.#canRepeat = false;
          break;
        case '.':
          this.#out += this.#flags.s ? '[\\s\\S]' : '[^\\n]';
          this.#pos++;
          this.#canRepeat = true;
          break;
        case '^':
          this.#out += this.#flags.m ? '(?<![^\\n])' : '^';
          this.#pos++;
          this.#canRepeat = false;
          break;
        case '$':
          this.#out += this.#flags.m ? '(?![^\\n])' : '$';
          this.#pos++;
          this.#canRepeat = false;
          break;
        default: {
          const ch = String.fromCodePoint(p.codePointAt(this.#pos)!);
          this.#out += literal(ch, this.#flags);
          this.#pos += ch.length;
          this.#canRepeat = true;
        }
      }
    }
    if (this.#stack.length > 0) fail('missing closing ): unbalanced parentheses');
    return { source: this.#out, flags: this.#unicode ? 'u' : '', groups: this.#groups };
  }

  #repeat(op: string, length: number): void {
    if (!this.#canRepeat) fail(`missing argument to repetition operator: ${op}`);
    this.#out += this.#p.slice(this.#pos, this.#pos + length);
    this.#pos += length;
    const next = this.#p[this.#pos];
    if (next === '?') {
      this.#out += '?';
      this.#pos++;
    } else if (next === '+' || next === '*') {
      fail(`bad repetition operator: ${op}${next} (possessive and repeated quantifiers are not RE2)`);
    }
    const after = this.#p[this.#pos];
    if (after === '*' || after === '+' || after === '?' || (after === '{' && this.#braceRepeatAt(this.#pos))) {
      fail(`bad repetition operator: ${op}${after}`);
    }
    this.#canRepeat = false;
  }

  /** Length of a valid `{n}`, `{n,}` or `{n,m}` at `pos`, or 0 when the brace is a literal. */
  #braceRepeatAt(pos: number): number {
    const m = /^\{(\d+)(,(\d*))?\}/.exec(this.#p.slice(pos));
    return m === null ? 0 : m[0].length;
  }

  #braces(): void {
    const length = this.#braceRepeatAt(this.#pos);
    if (length === 0) {
      this.#out += literal('{', this.#flags);
      this.#pos++;
      this.#canRepeat = true;
      return;
    }
    const m = /^\{(\d+)(,(\d*))?\}/.exec(this.#p.slice(this.#pos))!;
    const min = Number(m[1]);
    const max = m[2] === undefined ? min : m[3] === '' ? undefined : Number(m[3]);
    if (min > MAX_REPEAT || (max !== undefined && max > MAX_REPEAT)) {
      fail(`bad repetition operator: ${m[0]} (counts above ${MAX_REPEAT} are not allowed)`);
    }
    if (max !== undefined && max < min) fail(`bad repetition operator: ${m[0]} (max is less than min)`);
    this.#repeat(m[0], length);
  }

  #openGroup(): void {
    const p = this.#p;
    if (p[this.#pos + 1] !== '?') {
      this.#stack.push({ ...this.#flags });
      this.#groups++;
      this.#out += '(';
      this.#pos++;
      this.#canRepeat = false;
      return;
    }
    const rest = p.slice(this.#pos + 2);
    if (rest.startsWith('P<') || (rest.startsWith('<') && !rest.startsWith('<=') && !rest.startsWith('<!'))) {
      const start = rest.startsWith('P<') ? 2 : 1;
      const m = /^([A-Za-z_][A-Za-z0-9_]*)>/.exec(rest.slice(start));
      if (m === null) fail('invalid named capture group');
      this.#stack.push({ ...this.#flags });
      this.#groups++;
      this.#out += `(?<${m[1]}>`;
      this.#pos += 2 + start + m[0].length;
      this.#canRepeat = false;
      return;
    }
    if (rest.startsWith('P=') || rest.startsWith('P>')) fail('backreferences are not supported by RE2');
    if (rest.startsWith('=') || rest.startsWith('!') || rest.startsWith('<=') || rest.startsWith('<!')) {
      fail('lookahead and lookbehind assertions are not supported by RE2');
    }
    if (rest.startsWith('>')) fail('atomic groups are not supported by RE2');
    if (rest.startsWith('#')) fail('comments are not supported by RE2');
    const m = /^([imsU]*)(?:-([imsU]*))?([:)])/.exec(rest);
    if (m === null) fail(`invalid or unsupported group syntax "(?${rest.slice(0, 3)}"`);
    const on = m[1]!;
    const off = m[2] ?? '';
    if (m[2] !== undefined && off === '') fail('invalid flag syntax: missing flags after -');
    if (on.includes('U') || off.includes('U')) fail('the ungreedy flag U is not supported');
    const next: Flags = { ...this.#flags };
    for (const f of on) next[f as keyof Flags] = true;
    for (const f of off) next[f as keyof Flags] = false;
    this.#pos += 2 + m[0].length;
    if (m[3] === ')') {
      // (?flags) applies to the rest of the enclosing group.
      this.#flags = next;
      return;
    }
    this.#stack.push(this.#flags);
    this.#flags = next;
    this.#out += '(?:';
    this.#canRepeat = false;
  }

  /** Reads an escape at #pos (outside a class) and emits its translation. */
  #escape(): void {
    const p = this.#p;
    const c = p[this.#pos + 1];
    if (c === undefined) fail('trailing backslash at end of expression');
    this.#canRepeat = true;
    switch (c) {
      case 'd':
      case 'D':
      case 'w':
      case 'W':
        this.#out += '\\' + c;
        this.#pos += 2;
        return;
      case 's':
        this.#out += `[${RE2_SPACE}]`;
        this.#pos += 2;
        return;
      case 'S':
        this.#out += `[^${RE2_SPACE}]`;
        this.#pos += 2;
        return;
      case 'b':
      case 'B':
        this.#out += '\\' + c;
        this.#pos += 2;
        this.#canRepeat = false;
        return;
      case 'A':
        this.#out += '^';
        this.#pos += 2;
        this.#canRepeat = false;
        return;
      case 'z':
        this.#out += '$';
        this.#pos += 2;
        this.#canRepeat = false;
        return;
      case 'Q': {
        const end = p.indexOf('\\E', this.#pos + 2);
        const text = p.slice(this.#pos + 2, end === -1 ? p.length : end);
        for (const ch of text) this.#out += literal(ch, this.#flags);
        this.#pos = end === -1 ? p.length : end + 2;
        this.#canRepeat = text.length > 0;
        return;
      }
      case 'E':
        this.#pos += 2;
        return;
      case 'p':
      case 'P':
        this.#out += this.#unicodeClass();
        return;
      default: {
        const ch = this.#codeEscape();
        if (ch !== undefined) {
          this.#out += literal(ch, this.#flags);
          return;
        }
        if (/[A-Za-z0-9]/.test(c) || c > '\x7f') fail(`invalid or unsupported escape sequence \\${c}`);
        this.#out += literal(c, this.#flags);
        this.#pos += 2;
      }
    }
  }

  /**
   * Escapes that denote one character: \a \f \t \n \r \v, octal, \xHH and \x{H…}. Returns the
   * character and advances, or returns undefined (and does not advance) for other escapes.
   * Rejects backreferences (\1–\9 standing alone).
   */
  #codeEscape(): string | undefined {
    const p = this.#p;
    const c = p[this.#pos + 1]!;
    const simple: Record<string, string> = { a: '\x07', f: '\f', t: '\t', n: '\n', r: '\r', v: '\v' };
    if (c in simple) {
      this.#pos += 2;
      return simple[c];
    }
    if (c >= '0' && c <= '7') {
      const m = /^[0-7]{1,3}/.exec(p.slice(this.#pos + 1))!;
      if (c !== '0' && m[0].length === 1) fail(`backreferences are not supported by RE2: \\${c}`);
      this.#pos += 1 + m[0].length;
      return String.fromCodePoint(parseInt(m[0], 8));
    }
    if (c === '8' || c === '9') fail(`backreferences are not supported by RE2: \\${c}`);
    if (c === 'x') {
      const rest = p.slice(this.#pos + 2);
      const braced = /^\{([0-9A-Fa-f]+)\}/.exec(rest);
      const plain = /^[0-9A-Fa-f]{2}/.exec(rest);
      const hex = braced?.[1] ?? plain?.[0];
      if (hex === undefined) fail('invalid escape sequence \\x: expected two hex digits or \\x{…}');
      const code = parseInt(hex, 16);
      if (code > 0x10ffff) fail('invalid escape sequence: code point above U+10FFFF');
      this.#pos += 2 + (braced?.[0].length ?? 2);
      return String.fromCodePoint(code);
    }
    return undefined;
  }

  /** \pN, \p{Name}, \p{^Name}, \PN at #pos; returns JS text and turns on the `u` flag. */
  #unicodeClass(): string {
    const p = this.#p;
    const negated = p[this.#pos + 1] === 'P';
    let name: string;
    if (p[this.#pos + 2] === '{') {
      const end = p.indexOf('}', this.#pos + 3);
      if (end === -1) fail('invalid character class range: missing } after \\p{');
      name = p.slice(this.#pos + 3, end);
      this.#pos = end + 1;
    } else {
      name = p[this.#pos + 2] ?? '';
      this.#pos += 3;
    }
    let neg = negated;
    if (name.startsWith('^')) {
      neg = !neg;
      name = name.slice(1);
    }
    if (!/^[A-Za-z_]+$/.test(name)) fail(`invalid Unicode class name "${name}"`);
    const body = name === 'Any' ? 'Any' : GENERAL_CATEGORIES.has(name) ? name : `Script=${name}`;
    try {
      new RegExp(`\\p{${body}}`, 'u');
    } catch {
      fail(`unknown Unicode class name "${name}"`);
    }
    this.#unicode = true;
    return `\\${neg ? 'P' : 'p'}{${body}}`;
  }

  /** Reads a bracket expression at #pos and emits it. */
  #class(): void {
    const p = this.#p;
    let pos = this.#pos + 1;
    let negate = false;
    if (p[pos] === '^') {
      negate = true;
      pos++;
    }
    /** Class escapes (\d, \pL, ...) emitted as they are. */
    let escapes = '';
    /** Characters, ranges and POSIX classes: case-folded under (?i). */
    const ranges: Range[] = [];
    /** Complemented POSIX classes, already closed under case folding. */
    const closed: Range[] = [];
    let first = true;
    for (;;) {
      const c = p[pos];
      if (c === undefined) fail('missing closing ]: unterminated character class');
      if (c === ']' && !first) {
        pos++;
        break;
      }
      first = false;
      if (c === '[' && p[pos + 1] === ':') {
        const m = /^\[:(\^?)([a-z]+):\]/.exec(p.slice(pos));
        if (m !== null) {
          const set = POSIX_CLASSES[m[2]!];
          if (set === undefined) fail(`invalid character class range: unknown POSIX class [:${m[1]}${m[2]}:]`);
          if (m[1] === '^') {
            // RE2 (AddUGroup with a negative sign): fold first, then complement.
            closed.push(...complementRanges(this.#flags.i ? foldRanges(set) : set, this.#unicode ? MAX_RUNE : 0xffff));
          } else {
            ranges.push(...set);
          }
          pos += m[0].length;
          continue;
        }
      }
      // One class atom: a character (possibly escaped) or a class escape; then maybe a range.
      this.#pos = pos;
      const lo = this.#classAtom();
      pos = this.#pos;
      if (lo.text !== undefined) {
        escapes += lo.text;
        continue;
      }
      if (lo.closed !== undefined) {
        closed.push(...lo.closed);
        continue;
      }
      const from = lo.ch!.codePointAt(0)!;
      if (p[pos] === '-' && p[pos + 1] !== ']' && p[pos + 1] !== undefined) {
        this.#pos = pos + 1;
        const hi = this.#classAtom();
        pos = this.#pos;
        if (hi.ch === undefined) fail('invalid character class range: a class escape cannot end a range');
        const to = hi.ch!.codePointAt(0)!;
        if (to < from) fail(`invalid character class range: ${lo.ch}-${hi.ch}`);
        ranges.push([from, to]);
      } else {
        ranges.push([from, from]);
      }
    }
    const all = normaliseRanges([...(this.#flags.i ? foldRanges(ranges) : ranges), ...closed]);
    let body = '';
    for (const [lo, hi] of all) {
      if (hi > 0xffff) this.#unicode = true;
      const a = classLiteral(String.fromCodePoint(lo));
      body += lo === hi ? a : hi === lo + 1 ? a + classLiteral(String.fromCodePoint(hi)) : `${a}-${classLiteral(String.fromCodePoint(hi))}`;
    }
    this.#out += `[${negate ? '^' : ''}${body}${escapes}]`;
    this.#pos = pos;
    this.#canRepeat = true;
  }

  /** One atom inside a class at #pos: either a literal `ch` or ready-made class `text`. */
  #classAtom(): { ch?: string; text?: string; closed?: Range[] } {
    const p = this.#p;
    const c = p[this.#pos]!;
    if (c !== '\\') {
      const ch = String.fromCodePoint(p.codePointAt(this.#pos)!);
      this.#pos += ch.length;
      return { ch };
    }
    const e = p[this.#pos + 1];
    if (e === undefined) fail('trailing backslash at end of expression');
    if (e === 'd' || e === 'D' || e === 'w' || e === 'W') {
      this.#pos += 2;
      return { text: '\\' + e };
    }
    if (e === 's') {
      this.#pos += 2;
      return { text: RE2_SPACE };
    }
    if (e === 'S') {
      // Not JS's \S, which also excludes \v and Unicode spaces.
      this.#pos += 2;
      return { closed: complementRanges(RE2_SPACE_RANGES, this.#unicode ? MAX_RUNE : 0xffff) };
    }
    if (e === 'p' || e === 'P') return { text: this.#unicodeClass() };
    const ch = this.#codeEscape();
    if (ch !== undefined) return { ch };
    if (/[A-Za-z0-9]/.test(e) || e > '\x7f') fail(`invalid or unsupported escape sequence \\${e} in character class`);
    this.#pos += 2;
    return { ch: e };
  }
}

/** Checks and translates an RE2 pattern. Never throws. */
export function translateRe2(pattern: string): Re2Result {
  let translated: Re2Translation;
  try {
    translated = new Translator(pattern).run();
    if (translated.flags === 'u') translated = new Translator(pattern, true).run();
  } catch (err) {
    if (err instanceof Re2SyntaxError) return { error: err.message };
    throw err;
  }
  try {
    new RegExp(translated.source, translated.flags);
  } catch (err) {
    return { error: `not supported: ${(err as Error).message}` };
  }
  return translated;
}

/**
 * Compiles an RE2 pattern that must match a whole string (Envoy's `safe_regex` semantics).
 * Throws when the pattern is not valid RE2; config validation reports that earlier, with position.
 */
export function compileFullMatch(pattern: string): RegExp {
  const t = translateRe2(pattern);
  if ('error' in t) throw new Error(`invalid RE2 regex ${JSON.stringify(pattern)}: ${t.error}`);
  return new RegExp(`^(?:${t.source})$`, t.flags);
}

/** Compiles an RE2 pattern for searching (used by rewrites, which replace every match). */
export function compileSearch(pattern: string): RegExp {
  const t = translateRe2(pattern);
  if ('error' in t) throw new Error(`invalid RE2 regex ${JSON.stringify(pattern)}: ${t.error}`);
  return new RegExp(t.source, t.flags + 'g');
}

let linearFallbackEnabled = false;

/**
 * Makes V8 fall back to its linear-time regex engine when a match backtracks excessively, so a
 * request cannot make a configured regex run in exponential time (RE2's guarantee). Must run
 * before regexes are compiled; idempotent.
 */
export function enableLinearRegexFallback(): void {
  if (linearFallbackEnabled) return;
  setFlagsFromString('--enable-experimental-regexp-engine-on-excessive-backtracks');
  linearFallbackEnabled = true;
}
