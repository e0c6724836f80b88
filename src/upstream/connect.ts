/**
 * Opening upstream connections with a connect timeout, reporting failures in Envoy's terms. A
 * target with `tls` is connected over mutual TLS (Istio's ISTIO_MUTUAL): the workload
 * certificate, Istio's SNI and ALPN, the server verified against the trust root and its
 * identity against secure naming. A target with originated TLS (DestinationRule SIMPLE/MUTUAL)
 * uses the cluster's context built from the rule's files, its SNI, no ALPN, and verifies the
 * server's name against the configured subjectAltNames or the SNI. Any TLS problem fails the
 * connection; it never falls back to plaintext.
 */
import { hostPort } from '../core/addresses.js';
import { connect, isIP, type Socket } from 'node:net';
import { checkServerIdentity, connect as tlsConnect, type ConnectionOptions, type PeerCertificate, type SecureContext, type TLSSocket } from 'node:tls';
import { sanEntries, spiffeUriOf, type WorkloadCredentials } from '../security/cert-store.js';
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

export type TargetTls = IstioTargetTls | OriginatedTargetTls;

export interface IstioTargetTls {
  readonly origination?: undefined;
  readonly sni: string;
  /** SPIFFE URIs the server may present; empty accepts any identity of `trustDomain`. */
  readonly subjectAltNames: readonly string[];
  readonly trustDomain: string;
  /** The workload's current credentials; null when none are loaded (the connect fails). */
  credentials(): WorkloadCredentials | null;
}

/** TLS origination (SIMPLE / MUTUAL) with the cluster's context built from files. */
export interface OriginatedTargetTls {
  readonly origination: 'SIMPLE' | 'MUTUAL';
  /** SNI to send; none for IPs and wildcard hosts. */
  readonly sni?: string;
  /** Names the server certificate must carry one of (any SAN type); empty checks the SNI. */
  readonly subjectAltNames: readonly string[];
  /** The cluster's context, or why it could not be built (the connect fails with it). */
  context(): SecureContext | string;
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

/** What telemetry reports about an upstream connection, read once when it is established. */
export interface UpstreamConnectionFacts {
  /** The SPIFFE identity the server proved over Istio mTLS (secure naming passed); '' otherwise. */
  readonly identity: string;
  /** The connection's local `address:port` (Envoy's UPSTREAM_LOCAL_ADDRESS). */
  readonly localAddress: string;
}

const NO_FACTS: UpstreamConnectionFacts = { identity: '', localAddress: '' };
const connectionFacts = new WeakMap<Socket, UpstreamConnectionFacts>();

/** The facts of a connection connectUpstream made (empty ones for any other socket). */
export function upstreamConnectionFacts(socket: Socket): UpstreamConnectionFacts {
  return connectionFacts.get(socket) ?? NO_FACTS;
}


/** Connects; exactly one callback, with the connected (and, with `tls`, handshaken) socket or the failure. */
export function connectUpstream(
  target: ConnectTarget,
  timeoutMs: number,
  cb: (err: ConnectFailure | null, socket: Socket | null) => void,
  protocol: UpstreamProtocol = 'http',
): void {
  const tls = target.tls;
  const fail = (transport: string): void => queueMicrotask(() => cb({ reason: 'remote connection failure', transport }, null));
  let options: ConnectionOptions | undefined;
  let tlsError: string | null = null;
  const rejected = (why: string): void => void (tlsError = why);
  if (tls?.origination !== undefined) {
    const context = tls.context();
    if (typeof context === 'string') return fail(`TLS error: ${context}`);
    options = originationOptions(target, tls, context, rejected, protocol);
  } else if (tls !== undefined) {
    const credentials = tls.credentials();
    if (credentials === null) return fail('TLS error: no workload certificate loaded');
    options = tlsOptions(target, tls, credentials, protocol, rejected);
  }
  const local = target.localAddress !== undefined ? { localAddress: target.localAddress } : {};
  const socket =
    options !== undefined
      ? tlsConnect(options)
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
    const identity = tls !== undefined && tls.origination === undefined ? (spiffeUriOf((socket as TLSSocket).getPeerCertificate()) ?? '') : '';
    connectionFacts.set(socket, { identity, localAddress: socket.localAddress === undefined || socket.localPort === undefined ? '' : hostPort(socket.localAddress, socket.localPort) });
    cb(null, socket);
  });
}

/** The socket options tls.connect hands on to net.connect (allowHalfOpen, localAddress, where). */
function netOptions(target: ConnectTarget): ConnectionOptions {
  // A variable, not a literal: ConnectionOptions does not declare the net.connect options it passes on.
  const net = {
    allowHalfOpen: true,
    ...(target.localAddress !== undefined ? { localAddress: target.localAddress } : {}),
    ...(target.path !== undefined ? { path: target.path } : { host: target.host, port: target.port }),
  };
  return net;
}

/**
 * tls.connect options for SIMPLE / MUTUAL: the cluster's context (CA and, for MUTUAL, the client
 * certificate), the SNI, no ALPN (HTTP/1.1), the chain verified, and the server's name checked
 * against `subjectAltNames` (exact, any SAN type; a DNS SAN may be a `*.` wildcard), else
 * standard hostname verification of the SNI (of the connect address without one).
 */
function originationOptions(target: ConnectTarget, tls: OriginatedTargetTls, context: SecureContext, rejected: (why: string) => void, protocol: UpstreamProtocol): ConnectionOptions {
  const sni = tls.sni !== undefined && tls.sni !== '' && isIP(tls.sni) === 0 ? tls.sni : undefined;
  return {
    ...netOptions(target),
    secureContext: context,
    // An HTTP/2 cluster asks for h2; HTTP/1.1 and TCP send no ALPN.
    ...(protocol === 'h2' ? { ALPNProtocols: ['h2'] } : {}),
    ...(sni !== undefined ? { servername: sni } : {}),
    rejectUnauthorized: true,
    checkServerIdentity: (host: string, cert: PeerCertificate) => {
      const why = tls.subjectAltNames.length > 0 ? sanMismatch(cert, tls.subjectAltNames) : checkServerIdentity(tls.sni ?? host, cert)?.message;
      if (why === undefined) return undefined;
      rejected(why);
      return new Error(why);
    },
  };
}

/** Why `cert` carries none of `expected` among its SANs (DNS, URI, IP, email), or undefined. */
function sanMismatch(cert: PeerCertificate, expected: readonly string[]): string | undefined {
  const sans = sanEntries(cert).map(({ type, value }) => ({ type, value: value.replace(/^"(.*)"$/, '$1') }));
  const matches = (want: string): boolean =>
    sans.some(({ type, value }) => {
      if (value === want) return true;
      if (type !== 'DNS' || !value.startsWith('*.')) return false;
      const dot = want.indexOf('.');
      return dot > 0 && want.slice(dot).toLowerCase() === value.slice(1).toLowerCase();
    });
  if (expected.some(matches)) return undefined;
  const presented = sans.map((s) => `${s.type}:${s.value}`).join(', ') || 'none';
  return `the server certificate's SANs (${presented}) match none of ${expected.join(', ')}`;
}

/** tls.connect options for ISTIO_MUTUAL; `rejected` receives a secure-naming failure. */
function tlsOptions(target: ConnectTarget, tls: IstioTargetTls, credentials: WorkloadCredentials, protocol: UpstreamProtocol, rejected: (why: string) => void): ConnectionOptions {
  return {
    ...netOptions(target),
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
