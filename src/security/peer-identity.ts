/**
 * Secure naming and Istio's mTLS ALPN values: which server identities a client accepts, and
 * what the two sides announce so the server knows what is inside the tunnel.
 */
import type { PeerCertificate } from 'node:tls';
import { spiffeUriOf } from './cert-store.js';

/** ALPN a client offers over ISTIO_MUTUAL, by what it carries (Istio's in-mesh values). */
export const ISTIO_ALPN = { http: ['istio-http/1.1'], h2: ['istio-h2'], tcp: ['istio'] } as const;

/** ALPN values that mark a connection as Istio mTLS, and which of them carry HTTP. */
export const ISTIO_HTTP_ALPN: ReadonlySet<string> = new Set(['istio-http/1.0', 'istio-http/1.1', 'istio-h2']);
export const ISTIO_ALPN_VALUES: ReadonlySet<string> = new Set([...ISTIO_HTTP_ALPN, 'istio-peer-exchange', 'istio']);

/**
 * The reason a server certificate fails secure naming, or undefined when it passes: its SPIFFE
 * URI must be one of `expected`, or, when nothing is expected, any identity of `trustDomain`.
 */
export function secureNamingError(cert: PeerCertificate, expected: readonly string[], trustDomain: string): string | undefined {
  const uri = spiffeUriOf(cert);
  if (uri === undefined) return 'the server certificate has no SPIFFE identity';
  if (expected.length > 0) return expected.includes(uri) ? undefined : `server identity ${uri} is not one of ${expected.join(', ')}`;
  return uri.startsWith(`spiffe://${trustDomain}/`) ? undefined : `server identity ${uri} is outside trust domain ${trustDomain}`;
}
