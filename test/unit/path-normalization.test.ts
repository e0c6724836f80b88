/** Istio's BASE path normalization (Envoy normalize_path): RFC 3986 dot segments and unreserved escapes. */
import { describe, expect, it } from 'vitest';
import { normalizePath } from '../../src/http/path-normalization.js';

describe('normalizePath', () => {
  it.each([
    ['/a/b', '/a/b'],
    ['/a/./b', '/a/b'],
    ['/a/../b', '/b'],
    ['/allowed/../secret', '/secret'],
    ['/a/b/..', '/a/'],
    ['/a/b/.', '/a/b/'],
    ['/../../x', '/x'],
    ['/a/%2e%2e/b', '/b'],
    ['/%61dmin', '/admin'],
    ['/a%2Fb', '/a%2Fb'],
    ['/a%2fb', '/a%2Fb'],
    ['/a//b', '/a//b'],
    ['/a/../b?x=/../y', '/b?x=/../y'],
    ['/?q=%61', '/?q=%61'],
    ['/.hidden/..x', '/.hidden/..x'],
    ['/admin#x', '/admin'],
    ['/public#/../admin', '/public'],
    ['/a?b=1#frag', '/a?b=1'],
  ])('%s → %s', (input, expected) => {
    expect(normalizePath(input)).toBe(expected);
  });

  it('refuses a path that is not absolute', () => {
    expect(normalizePath('*')).toBeUndefined();
    expect(normalizePath('a/b')).toBeUndefined();
  });
});
