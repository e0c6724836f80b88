/**
 * A gateway proxy's listeners (Istio Gateway servers, merged per port as istiod merges them):
 * what each port accepts, how TLS is terminated or passed through, and the routes behind it.
 */
import type { RouteConfig } from './route.js';
import type { L4Route } from './tcp.js';

/** TLS versions as Node names them. */
export type TlsVersion = 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';

/**
 * TLS terminated by the gateway. SIMPLE: server certificate only. MUTUAL: a client certificate
 * issued by `caCertificates` is required; OPTIONAL_MUTUAL: verified when presented.
 * ISTIO_MUTUAL: the proxy's workload certificate, and a client certificate from the mesh.
 */
export interface GatewayTls {
  readonly mode: 'SIMPLE' | 'MUTUAL' | 'OPTIONAL_MUTUAL' | 'ISTIO_MUTUAL';
  /** PEM file paths; absent for ISTIO_MUTUAL. */
  readonly serverCertificate?: string;
  readonly privateKey?: string;
  readonly caCertificates?: string;
  /** A client certificate must carry one of these SANs (URI, DNS, IP or email); empty: any. */
  readonly subjectAltNames: readonly string[];
  readonly minProtocolVersion: TlsVersion;
  readonly maxProtocolVersion?: TlsVersion;
  /** OpenSSL cipher names; absent: Envoy's defaults as Node has them. */
  readonly cipherSuites?: readonly string[];
}

export interface GatewayServer {
  /** `namespace/gateway/index`: unique, and how connections find their server after a reload. */
  readonly name: string;
  /** Names the server answers to by SNI (exact, `*.suffix` or `*`), lowercase. */
  readonly hosts: readonly string[];
  /** Terminated TLS; absent for plaintext and for TLS passed through by SNI. */
  readonly tls?: GatewayTls;
  /** What is behind the server: HTTP routes, or L4 routes (`tls` routes carry sniHosts). */
  readonly routes: { readonly kind: 'http'; readonly config: RouteConfig } | { readonly kind: 'l4'; readonly routes: readonly L4Route[] };
}

/**
 * One listening port. `http`: plaintext HTTP, every server's hosts in one route config (a
 * single server). `tls`: the server is chosen by SNI, then terminates or passes the TLS
 * through. `tcp`: opaque connections to a single server's routes.
 */
export interface GatewayPort {
  readonly port: number;
  /** The address to listen on; '' for every address. */
  readonly bind: string;
  readonly kind: 'http' | 'tls' | 'tcp';
  readonly servers: readonly GatewayServer[];
}
