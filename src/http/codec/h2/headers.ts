/**
 * HeaderMap ↔ Node's HTTP/2 header objects, for requests, responses and trailers alike.
 * Connection-specific headers (RFC 9113 §8.2.2) are dropped, `te` is kept only as `trailers`
 * on requests, and repeats of the headers Node allows once are folded (list headers joined,
 * others keeping the first value), so a message HTTP/1.1 carried is never refused by the
 * HTTP/2 encoder.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';
import { HeaderMap } from '../../headers.js';

const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings', 'host']);

/** Headers Node's http2 accepts once per message; those that are lists are joined. */
const SINGLE_VALUE = new Set([
  'access-control-allow-credentials', 'access-control-max-age', 'access-control-request-method', 'age', 'authorization',
  'content-encoding', 'content-language', 'content-length', 'content-location', 'content-md5', 'content-range', 'content-type',
  'date', 'dnt', 'etag', 'expires', 'from', 'if-match', 'if-modified-since', 'if-none-match', 'if-range', 'if-unmodified-since',
  'last-modified', 'location', 'max-forwards', 'proxy-authorization', 'range', 'referer', 'retry-after', 'tk',
  'upgrade-insecure-requests', 'user-agent', 'x-content-type-options',
]);
const LISTS = new Set(['if-match', 'if-none-match', 'content-encoding', 'content-language']);

/**
 * `headers` as an HTTP/2 header object after `pseudo` (`:status`, or the request's pseudo-headers).
 * `request` keeps `te: trailers`; pseudo-headers inside `headers` are never copied.
 */
export function toH2Headers(headers: HeaderMap, pseudo: OutgoingHttpHeaders, request = false): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = { ...pseudo };
  const { names, values } = headers;
  for (let i = 0; i < names.length; i++) {
    const name = names[i]!.toLowerCase();
    const value = values[i]!;
    if (name.startsWith(':') || CONNECTION_SPECIFIC.has(name)) continue;
    if (name === 'te' && !(request && value.toLowerCase() === 'trailers')) continue;
    const existing = out[name];
    if (existing === undefined) out[name] = value;
    else if (LISTS.has(name)) out[name] = `${String(existing)}, ${value}`;
    else if (SINGLE_VALUE.has(name)) continue;
    else out[name] = Array.isArray(existing) ? [...existing, value] : [String(existing), value];
  }
  return out;
}

/** A received HTTP/2 header object as a HeaderMap, without its pseudo-headers. */
export function fromH2Headers(headers: IncomingHttpHeaders): HeaderMap {
  const map = new HeaderMap();
  for (const [name, value] of Object.entries(headers)) {
    if (name.startsWith(':') || value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) map.append(name, v);
    else map.append(name, String(value));
  }
  return map;
}
