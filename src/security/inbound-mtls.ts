/**
 * Terminating Istio mTLS on an inbound connection whose first bytes were already read (the
 * sniffed ClientHello). The handshake requires a client certificate. OpenSSL verifies it against
 * the workload's trust roots (chain, validity, key usage, client-auth purpose) but a TLSSocket
 * built around an existing stream does not act on the result, so it is enforced here; the
 * chain is also walked once more to the roots, and the peer must carry a SPIFFE identity.
 * Anything else closes the connection.
 */
import { createHash, X509Certificate } from 'node:crypto';
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { TLSSocket, type DetailedPeerCertificate } from 'node:tls';
import { spiffeUriOf, type WorkloadCredentials } from './cert-store.js';

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

/** Longest a client may take to complete the handshake. */
const HANDSHAKE_TIMEOUT_MS = 10_000;
/** Longest chain accepted (leaf plus intermediates). */
const MAX_CHAIN = 8;

/**
 * What the server selects: HTTP/1.x or opaque TCP. Not `istio-peer-exchange` (it would oblige
 * us to speak Istio's metadata exchange) nor `istio-h2` (no HTTP/2 yet): an Envoy client that
 * offers those also offers `istio` and gets that.
 */
const SERVER_ALPN = ['istio-http/1.1', 'istio-http/1.0', 'istio'];

/** OpenSSL's verdict on the peer certificate: null when verified, undefined when unavailable. */
function verifyError(tls: TLSSocket): Error | null | undefined {
  const handle = (tls as unknown as { _handle?: { verifyError?: () => Error | null } })._handle;
  return typeof handle?.verifyError === 'function' ? handle.verifyError() : undefined;
}

/**
 * Why the presented chain is not acceptable, or undefined when it leads to a trusted root and
 * every certificate on the way is valid at `now`.
 */
export function chainError(peer: DetailedPeerCertificate | undefined, roots: readonly X509Certificate[], now = new Date()): string | undefined {
  if (peer === undefined || peer.raw === undefined) return 'no client certificate';
  let current: DetailedPeerCertificate = peer;
  for (let depth = 0; depth < MAX_CHAIN; depth++) {
    const cert = new X509Certificate(current.raw);
    if (now < new Date(cert.validFrom) || now > new Date(cert.validTo)) return depth === 0 ? 'client certificate expired or not yet valid' : 'an issuer in the chain is expired';
    if (depth > 0 && !cert.ca) return 'an issuer in the chain is not a CA';
    if (roots.some((r) => cert.checkIssued(r) && cert.verify(r.publicKey))) return undefined;
    const issuer = current.issuerCertificate;
    if (issuer === undefined || issuer === current || issuer.raw === undefined) return 'client certificate is not issued by a trusted root';
    const issuerCert = new X509Certificate(issuer.raw);
    if (!cert.checkIssued(issuerCert) || !cert.verify(issuerCert.publicKey)) return 'broken certificate chain';
    current = issuer;
  }
  return 'certificate chain too long';
}

/** A stream that yields `initial` and then whatever `socket` receives, and writes to `socket`. */
function replay(socket: Socket, initial: Buffer | null): Duplex {
  const stream = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk: Buffer, _encoding, cb) {
      socket.write(chunk, cb);
    },
    final(cb) {
      socket.end();
      cb();
    },
    destroy(err, cb) {
      socket.destroy();
      cb(err);
    },
  });
  if (initial !== null) stream.push(initial);
  socket.on('data', (chunk: Buffer) => {
    if (!stream.push(chunk)) socket.pause();
  });
  socket.on('end', () => stream.push(null));
  socket.on('close', () => stream.destroy());
  socket.on('error', (err) => stream.destroy(err));
  return stream;
}

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
  const tls = new TLSSocket(replay(socket, initial), {
    isServer: true,
    secureContext: credentials.context,
    requestCert: true,
    rejectUnauthorized: true,
    // A mesh client without Istio ALPN (STRICT) must not be refused for its ALPN alone.
    ...(istioAlpn ? { ALPNProtocols: SERVER_ALPN } : {}),
  });
  let settled = false;
  const fail = (error: string): void => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    tls.destroy();
    socket.destroy();
    done({ error });
  };
  const timer = setTimeout(() => fail('handshake timeout'), HANDSHAKE_TIMEOUT_MS);
  timer.unref();
  tls.on('error', (err: NodeJS.ErrnoException) => fail(err.code ?? err.message));
  tls.once('close', () => fail('closed during the handshake'));
  tls.once('secure', () => {
    const verdict = verifyError(tls);
    if (verdict !== null) return fail(verdict === undefined ? 'peer verification unavailable' : ((verdict as NodeJS.ErrnoException).code ?? verdict.message));
    const peer = tls.getPeerCertificate(true);
    const why = chainError(peer.raw === undefined ? undefined : peer, credentials.roots);
    if (why !== undefined) return fail(why);
    const identity = spiffeUriOf(peer);
    if (identity === undefined) return fail('client certificate has no SPIFFE identity');
    settled = true;
    clearTimeout(timer);
    done({
      socket: tls,
      peer: {
        identity,
        certHash: createHash('sha256').update(peer.raw).digest('hex'),
        localIdentity: credentials.identity,
        alpn: typeof tls.alpnProtocol === 'string' ? tls.alpnProtocol : '',
        ...(typeof tls.servername === 'string' ? { serverName: tls.servername } : {}),
      },
    });
  });
  socket.resume();
}
