/**
 * The server side of a TLS handshake on a connection whose first bytes were already read (a
 * sniffed ClientHello), and the checks of the client certificate it brings. OpenSSL verifies a
 * requested certificate (chain, validity, key usage, purpose) but a TLSSocket built around an
 * existing stream does not act on its verdict, so callers enforce it here; the chain is also
 * walked once more to the roots. Anything refused closes the connection.
 */
import { X509Certificate } from 'node:crypto';
import type { Socket } from 'node:net';
import { replayStream } from '../core/replay-stream.js';
import { TLSSocket, type DetailedPeerCertificate, type TLSSocketOptions } from 'node:tls';

/** Longest a client may take to complete the handshake. */
const HANDSHAKE_TIMEOUT_MS = 10_000;
/** Longest chain accepted (leaf plus intermediates). */
const MAX_CHAIN = 8;

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

/** Whether the client presented a certificate at all. */
export function hasClientCertificate(tls: TLSSocket): boolean {
  return tls.getPeerCertificate().raw !== undefined;
}

/**
 * Why the client's certificate is refused, or undefined when OpenSSL verified it and it chains
 * to one of `roots` with every certificate valid now.
 */
export function clientCertificateError(tls: TLSSocket, roots: readonly X509Certificate[]): string | undefined {
  const verdict = verifyError(tls);
  if (verdict !== null) return verdict === undefined ? 'peer verification unavailable' : ((verdict as NodeJS.ErrnoException).code ?? verdict.message);
  const peer = tls.getPeerCertificate(true);
  return chainError(peer.raw === undefined ? undefined : peer, roots);
}

/**
 * Runs the server side of the handshake on `socket` (paused, `initial` already read from it).
 * `check` vets the finished handshake and returns why it is refused. `done` is called once:
 * with the TLS socket, or with the reason the connection was closed.
 */
export function serverHandshake(
  socket: Socket,
  initial: Buffer | null,
  options: TLSSocketOptions,
  check: (tls: TLSSocket) => string | undefined,
  done: (result: { socket: TLSSocket } | { error: string }) => void,
): void {
  const tls = new TLSSocket(replayStream(socket, initial), { ...options, isServer: true });
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
    const why = check(tls);
    if (why !== undefined) return fail(why);
    settled = true;
    clearTimeout(timer);
    done({ socket: tls });
  });
  socket.resume();
}
