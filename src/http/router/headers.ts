/**
 * What the router does to headers on the way through, as Envoy's HTTP connection manager and
 * router do for a sidecar: hop-by-hop headers removed, forwarding headers and x-request-id
 * added on requests; x-envoy-upstream-service-time and `server: envoy` on responses. Each
 * direction is one pass over the header list.
 */
import { randomUUID } from 'node:crypto';
import type { HeaderContext, HeaderMutator } from '../../compile/header-mutation.js';
import { HeaderMap } from '../headers.js';
import type { DownstreamStream, StreamInfo } from '../stream.js';

export const PEER_METADATA = 'x-envoy-peer-metadata';
export const PEER_METADATA_ID = 'x-envoy-peer-metadata-id';

/**
 * Header names a `Connection` header lists (RFC 9110 §7.6.1), other than close/keep-alive;
 * null in the usual case of none.
 */
function connectionListed(headers: HeaderMap): Set<string> | null {
  const value = headers.get('connection');
  if (value === undefined) return null;
  const lower = value.toLowerCase();
  // The usual values name no other header: skip the split.
  if (lower === 'close' || lower === 'keep-alive') return null;
  let listed: Set<string> | null = null;
  for (const token of lower.split(',')) {
    const name = token.trim();
    if (name !== '' && name !== 'close' && name !== 'keep-alive') (listed ??= new Set()).add(name);
  }
  return listed;
}

/** Truncates the parallel arrays to `length` if they are longer. */
function truncate(headers: HeaderMap, length: number): void {
  if (length < headers.names.length) {
    headers.names.length = length;
    headers.values.length = length;
  }
}

/** Prepares request headers for the first upstream attempt. */
export function prepareRequestHeaders(stream: DownstreamStream): void {
  const h = stream.headers;
  const { names, values } = h;
  const listed = connectionListed(h);
  const remote = stream.info.downstreamRemoteAddress;
  let sawProto = false;
  let sawXff = false;
  let sawRequestId = false;
  let w = 0;
  for (let r = 0; r < names.length; r++) {
    const name = names[r]!;
    let value = values[r]!;
    switch (name) {
      case 'connection':
      case 'keep-alive':
      case 'proxy-connection':
      case 'transfer-encoding':
      case 'upgrade':
      case 'x-envoy-attempt-count':
      // Only this proxy speaks for its workload: metadata a client sent never goes upstream
      // (an attempt to an Istio mTLS host carries this proxy's own).
      case PEER_METADATA:
      case PEER_METADATA_ID:
        continue;
      case 'te':
        if (value.toLowerCase() !== 'trailers') continue;
        break;
      case 'x-forwarded-proto':
        sawProto = true;
        break;
      case 'x-forwarded-for':
        if (sawXff) break;
        sawXff = true;
        if (remote !== '') value = `${value}, ${remote}`;
        break;
      case 'x-request-id':
        sawRequestId = true;
        break;
    }
    if (listed !== null && listed.has(name)) continue;
    names[w] = name;
    values[w] = value;
    w++;
  }
  truncate(h, w);
  if (!sawProto) h.append('x-forwarded-proto', stream.scheme);
  if (!sawXff && remote !== '') h.append('x-forwarded-for', remote);
  if (!sawRequestId) h.append('x-request-id', randomUUID());
  h.append('x-envoy-attempt-count', '1');
  // An accepted upgrade (WebSocket) keeps asking for it upstream.
  if (stream.upgrade !== null) appendUpgrade(h, stream.upgrade);
  // A body of unknown length goes upstream chunked (the downstream framing header was hop-by-hop).
  if (stream.hasRequestBody && !h.has('content-length')) h.append('transfer-encoding', 'chunked');
}

/** `connection: upgrade` and `upgrade: <protocol>`, as an upgrade exchange carries them on each hop. */
export function appendUpgrade(headers: HeaderMap, protocol: string): void {
  headers.append('connection', 'upgrade');
  headers.append('upgrade', protocol);
}

/**
 * This workload's Istio metadata exchange headers (x-envoy-peer-metadata-id and
 * x-envoy-peer-metadata), sent to mesh peers: on requests to Istio mTLS upstreams and on
 * inbound responses.
 */
export interface PeerMetadataHeaders {
  readonly id: string;
  readonly value: string;
  /** Both as HTTP/1.1 header lines, serialized once. */
  readonly h1Lines: string;
}

export function peerMetadataHeaders(id: string, value: string): PeerMetadataHeaders {
  return { id, value, h1Lines: `${PEER_METADATA_ID}: ${id}\r\n${PEER_METADATA}: ${value}\r\n` };
}


export function appendPeerMetadata(headers: HeaderMap, own: PeerMetadataHeaders): void {
  headers.append(PEER_METADATA_ID, own.id);
  headers.append(PEER_METADATA, own.value);
}

/**
 * Rewrites response headers received from upstream before they go downstream. The upstream
 * peer's metadata exchange headers are taken out into the request's record.
 */
export function prepareResponseHeaders(headers: HeaderMap, upstreamServiceTimeMs: number, info: StreamInfo): void {
  info.responseCodeDetails = 'via_upstream';
  const { names, values } = headers;
  const listed = connectionListed(headers);
  let w = 0;
  for (let r = 0; r < names.length; r++) {
    const name = names[r]!;
    switch (name) {
      case PEER_METADATA:
        info.upstreamPeerMetadata = values[r]!;
        continue;
      case PEER_METADATA_ID:
        continue;
      case 'connection':
      case 'keep-alive':
      case 'proxy-connection':
      case 'transfer-encoding':
      case 'upgrade':
      case 'server':
      case 'x-envoy-upstream-service-time':
        continue;
    }
    if (listed !== null && listed.has(name)) continue;
    names[w] = name;
    values[w] = values[r]!;
    w++;
  }
  truncate(headers, w);
  headers.append('x-envoy-upstream-service-time', String(Math.round(upstreamServiceTimeMs)));
  headers.append('server', info.connection.serverHeader);
}

/**
 * Response header operations applied to an empty header list, in order: the extra headers of a
 * local reply made after a route (and, for weighted routes, a destination) was chosen.
 */
export function mutatedHeaders(context: HeaderContext, ...mutators: Array<HeaderMutator | null>): Array<[string, string]> {
  if (mutators.every((m) => m === null)) return [];
  const headers = new HeaderMap();
  for (const m of mutators) m?.(headers, context);
  return headers.names.map((n, i) => [n, headers.values[i]!]);
}
