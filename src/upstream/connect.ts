/**
 * Opening upstream connections with a connect timeout, reporting failures in Envoy's terms. A
 * target with `tls` is connected over mutual TLS (Istio's ISTIO_MUTUAL): the workload
 * certificate, Istio's SNI and ALPN, the server verified against the trust root and its
 * identity against secure naming. Any TLS problem fails the connection; it never falls back to
 * plaintext.
 */
import { connect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions, type PeerCertificate } from 'node:tls';
import type { WorkloadCredentials } from '../security/cert-store.js';
import { ISTIO_ALPN, secureNamingError } from '../security/peer-identity.js';

/** Where to connect: an IP or name with a port, or a unix socket path. */
export interface ConnectTarget {
  readonly host: string;
  readonly port: number;
  readonly path?: string;
  /** Source address to bind before connecting. */
  readonly localAddress?: string;
  readonly tls?: TargetTls;
}

export interface TargetTls {
  readonly sni: string;
  /** SPIFFE URIs the server may present; empty accepts any identity of `trustDomain`. */
  readonly subjectAltNames: readonly string[];
  readonly trustDomain: string;
  /** The workload's current credentials; null when none are loaded (the connect fails). */
  credentials(): WorkloadCredentials | null;
}

/** What the connection will carry: picks Istio's ALPN for mTLS. */
export type UpstreamProtocol = keyof typeof ISTIO_ALPN;

/** Why a connection could not be established, in Envoy's terms. */
export interface ConnectFailure {
  /** `connection timeout` or `remote connection failure`. */
  readonly reason: string;
  /** Envoy's transport failure reason, e.g. `delayed connect error: 111`. */
  readonly transport: string;
}

/** Connects; exactly one callback, with the connected (and, with `tls`, handshaken) socket or the failure. */
export function connectUpstream(
  target: ConnectTarget,
  timeoutMs: number,
  cb: (err: ConnectFailure | null, socket: Socket | null) => void,
  protocol: UpstreamProtocol = 'http',
): void {
  const tls = target.tls;
  const credentials = tls?.credentials() ?? null;
  if (tls !== undefined && credentials === null) {
    queueMicrotask(() => cb({ reason: 'remote connection failure', transport: 'TLS error: no workload certificate loaded' }, null));
    return;
  }
  const local = target.localAddress !== undefined ? { localAddress: target.localAddress } : {};
  let tlsError: string | null = null;
  const socket =
    tls !== undefined
      ? tlsConnect(tlsOptions(target, tls, credentials!, protocol, (why) => (tlsError = why)))
      : target.path !== undefined
        ? connect({ path: target.path, allowHalfOpen: true })
        : connect({ host: target.host, port: target.port, allowHalfOpen: true, ...local });
  let settled = false;
  const timer = setTimeout(() => {
    if (settled) return;
    settled = true;
    socket.destroy();
    cb({ reason: 'connection timeout', transport: '' }, null);
  }, timeoutMs);
  const onError = (err: NodeJS.ErrnoException): void => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    const transport = tls !== undefined && typeof err.errno !== 'number' ? `TLS error: ${tlsError ?? err.code ?? err.message}` : transportFailure(err);
    cb({ reason: 'remote connection failure', transport }, null);
  };
  socket.once('error', onError);
  socket.once(tls !== undefined ? 'secureConnect' : 'connect', () => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    socket.removeListener('error', onError);
    socket.setNoDelay(true);
    cb(null, socket);
  });
}

/** tls.connect options for ISTIO_MUTUAL; `rejected` receives a secure-naming failure. */
function tlsOptions(target: ConnectTarget, tls: TargetTls, credentials: WorkloadCredentials, protocol: UpstreamProtocol, rejected: (why: string) => void): ConnectionOptions {
  // tls.connect hands these options to net.connect too, which applies allowHalfOpen and localAddress.
  const net = { allowHalfOpen: true, ...(target.localAddress !== undefined ? { localAddress: target.localAddress } : {}) };
  return {
    ...net,
    ...(target.path !== undefined ? { path: target.path } : { host: target.host, port: target.port }),
    secureContext: credentials.context,
    ...(isIP(tls.sni) === 0 ? { servername: tls.sni } : {}),
    ALPNProtocols: [...ISTIO_ALPN[protocol]],
    rejectUnauthorized: true,
    checkServerIdentity: (_host: string, cert: PeerCertificate) => {
      const why = secureNamingError(cert, tls.subjectAltNames, tls.trustDomain);
      if (why === undefined) return undefined;
      rejected(why);
      return new Error(why);
    },
  };
}

/** Envoy's transport failure text for a connect error: `delayed connect error: <errno>`. */
function transportFailure(err: NodeJS.ErrnoException): string {
  if (err.code === 'ENOTFOUND' || err.code?.startsWith('EAI_')) return 'dns resolution failure';
  if (typeof err.errno === 'number') return `delayed connect error: ${Math.abs(err.errno)}`;
  return err.code ?? err.message;
}
