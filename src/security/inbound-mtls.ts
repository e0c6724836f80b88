/**
 * Terminating Istio mTLS on an inbound connection whose first bytes were already read (the
 * sniffed ClientHello). The client must present a certificate that chains to the workload's
 * trust roots and carries a SPIFFE identity; anything else closes the connection.
 */
import { createHash } from 'node:crypto';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { spiffeUriOf, type WorkloadCredentials } from './cert-store.js';
import { clientCertificateError, serverHandshake } from './server-handshake.js';

/** What the handshake established about the client. */
export interface MtlsPeer {
  /** The client's SPIFFE URI. */
  readonly identity: string;
  /** SHA-256 of the client's leaf certificate (DER), hex: the XFCC `Hash`. */
  readonly certHash: string;
  /** This workload's own SPIFFE URI: the XFCC `By`. */
  readonly localIdentity: string;
  readonly alpn: string;
  /** The SNI the client sent, if any (`connection.sni` in authorization). */
  readonly serverName?: string;
}

/**
 * What the server selects: HTTP/2, HTTP/1.x or opaque TCP. Not `istio-peer-exchange` (it would
 * oblige us to speak Istio's metadata exchange): an Envoy client that offers it also offers
 * `istio` and gets that.
 */
const SERVER_ALPN = ['istio-h2', 'istio-http/1.1', 'istio-http/1.0', 'istio'];

/**
 * Runs the server side of the handshake on `socket` (paused, `initial` already read from it).
 * `done` is called once: with the TLS socket and the verified peer, or with the reason the
 * connection was closed.
 */
export function terminateMtls(
  socket: Socket,
  initial: Buffer | null,
  credentials: WorkloadCredentials,
  istioAlpn: boolean,
  done: (result: { socket: TLSSocket; peer: MtlsPeer } | { error: string }) => void,
): void {
  const options = {
    secureContext: credentials.context,
    requestCert: true,
    rejectUnauthorized: true,
    // A mesh client without Istio ALPN (STRICT) must not be refused for its ALPN alone.
    ...(istioAlpn ? { ALPNProtocols: SERVER_ALPN } : {}),
  };
  const check = (tls: TLSSocket): string | undefined =>
    clientCertificateError(tls, credentials.roots) ?? (spiffeUriOf(tls.getPeerCertificate()) === undefined ? 'client certificate has no SPIFFE identity' : undefined);
  serverHandshake(socket, initial, options, check, (result) => {
    if ('error' in result) return done(result);
    const tls = result.socket;
    const peer = tls.getPeerCertificate();
    done({
      socket: tls,
      peer: {
        identity: spiffeUriOf(peer)!,
        certHash: createHash('sha256').update(peer.raw).digest('hex'),
        localIdentity: credentials.identity,
        alpn: typeof tls.alpnProtocol === 'string' ? tls.alpnProtocol : '',
        ...(typeof tls.servername === 'string' ? { serverName: tls.servername } : {}),
      },
    });
  });
}
