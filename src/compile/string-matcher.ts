/**
 * Compiled Envoy StringMatchers: one closure per matcher, built once per snapshot.
 *
 * Values from the wire are byte strings (HTTP/1 heads are decoded as latin1, one char per byte);
 * values from config are Unicode. Envoy compares bytes, so a configured string is compared in
 * its UTF-8 byte form, `ignoreCase` folds ASCII letters only (as Envoy's absl::AsciiStrToLower
 * does), and a regex — RE2 reads its input as UTF-8 — sees non-ASCII input decoded from UTF-8.
 */
import { compileFullMatch } from '../core/re2.js';
import type { StringMatch } from '../model/route.js';

export type StringPredicate = (value: string) => boolean;

const NON_ASCII = /[^\x00-\x7f]/;

export function isAscii(s: string): boolean {
  return !NON_ASCII.test(s);
}

/** The UTF-8 bytes of `s` as a byte string (identity for ASCII). */
export function utf8ByteString(s: string): string {
  return NON_ASCII.test(s) ? Buffer.from(s, 'utf8').toString('latin1') : s;
}

/** Lowercases ASCII letters only; other bytes are left alone. */
export function asciiLowerCase(s: string): string {
  return NON_ASCII.test(s) ? s.replace(/[A-Z]+/g, (m) => m.toLowerCase()) : s.toLowerCase();
}

/** The text RE2 would see for a byte string: ASCII as is, anything else decoded as UTF-8. */
function asRegexInput(s: string): string {
  return NON_ASCII.test(s) ? Buffer.from(s, 'latin1').toString('utf8') : s;
}

export function compileStringMatch(m: StringMatch): StringPredicate {
  if (m.kind === 'regex') {
    const re = compileFullMatch(m.value);
    return (s) => re.test(asRegexInput(s));
  }
  const ignoreCase = m.ignoreCase === true;
  const bytes = utf8ByteString(m.value);
  const v = ignoreCase ? asciiLowerCase(bytes) : bytes;
  switch (m.kind) {
    case 'exact':
      return ignoreCase ? (s) => asciiLowerCase(s) === v : (s) => s === v;
    case 'prefix':
      return ignoreCase ? (s) => asciiLowerCase(s).startsWith(v) : (s) => s.startsWith(v);
    case 'suffix':
      return ignoreCase ? (s) => asciiLowerCase(s).endsWith(v) : (s) => s.endsWith(v);
    case 'contains':
      return ignoreCase ? (s) => asciiLowerCase(s).includes(v) : (s) => s.includes(v);
  }
}
