/**
 * Compiled route matches (Envoy RouteMatch): path, headers and query parameters, ANDed. Header
 * semantics follow Envoy's HeaderUtility::matchHeaders, including invert_match and
 * treat_missing_header_as_empty for absent headers.
 */
import type { HeaderMatch, QueryParamMatch, RouteMatch } from '../model/route.js';
import { pseudoHeaderValue, type RouteRequest } from './request-view.js';
import { compileStringMatch, type StringPredicate } from './string-matcher.js';

export type RoutePredicate = (req: RouteRequest) => boolean;

const always: RoutePredicate = () => true;

function headerValue(req: RouteRequest, name: string): string | undefined {
  return pseudoHeaderValue(req, name) ?? req.headers.getJoined(name);
}

function compileHeaderMatch(h: HeaderMatch): RoutePredicate {
  const name = h.name.toLowerCase();
  const test: StringPredicate | undefined = h.match === undefined ? undefined : compileStringMatch(h.match);
  const { invert, treatMissingAsEmpty } = h;
  return (req) => {
    let value = headerValue(req, name);
    if (value === undefined) {
      if (!treatMissingAsEmpty) return test === undefined ? invert : false;
      value = '';
    }
    const matched = test === undefined ? true : test(value);
    return matched !== invert;
  };
}

/** First value of `name` in a raw query string, '' for `?name`, undefined when absent. */
export function queryParam(query: string, name: string): string | undefined {
  if (query === '') return undefined;
  let start = 0;
  while (start <= query.length) {
    let end = query.indexOf('&', start);
    if (end === -1) end = query.length;
    const eq = query.indexOf('=', start);
    const keyEnd = eq === -1 || eq > end ? end : eq;
    if (keyEnd - start === name.length && query.startsWith(name, start)) {
      return keyEnd === end ? '' : query.slice(keyEnd + 1, end);
    }
    start = end + 1;
  }
  return undefined;
}

function compileQueryMatch(q: QueryParamMatch): RoutePredicate {
  const test = q.match === undefined ? undefined : compileStringMatch(q.match);
  const name = q.name;
  return (req) => {
    const v = queryParam(req.query, name);
    if (v === undefined) return false;
    return test === undefined ? true : test(v);
  };
}

export function compileRouteMatch(m: RouteMatch): RoutePredicate {
  const parts: RoutePredicate[] = [];
  if (m.path !== undefined && !(m.path.kind === 'prefix' && m.path.value === '/' )) {
    const test = compileStringMatch(m.path);
    parts.push((req) => test(req.pathOnly));
  }
  for (const h of m.headers) parts.push(compileHeaderMatch(h));
  for (const q of m.queryParams) parts.push(compileQueryMatch(q));
  switch (parts.length) {
    case 0:
      return always;
    case 1:
      return parts[0]!;
    case 2: {
      const [a, b] = parts as [RoutePredicate, RoutePredicate];
      return (req) => a(req) && b(req);
    }
    default:
      return (req) => {
        for (let i = 0; i < parts.length; i++) if (!parts[i]!(req)) return false;
        return true;
      };
  }
}
