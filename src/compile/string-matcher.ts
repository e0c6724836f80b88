/** Compiled Envoy StringMatchers: one closure per matcher, built once per snapshot. */
import { compileFullMatch } from '../core/re2.js';
import type { StringMatch } from '../model/route.js';

export type StringPredicate = (value: string) => boolean;

export function compileStringMatch(m: StringMatch): StringPredicate {
  if (m.kind === 'regex') {
    const re = compileFullMatch(m.value);
    return (s) => re.test(s);
  }
  const ignoreCase = m.ignoreCase === true;
  const v = ignoreCase ? m.value.toLowerCase() : m.value;
  switch (m.kind) {
    case 'exact':
      return ignoreCase ? (s) => s.toLowerCase() === v : (s) => s === v;
    case 'prefix':
      return ignoreCase ? (s) => s.toLowerCase().startsWith(v) : (s) => s.startsWith(v);
    case 'suffix':
      return ignoreCase ? (s) => s.toLowerCase().endsWith(v) : (s) => s.endsWith(v);
    case 'contains':
      return ignoreCase ? (s) => s.toLowerCase().includes(v) : (s) => s.includes(v);
  }
}
