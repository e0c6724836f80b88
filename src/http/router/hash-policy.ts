/**
 * Request hashing for consistent-hash clusters (Envoy route hash_policy as Istio builds it from a
 * DestinationRule's consistentHash). A request without the key hashes to nothing and is balanced
 * at random, as in Envoy; a missing cookie with a TTL is generated and set on the response, in
 * Envoy's format (`name="value"; Max-Age=<s>; Path=<p>; HttpOnly`).
 */
import type { HashPolicy } from '../../model/cluster.js';
import { hash32 } from '../../upstream/hash.js';
import type { HeaderMap } from '../headers.js';
import type { DownstreamStream } from '../stream.js';
import { queryParam } from '../../compile/route-matcher.js';

export interface RequestHash {
  readonly hash: number | undefined;
  /** A Set-Cookie value to add to the response (generated session cookie), if any. */
  readonly setCookie?: string;
}

/**
 * The value of cookie `name` (Envoy's parseCookieValue): the first match across Cookie headers,
 * with surrounding double quotes removed (RFC 6265 §4.1.1).
 */
export function cookieValue(headers: HeaderMap, name: string): string | undefined {
  const names = headers.names;
  for (let i = 0; i < names.length; i++) {
    if (names[i] !== 'cookie') continue;
    for (const part of headers.values[i]!.split(';')) {
      const eq = part.indexOf('=');
      if (eq === -1) continue;
      if (part.slice(0, eq).trim() !== name) continue;
      const v = part.slice(eq + 1).trim();
      return v.length >= 2 && v.startsWith('"') && v.endsWith('"') ? v.slice(1, -1) : v;
    }
  }
  return undefined;
}

/**
 * The value of a generated session cookie. Like Envoy, it is derived from the downstream
 * connection's addresses, so requests racing on one connection all get the same cookie.
 */
function generatedCookieValue(stream: DownstreamStream): string {
  const i = stream.info;
  const id = `${i.downstreamRemoteAddress}:${i.downstreamRemotePort}${i.downstreamLocalAddress}:${i.downstreamLocalPort}`;
  return hash32(id, 0x9e3779b9).toString(16).padStart(8, '0') + hash32(id).toString(16).padStart(8, '0');
}

/**
 * The hash key of a header: its value, or for a repeated header all values sorted, so the order
 * the lines arrive in does not change the endpoint (as Envoy's header hash policy).
 */
function headerKey(headers: HeaderMap, name: string): string | undefined {
  if (headers.count(name) <= 1) return headers.get(name);
  const values: string[] = [];
  for (let i = 0; i < headers.names.length; i++) if (headers.names[i] === name) values.push(headers.values[i]!);
  return values.sort().join('\n');
}

export function hashRequest(policy: HashPolicy, stream: DownstreamStream, query: string): RequestHash {
  switch (policy.kind) {
    case 'header': {
      const v = headerKey(stream.headers, policy.name.toLowerCase());
      return { hash: v === undefined ? undefined : hash32(v) };
    }
    case 'queryParam': {
      const v = queryParam(query, policy.name);
      return { hash: v === undefined ? undefined : hash32(v) };
    }
    case 'sourceIp': {
      const ip = stream.info.downstreamRemoteAddress;
      return { hash: ip === '' ? undefined : hash32(ip) };
    }
    case 'cookie': {
      const v = cookieValue(stream.headers, policy.name);
      if (v !== undefined) return { hash: hash32(v) };
      if (policy.ttlMs === undefined) return { hash: undefined };
      const value = generatedCookieValue(stream);
      let setCookie = `${policy.name}="${value}"`;
      if (policy.ttlMs > 0) setCookie += `; Max-Age=${Math.floor(policy.ttlMs / 1000)}`;
      if (policy.path !== undefined && policy.path !== '') setCookie += `; Path=${policy.path}`;
      setCookie += '; HttpOnly';
      return { hash: hash32(value), setCookie };
    }
  }
}
