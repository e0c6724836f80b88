/**
 * RE2 syntax for JavaScript. Istio and Envoy take regexes in RE2 syntax (`safe_regex`); V8's
 * engine speaks a different dialect. This module checks that a pattern is valid RE2 and
 * translates it into an equivalent JavaScript RegExp source:
 *
 * - features RE2 rejects are rejected here too, with RE2's reason: backreferences, lookaround,
 *   atomic groups, possessive quantifiers, repeat counts over 1000;
 * - RE2-only syntax is rewritten: `(?P<name>`, inline and scoped flags `(?i)` `(?s:…)` `(?m)`,
 *   `\A` `\z`, `\Q…\E`, POSIX classes `[[:alpha:]]`, `\pN`, octal and `\x{…}` escapes;
 * - case-insensitivity is expanded into classes (`a` → `[aA]`) instead of using the `i` flag, so
 *   the result stays eligible for V8's linear-time engine (see `enableLinearRegexFallback`).
 *
 * Contract: `translateRe2` never throws; it returns the JS source or an error message.
 */

import { setFlagsFromString } from 'node:v8';

export interface Re2Translation {
  /** JavaScript RegExp source (without anchors added). */
  readonly source: string;
  /** JavaScript RegExp flags: '' or 'u' (only when Unicode property classes are used). */
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

const POSIX_CLASSES: Readonly<Record<string, string>> = {
  alnum: '0-9A-Za-z',
  alpha: 'A-Za-z',
  ascii: '\\x00-\\x7f',
  blank: '\\t ',
  cntrl: '\\x00-\\x1f\\x7f',
  digit: '0-9',
  graph: '!-~',
  lower: 'a-z',
  print: ' -~',
  punct: '!-\\/:-@\\[-`{-~',
  space: '\\t\\n\\v\\f\\r ',
  upper: 'A-Z',
  word: '0-9A-Za-z_',
  xdigit: '0-9A-Fa-f',
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

function otherCase(c: string): string {
  const lower = c.toLowerCase();
  return lower === c ? c.toUpperCase() : lower;
}

/** A single literal code point as JS pattern text outside a class. */
function literal(ch: string, flags: Flags): string {
  if (flags.i && isLetter(ch)) return `[${ch}${otherCase(ch)}]`;
  return escapeLiteral(ch);
}

function escapeLiteral(ch: string): string {
  if (JS_SYNTAX.has(ch) || ch === '-') return ch === '-' ? '-' : '\\' + ch;
  const code = ch.codePointAt(0)!;
  if (code < 0x20 || code === 0x7f) return '\\x' + code.toString(16).padStart(2, '0');
  return ch;
}

/** A literal code point inside a class. */
function classLiteral(ch: string): string {
  if (ch === ']' || ch === '[' || ch === '\\' || ch === '^' || ch === '-') return '\\' + ch;
  return escapeLiteral(ch);
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

  constructor(pattern: string) {
    this.#p = pattern;
    this.#flags = { i: false, s: false, m: false };
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
        if (/[A-Za-z0-9]/.test(c)) fail(`invalid or unsupported escape sequence \\${c}`);
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
      const braced = /^\{([0-9A-Fa-f]{1,6})\}/.exec(rest);
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
    let body = '';
    let first = true;
    /** Single characters and ranges collected for case folding. */
    const letters: Array<[string, string]> = [];
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
          if (set === undefined) fail(`invalid character class range: unknown POSIX class [:${m[2]}:]`);
          if (m[1] === '^') fail(`negated POSIX classes such as [:^${m[2]}:] are not supported`);
          body += set;
          pos += m[0].length;
          continue;
        }
      }
      // One class atom: a character (possibly escaped) or a class escape; then maybe a range.
      this.#pos = pos;
      const lo = this.#classAtom();
      pos = this.#pos;
      if (lo.text !== undefined) {
        body += lo.text;
        continue;
      }
      if (p[pos] === '-' && p[pos + 1] !== ']' && p[pos + 1] !== undefined) {
        this.#pos = pos + 1;
        const hi = this.#classAtom();
        pos = this.#pos;
        if (hi.text !== undefined) fail('invalid character class range: a class escape cannot end a range');
        if (hi.ch!.codePointAt(0)! < lo.ch!.codePointAt(0)!) {
          fail(`invalid character class range: ${lo.ch}-${hi.ch}`);
        }
        body += `${classLiteral(lo.ch!)}-${classLiteral(hi.ch!)}`;
        letters.push([lo.ch!, hi.ch!]);
      } else {
        body += classLiteral(lo.ch!);
        letters.push([lo.ch!, lo.ch!]);
      }
    }
    if (this.#flags.i) body += caseFoldAdditions(letters);
    this.#out += `[${negate ? '^' : ''}${body}]`;
    this.#pos = pos;
    this.#canRepeat = true;
  }

  /** One atom inside a class at #pos: either a literal `ch` or ready-made class `text`. */
  #classAtom(): { ch?: string; text?: string } {
    const p = this.#p;
    const c = p[this.#pos]!;
    if (c !== '\\') {
      const ch = String.fromCodePoint(p.codePointAt(this.#pos)!);
      this.#pos += ch.length;
      return { ch };
    }
    const e = p[this.#pos + 1];
    if (e === undefined) fail('trailing backslash at end of expression');
    if (e === 'd' || e === 'D' || e === 'w' || e === 'W' || e === 'S') {
      this.#pos += 2;
      return { text: '\\' + e };
    }
    if (e === 's') {
      this.#pos += 2;
      return { text: RE2_SPACE };
    }
    if (e === 'p' || e === 'P') return { text: this.#unicodeClass() };
    const ch = this.#codeEscape();
    if (ch !== undefined) return { ch };
    if (/[A-Za-z0-9]/.test(e)) fail(`invalid or unsupported escape sequence \\${e} in character class`);
    this.#pos += 2;
    return { ch: e };
  }
}

/** Extra class text that adds the other case of every ASCII letter or letter range listed. */
function caseFoldAdditions(items: ReadonlyArray<[string, string]>): string {
  let extra = '';
  for (const [lo, hi] of items) {
    if (lo === hi) {
      if (isLetter(lo)) extra += otherCase(lo);
      continue;
    }
    const a = lo.charCodeAt(0);
    const b = hi.charCodeAt(0);
    // Intersect [a,b] with a-z and A-Z, and add the swapped-case part of each.
    const spans: Array<[number, number, number]> = [
      [97, 122, -32],
      [65, 90, 32],
    ];
    for (const [from, to, shift] of spans) {
      const s = Math.max(a, from);
      const e = Math.min(b, to);
      if (s <= e) extra += `${String.fromCharCode(s + shift)}-${String.fromCharCode(e + shift)}`;
    }
  }
  return extra;
}

/** Checks and translates an RE2 pattern. Never throws. */
export function translateRe2(pattern: string): Re2Result {
  let translated: Re2Translation;
  try {
    translated = new Translator(pattern).run();
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
