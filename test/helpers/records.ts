/** Fixtures for request records (StreamInfo) built without a proxy: the connection and the request. */
import type { HeaderMap } from '../../src/http/headers.js';
import type { DownstreamConnectionInfo, RequestFacts } from '../../src/http/stream.js';

/**
 * A plain-text downstream connection from 10.0.0.9:41234 to 10.96.0.10:8080 (its original
 * destination), no peer, no SNI, `server: envoy`; `overrides` replace any of these.
 */
export function connection(overrides: Partial<DownstreamConnectionInfo> = {}): DownstreamConnectionInfo {
  return {
    remoteAddress: '10.0.0.9',
    remotePort: 41234,
    localAddress: '10.96.0.10',
    localPort: 8080,
    localAddressRestored: true,
    peer: null,
    tls: false,
    requestedServerName: undefined,
    serverHeader: 'envoy',
    ...overrides,
  };
}

/** An HTTP/1.1 GET over http for `path` at `authority`, with the given headers. */
export function getRequest(path: string, authority: string, headers: HeaderMap): RequestFacts {
  return { method: 'GET', path, authority, scheme: 'http', httpVersion: '1.1', headers };
}
