/**
 * Request hashing for consistent-hash clusters (Envoy route hash_policy as Istio builds it from a
 * DestinationRule's consistentHash). A request without the key hashes to nothing and is balanced
 * at random, as in Envoy; a missing cookie with a TTL is generated and set on the response.
 */
import { randomBytes } from 'node:crypto';
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

export function cookieValue(headers: HeaderMap, name: string): string | undefined {
  const names = headers.names;
  for (let i = 0; i < names.length; i++) {
    if (names[i] !== 'cookie') continue;
    for (const part of headers.values[i]!.split(';')) {
      const eq = part.indexOf('=');
      if (eq === -1) continue;
      if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
    }
  }
  return undefined;
}

export function hashRequest(policy: HashPolicy, stream: DownstreamStream, query: string): RequestHash {
  switch (policy.kind) {
    case 'header': {
      const v = stream.headers.getJoined(policy.name.toLowerCase());
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
      const value = randomBytes(8).toString('hex');
      const attrs = [`${policy.name}=${value}`];
      if (policy.path !== undefined) attrs.push(`Path=${policy.path}`);
      if (policy.ttlMs > 0) attrs.push(`Max-Age=${Math.floor(policy.ttlMs / 1000)}`);
      attrs.push('HttpOnly');
      return { hash: hash32(value), setCookie: attrs.join('; ') };
    }
  }
}
