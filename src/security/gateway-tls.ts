/**
 * TLS terminated by a gateway server. SIMPLE, MUTUAL and OPTIONAL_MUTUAL use PEM files, read
 * when first needed and again whenever they change (looked at no more than once a second, on
 * the handshake path only); ISTIO_MUTUAL uses the proxy's workload certificate. A file that is
 * missing or unusable makes its server refuse every handshake until it is fixed: nothing is
 * served with a stale or absent certificate, and no client is let in unchecked.
 *
 * Client certificates: MUTUAL and ISTIO_MUTUAL require one, OPTIONAL_MUTUAL checks one when
 * presented. It must verify, chain to the server's CA (the mesh roots for ISTIO_MUTUAL), and
 * carry one of `subjectAltNames` when those are given.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import type { Socket } from 'node:net';
import { createSecureContext, type PeerCertificate, type SecureContext, type TLSSocket, type TLSSocketOptions } from 'node:tls';
import type { GatewayTls } from '../model/index.js';
import { pemCertificates, sanEntries, type SanEntry, type WorkloadCredentials } from './cert-store.js';
import { clientCertificateError, hasClientCertificate, serverHandshake } from './server-handshake.js';

/** A client that presented a verified certificate. */
export interface GatewayClient {
  /** Envoy's principal name: the URI SAN (a SPIFFE URI in the mesh), else the DNS SAN, else the subject. */
  readonly identity: string;
  /** SHA-256 of the client's leaf certificate, hex. */
  readonly certHash: string;
  /** The server certificate's URI SAN, or ''. */
  readonly localIdentity: string;
  /** The XFCC element a gateway sets for this client. */
  readonly clientCertDetails: string;
  readonly serverName?: string;
}

/** How often a server's files are looked at for changes. */
const RECHECK_MS = 1000;

/** What a server answers handshakes with. */
export interface ServerCredentials {
  readonly context: SecureContext;
  /** Roots a client certificate must chain to (empty for SIMPLE). */
  readonly roots: readonly X509Certificate[];
  /** The server certificate's URI SAN, if any: the XFCC `By`. */
  readonly localIdentity: string | undefined;
}

interface FileEntry {
  readonly stamp: string;
  readonly result: ServerCredentials | { readonly error: string };
  checkedAt: number;
}

export interface GatewayTlsOptions {
  /** The workload certificate (ISTIO_MUTUAL). */
  readonly workload: () => WorkloadCredentials | null;
  /** Told once per change when a server's files cannot be used. */
  readonly onError?: (message: string) => void;
}

export class GatewayTlsContexts {
  readonly #options: GatewayTlsOptions;
  readonly #files = new Map<string, FileEntry>();

  constructor(options: GatewayTlsOptions) {
    this.#options = options;
  }

  /** The credentials for `tls` now, or why there are none. */
  resolve(tls: GatewayTls): ServerCredentials | { error: string } {
    if (tls.mode === 'ISTIO_MUTUAL') {
      const w = this.#options.workload();
      if (w === null) return { error: 'no workload certificate for ISTIO_MUTUAL' };
      return { context: w.context, roots: w.roots, localIdentity: w.identity };
    }
    const key = JSON.stringify([tls.serverCertificate, tls.privateKey, tls.mode === 'SIMPLE' ? undefined : tls.caCertificates, tls.minProtocolVersion, tls.maxProtocolVersion, tls.cipherSuites]);
    const now = performance.now();
    const entry = this.#files.get(key);
    if (entry !== undefined && now - entry.checkedAt < RECHECK_MS) return entry.result;
    const paths = [tls.serverCertificate!, tls.privateKey!, ...(tls.mode === 'SIMPLE' ? [] : [tls.caCertificates!])];
    const stamp = fileStamp(paths);
    if (entry !== undefined && entry.stamp === stamp) {
      entry.checkedAt = now;
      return entry.result;
    }
    const result = loadFiles(tls);
    if ('error' in result) this.#options.onError?.(result.error);
    this.#files.set(key, { stamp, result, checkedAt: now });
    return result;
  }
}

/** Identity, size and times of each file; unreadable ones count as a change when they come back. */
function fileStamp(paths: readonly string[]): string {
  return paths
    .map((p) => {
      try {
        const s = statSync(p);
        // A rotation by rename changes the inode even when size and mtime look the same.
        return `${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`;
      } catch {
        return 'missing';
      }
    })
    .join('|');
}

function loadFiles(tls: GatewayTls): ServerCredentials | { error: string } {
  const read = (path: string): string => readFileSync(path, 'utf8');
  try {
    const cert = read(tls.serverCertificate!);
    const key = read(tls.privateKey!);
    const ca = tls.mode === 'SIMPLE' ? undefined : read(tls.caCertificates!);
    const roots = ca === undefined ? [] : pemCertificates(ca);
    if (ca !== undefined && roots.length === 0) throw new Error(`${tls.caCertificates} holds no certificate`);
    // createSecureContext checks that the key matches the certificate.
    const context = createSecureContext({
      cert,
      key,
      ...(ca !== undefined ? { ca } : {}),
      minVersion: tls.minProtocolVersion,
      ...(tls.maxProtocolVersion !== undefined ? { maxVersion: tls.maxProtocolVersion } : {}),
      ...(tls.cipherSuites !== undefined ? { ciphers: tls.cipherSuites.join(':') } : {}),
    });
    const leaf = new X509Certificate(cert);
    return { context, roots, localIdentity: sanEntries(leaf).find((e) => e.type === 'URI')?.value };
  } catch (err) {
    return { error: `gateway TLS files ${tls.serverCertificate}, ${tls.privateKey}${tls.caCertificates !== undefined ? `, ${tls.caCertificates}` : ''} unusable (${(err as Error).message}): handshakes are refused` };
  }
}

/** Why a client certificate is refused under `tls`, or undefined. */
function clientCheck(tls: GatewayTls, roots: readonly X509Certificate[]): (socket: TLSSocket) => string | undefined {
  return (socket) => {
    if (!hasClientCertificate(socket)) return tls.mode === 'OPTIONAL_MUTUAL' ? undefined : 'no client certificate';
    const why = clientCertificateError(socket, roots);
    if (why !== undefined) return why;
    if (tls.subjectAltNames.length === 0) return undefined;
    const sans = sanEntries(socket.getPeerCertificate()).map((e) => e.value);
    return sans.some((v) => tls.subjectAltNames.includes(v)) ? undefined : 'client certificate SANs match none of subjectAltNames';
  };
}

/** The subject as Envoy prints it (RFC 2253 order: most specific first), e.g. `CN=a,O=b`. */
function subjectOf(cert: PeerCertificate): string {
  return Object.entries(cert.subject ?? {})
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('+') : v}`)
    .reverse()
    .join(',');
}

/** Envoy's XFCC element for a verified client (SANITIZE_SET with subject, URI and DNS). */
function clientCertDetails(cert: PeerCertificate, sans: readonly SanEntry[], hash: string, localIdentity: string | undefined): string {
  const parts = [
    ...(localIdentity !== undefined ? [`By=${localIdentity}`] : []),
    `Hash=${hash}`,
    `Subject="${subjectOf(cert).replace(/"/g, '\\"')}"`,
    ...sans.filter((e) => e.type === 'URI').map((e) => `URI=${e.value}`),
    ...sans.filter((e) => e.type === 'DNS').map((e) => `DNS=${e.value}`),
  ];
  return parts.join(';');
}

/** The verified client, or null when it presented no certificate. */
function peerOf(socket: TLSSocket, localIdentity: string | undefined): GatewayClient | null {
  if (!hasClientCertificate(socket)) return null;
  const cert = socket.getPeerCertificate();
  const sans = sanEntries(cert);
  const hash = createHash('sha256').update(cert.raw).digest('hex');
  return {
    // Envoy's principal name: the URI SAN, else the DNS SAN, else the subject.
    identity: sans.find((e) => e.type === 'URI')?.value ?? sans.find((e) => e.type === 'DNS')?.value ?? subjectOf(cert),
    certHash: hash,
    localIdentity: localIdentity ?? '',
    clientCertDetails: clientCertDetails(cert, sans, hash, localIdentity),
    ...(typeof socket.servername === 'string' ? { serverName: socket.servername } : {}),
  };
}

/**
 * Terminates a gateway server's TLS on `socket` (its ClientHello, `initial`, already read).
 * `alpn` is what the server may select (HTTP servers offer http/1.1). `done` is called once.
 */
export function terminateGatewayTls(
  socket: Socket,
  initial: Buffer | null,
  tls: GatewayTls,
  credentials: ServerCredentials,
  alpn: readonly string[] | undefined,
  done: (result: { socket: TLSSocket; peer: GatewayClient | null } | { error: string }) => void,
): void {
  const wantsClient = tls.mode !== 'SIMPLE';
  const options: TLSSocketOptions = {
    secureContext: credentials.context,
    requestCert: wantsClient,
    rejectUnauthorized: wantsClient && tls.mode !== 'OPTIONAL_MUTUAL',
    ...(alpn !== undefined ? { ALPNProtocols: [...alpn] } : {}),
  };
  const check = wantsClient ? clientCheck(tls, credentials.roots) : () => undefined;
  serverHandshake(socket, initial, options, check, (result) => {
    if ('error' in result) return done(result);
    done({ socket: result.socket, peer: wantsClient ? peerOf(result.socket, credentials.localIdentity) : null });
  });
}
