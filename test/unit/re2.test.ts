/**
 * RE2 → JavaScript: every accepted pattern must match exactly what RE2 (Envoy's safe_regex, full
 * match) would, and every pattern RE2 refuses must be refused with RE2's reason.
 */
import { describe, expect, it } from 'vitest';
import { compileFullMatch, compileSearch, enableLinearRegexFallback, translateRe2 } from '../../src/core/re2.js';

/** Full-match table: pattern → inputs that match and inputs that do not. */
function expectMatches(pattern: string, yes: readonly string[], no: readonly string[]): void {
  const re = compileFullMatch(pattern);
  for (const s of yes) expect(re.test(s), `${pattern} should match ${JSON.stringify(s)}`).toBe(true);
  for (const s of no) expect(re.test(s), `${pattern} should not match ${JSON.stringify(s)}`).toBe(false);
}

function errorOf(pattern: string): string {
  const t = translateRe2(pattern);
  if (!('error' in t)) throw new Error(`expected ${JSON.stringify(pattern)} to be rejected, got /${t.source}/${t.flags}`);
  return t.error;
}

describe('translateRe2: accepted RE2 syntax', () => {
  it('matches the whole input, not a substring (safe_regex semantics)', () => {
    expectMatches('/api/v[0-9]+', ['/api/v1', '/api/v22'], ['/api/v1/users', 'x/api/v1', '/api/v']);
    expectMatches('a|b', ['a', 'b'], ['ab', '']);
    expectMatches('', [''], ['a']);
  });

  it('keeps capture groups countable for rewrite substitutions', () => {
    expect(translateRe2('^/(\\w+)/(\\d+)$')).toMatchObject({ groups: 2 });
    expect(translateRe2('(?:a)(?P<id>b)')).toMatchObject({ groups: 1 });
    expect(translateRe2('\\(not a group\\)')).toMatchObject({ groups: 0 });
  });

  it('(?i) applies to the rest of the pattern, also across alternation', () => {
    expectMatches('(?i)/Api', ['/api', '/API', '/aPi'], ['/ap']);
    expectMatches('a(?i)b', ['ab', 'aB'], ['Ab', 'AB']);
    expectMatches('x(?i)a|b', ['xa', 'xA', 'b', 'B'], ['Xa']);
  });

  it('scoped (?i:…) ends with its group, and (?-i) turns folding off', () => {
    expectMatches('(?i:a)b', ['ab', 'Ab'], ['aB', 'AB']);
    expectMatches('(?i)a(?-i)b', ['ab', 'Ab'], ['aB']);
    expectMatches('(a(?i)b)c', ['abc', 'aBc'], ['abC', 'Abc']);
  });

  it('(?i) folds classes, ranges and escaped letters', () => {
    expectMatches('(?i)[a-c]+', ['abc', 'ABC', 'aBc'], ['abd']);
    expectMatches('(?i)[^x]', ['a', 'A'], ['x', 'X']);
    expectMatches('(?i)\\x41\\101', ['aa', 'AA'], ['ab']);
    expectMatches('(?i)\\Qa.b\\E', ['a.b', 'A.B'], ['axb']);
    expectMatches('(?i)[[:upper:]]+', ['ABC', 'abc'], ['123']);
  });

  it('(?i) uses Unicode simple case folding like RE2, not just ASCII', () => {
    expectMatches('(?i)é', ['é', 'É'], ['e']);
    expectMatches('(?i)σ', ['σ', 'Σ', 'ς'], ['s']);
    // RE2 folds k with the Kelvin sign and s with the long s; i is not folded with dotless ı.
    expectMatches('(?i)k', ['k', 'K', '\u212a'], []);
    expectMatches('(?i)s', ['s', 'S', '\u017f'], []);
    expectMatches('(?i)i', ['i', 'I'], ['\u0131', '\u0130']);
    expectMatches('(?i)[à-ÿ]+', ['àÿ', 'ÀŸ'], ['a']);
  });

  it('(?s) lets . match a newline; without it . does not', () => {
    expectMatches('a.b', ['a-b', 'a\rb'], ['a\nb']);
    expectMatches('(?s)a.b', ['a\nb', 'a-b'], []);
    expectMatches('(?s:.)\\.', ['\n.'], []);
  });

  it('(?m) makes ^ and $ match at line boundaries (\\n only); without it they anchor the text', () => {
    const multi = compileSearch('(?m)^b$');
    expect('a\nb\nc'.match(multi)).toEqual(['b']);
    expect('a\rb\rc'.match(multi)).toBeNull();
    const single = compileSearch('^b$');
    expect('a\nb\nc'.match(single)).toBeNull();
    expectMatches('(?m)a$\\n^b', ['a\nb'], []);
  });

  it('\\A and \\z anchor the text even in multi-line mode', () => {
    expect('x\nab'.match(compileSearch('(?m)\\Aab'))).toBeNull();
    expect('ab'.match(compileSearch('(?m)\\Aab\\z'))).toEqual(['ab']);
    expect('ab\nx'.match(compileSearch('(?m)ab\\z'))).toBeNull();
  });

  it('named groups (?P<name>…) and (?<name>…)', () => {
    const re = compileFullMatch('/users/(?P<id>[0-9]+)/(?<tab>\\w+)');
    expect(re.exec('/users/42/posts')?.groups).toEqual({ id: '42', tab: 'posts' });
  });

  it('\\Q…\\E quotes metacharacters, to the end when \\E is missing', () => {
    expectMatches('\\Q(a+)*[b]\\E', ['(a+)*[b]'], ['aa', '(a)']);
    expectMatches('x\\Q.*', ['x.*'], ['xyz']);
    expectMatches('\\Qab\\E+', ['ab', 'abbb'], ['abab']);
  });

  it('POSIX classes, negated ones included', () => {
    expectMatches('[[:alpha:]]+', ['abcXYZ'], ['ab1', '']);
    expectMatches('[[:digit:][:punct:]]+', ['1.2-3!'], ['1a']);
    expectMatches('[[:space:]]', ['\v', ' ', '\t'], ['a']);
    expectMatches('[[:xdigit:]]{4}', ['00fF'], ['00fg']);
    expectMatches('[[:word:]]+', ['a_Z9'], ['a-b']);
    expectMatches('[[:^alpha:]]+', ['123-\n', 'é'], ['a', '1a']);
    expectMatches('[^[:^digit:]]', ['5'], ['a']);
    expectMatches('(?i)[[:^upper:]]', ['1', '-'], ['a', 'A', '\u212a']);
  });

  it('Unicode classes \\pL, \\p{Greek}, \\PL, \\p{^Greek}', () => {
    expectMatches('\\pL+', ['héllo', 'Ωμέγα'], ['a1']);
    expectMatches('\\p{Greek}+', ['αβγ'], ['abc']);
    expectMatches('\\PL', ['1', '-'], ['a', 'é']);
    expectMatches('\\p{^Greek}', ['a'], ['α']);
    expectMatches('[\\p{Lu}\\d]+', ['AΩ9'], ['a']);
    expect(translateRe2('\\pN')).toMatchObject({ flags: 'u' });
  });

  it('octal, \\xHH and \\x{…} escapes', () => {
    expectMatches('\\101\\x42\\x{43}', ['ABC'], ['abc']);
    expectMatches('\\0', ['\0'], ['0']);
    expectMatches('\\x{1F600}', ['😀'], ['?']);
    expectMatches('\\x{0000041}', ['A'], []);
    expectMatches('[\\x{41}-\\x{43}]+', ['ABCCA'], ['D']);
  });

  it('\\s is RE2\'s [\\t\\n\\f\\r ], not JavaScript\'s Unicode whitespace', () => {
    expectMatches('\\s', ['\t', '\n', '\f', '\r', ' '], ['\v', '\u00a0', '\u2028', 'a']);
    expectMatches('[\\s]', ['\t', ' '], ['\v', '\u00a0']);
    expectMatches('\\S', ['\v', '\u00a0', 'a'], [' ', '\n']);
    expectMatches('[\\S]', ['\v', '\u00a0', 'a'], [' ', '\n']);
  });

  it('\\d and \\w are ASCII; \\b is an ASCII word boundary', () => {
    expectMatches('\\d+', ['0123456789'], ['١']);
    expectMatches('\\w+', ['a_Z9'], ['é']);
    expect('foo bar'.match(compileSearch('\\bbar\\b'))).toEqual(['bar']);
  });

  it('. does not match \\n but matches \\r; negated classes match \\n', () => {
    expectMatches('.', ['\r', 'x'], ['\n']);
    expectMatches('[^a]', ['\n', 'b'], ['a']);
  });

  it('repetition counts up to 1000, braces that are not counts are literals', () => {
    expectMatches('a{2,3}', ['aa', 'aaa'], ['a', 'aaaa']);
    expectMatches('a{2,}', ['aa', 'aaaaa'], ['a']);
    expectMatches('a{1000}', ['a'.repeat(1000)], ['a'.repeat(999)]);
    expectMatches('x{,3}', ['x{,3}'], ['xxx']);
    expectMatches('{', ['{'], []);
    expectMatches('a*?b', ['aab'], []);
  });

  it('supplementary characters are one character, as in RE2', () => {
    expectMatches('😀+', ['😀😀'], ['😀\ude00']);
    expectMatches('[😀x]', ['😀', 'x'], ['\ud83d']);
  });

  it('escaped punctuation stands for itself', () => {
    expectMatches('\\.\\*\\-\\/\\_\\ ', ['.*-/_ '], []);
    expectMatches('[\\]\\-\\\\]+', [']-\\'], []);
    expectMatches('[]a]', [']', 'a'], ['b']);
  });
});

describe('translateRe2: rejected with RE2\'s reason', () => {
  it.each([
    ['(?=a)b', 'lookahead and lookbehind assertions are not supported by RE2'],
    ['a(?!b)', 'lookahead and lookbehind assertions are not supported by RE2'],
    ['(?<=a)b', 'lookahead and lookbehind assertions are not supported by RE2'],
    ['(?<!a)b', 'lookahead and lookbehind assertions are not supported by RE2'],
  ])('lookaround %s', (pattern, reason) => {
    expect(errorOf(pattern)).toBe(reason);
  });

  it('backreferences \\1 … \\9 and (?P=name)', () => {
    expect(errorOf('(a)\\1')).toBe('backreferences are not supported by RE2: \\1');
    expect(errorOf('(a)\\9')).toBe('backreferences are not supported by RE2: \\9');
    expect(errorOf('(?P<x>a)(?P=x)')).toBe('backreferences are not supported by RE2');
  });

  it('atomic groups and possessive quantifiers', () => {
    expect(errorOf('(?>a+)b')).toBe('atomic groups are not supported by RE2');
    expect(errorOf('a++')).toBe('bad repetition operator: ++ (possessive and repeated quantifiers are not RE2)');
    expect(errorOf('a*+')).toBe('bad repetition operator: *+ (possessive and repeated quantifiers are not RE2)');
    expect(errorOf('a?+')).toBe('bad repetition operator: ?+ (possessive and repeated quantifiers are not RE2)');
    expect(errorOf('a**')).toBe('bad repetition operator: ** (possessive and repeated quantifiers are not RE2)');
    expect(errorOf('a{2}{3}')).toBe('bad repetition operator: {2}{');
  });

  it('repeat counts above 1000, or max below min', () => {
    expect(errorOf('a{1001}')).toBe('bad repetition operator: {1001} (counts above 1000 are not allowed)');
    expect(errorOf('a{1,1001}')).toBe('bad repetition operator: {1,1001} (counts above 1000 are not allowed)');
    expect(errorOf('a{3,2}')).toBe('bad repetition operator: {3,2} (max is less than min)');
  });

  it('repetition with nothing to repeat', () => {
    expect(errorOf('*a')).toBe('missing argument to repetition operator: *');
    expect(errorOf('a|+')).toBe('missing argument to repetition operator: +');
    expect(errorOf('({2})')).toBe('missing argument to repetition operator: {2}');
  });

  it('unbalanced parentheses and brackets', () => {
    expect(errorOf('(a')).toBe('missing closing ): unbalanced parentheses');
    expect(errorOf('a)')).toBe('unexpected ): missing opening (');
    expect(errorOf('((a)')).toBe('missing closing ): unbalanced parentheses');
    expect(errorOf('[a')).toBe('missing closing ]: unterminated character class');
  });

  it('escapes RE2 does not know', () => {
    expect(errorOf('\\k<x>')).toBe('invalid or unsupported escape sequence \\k');
    expect(errorOf('\\Z')).toBe('invalid or unsupported escape sequence \\Z');
    expect(errorOf('\\e')).toBe('invalid or unsupported escape sequence \\e');
    expect(errorOf('\\é')).toBe('invalid or unsupported escape sequence \\é');
    expect(errorOf('[\\b]')).toBe('invalid or unsupported escape sequence \\b in character class');
    expect(errorOf('\\x4')).toBe('invalid escape sequence \\x: expected two hex digits or \\x{…}');
    expect(errorOf('\\x{110000}')).toBe('invalid escape sequence: code point above U+10FFFF');
    expect(errorOf('abc\\')).toBe('trailing backslash at end of expression');
  });

  it('bad classes', () => {
    expect(errorOf('[z-a]')).toBe('invalid character class range: z-a');
    expect(errorOf('[[:alfa:]]')).toBe('invalid character class range: unknown POSIX class [:alfa:]');
    expect(errorOf('\\p{Klingon}')).toBe('unknown Unicode class name "Klingon"');
    expect(errorOf('[a-\\d]')).toBe('invalid character class range: a class escape cannot end a range');
  });

  it('Perl syntax RE2 does not support', () => {
    expect(errorOf('(?#comment)a')).toBe('comments are not supported by RE2');
    expect(errorOf('(?U)a+')).toBe('the ungreedy flag U is not supported');
    expect(errorOf('(?i-)a')).toBe('invalid flag syntax: missing flags after -');
    expect(errorOf('(?x)a')).toBe('invalid or unsupported group syntax "(?x)a"');
  });

  it('never throws, and compileFullMatch throws with the reason', () => {
    for (const p of ['(', '\\', '[', '(?', '(?P<', 'a{1001', '\\p{', '\\x{']) expect(() => translateRe2(p)).not.toThrow();
    expect(() => compileFullMatch('(?=x)')).toThrow('invalid RE2 regex "(?=x)": lookahead and lookbehind assertions are not supported by RE2');
  });
});

describe('linear-time fallback', () => {
  it('a catastrophic pattern on a long non-matching input completes with the right answer', () => {
    enableLinearRegexFallback();
    enableLinearRegexFallback(); // idempotent
    // Bounded input: without the fallback each of these would backtrack about 2^28 times.
    const input = 'a'.repeat(28) + '!';
    expect(compileFullMatch('(a+)+').test(input)).toBe(false);
    expect(compileFullMatch('(a|aa)+').test(input)).toBe(false);
    expect(compileFullMatch('(a*)*b').test(input)).toBe(false);
    expect(compileSearch('(a+)+$').test(input)).toBe(false);
    expect(compileFullMatch('(a+)+!').test(input)).toBe(true);
  });
});
