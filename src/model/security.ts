/** Mutual TLS between sidecars: what the server side requires and how a client connects. */

/** Istio PeerAuthentication modes, resolved (UNSET never reaches the model). */
export type MtlsMode = 'STRICT' | 'PERMISSIVE' | 'DISABLE';

/** The PeerAuthentication in force for this proxy's workload: a mode, overridden per port. */
export interface PeerAuthentication {
  readonly mode: MtlsMode;
  /** Workload (container) port → mode (Istio portLevelMtls). */
  readonly portModes: Readonly<Record<number, MtlsMode>>;
}

/** Istio's default with no policy anywhere: plaintext and mTLS both accepted. */
export const DEFAULT_PEER_AUTHENTICATION: PeerAuthentication = { mode: 'PERMISSIVE', portModes: {} };

/**
 * How a cluster's upstream connections are secured (Envoy's transport socket). `ISTIO_MUTUAL`:
 * the proxy's own workload certificate, Istio's ALPN and SNI, and the server's SPIFFE identity
 * checked (secure naming). With `auto` (Istio auto mTLS) only endpoints labelled
 * `security.istio.io/tlsMode: istio` get it; the others are plaintext.
 * `SIMPLE` / `MUTUAL`: TLS origination with certificates from files (DestinationRule paths).
 */
export type UpstreamTls = IstioMutualTls | OriginatedTls;

export interface IstioMutualTls {
  readonly mode: 'ISTIO_MUTUAL';
  readonly auto: boolean;
  /** SNI: the cluster name, `outbound|port|subset|host`. */
  readonly sni: string;
  /** SPIFFE URIs the server may present; empty accepts any identity of the trust domain. */
  readonly subjectAltNames: readonly string[];
  readonly trustDomain: string;
}

/**
 * TLS origination (DestinationRule `tls.mode: SIMPLE | MUTUAL`) with file paths. The server is
 * verified against `caCertificates` (the system roots when absent, as Istio's
 * VERIFY_CERTIFICATE_AT_CLIENT does), its name against `subjectAltNames` (any SAN type) or, when
 * none are given, the SNI. MUTUAL also presents `clientCertificate` / `privateKey`.
 */
export interface OriginatedTls {
  readonly mode: 'SIMPLE' | 'MUTUAL';
  /** SNI sent; none (for an IP or wildcard host) sends no SNI. */
  readonly sni?: string;
  readonly subjectAltNames: readonly string[];
  readonly caCertificates?: string;
  readonly clientCertificate?: string;
  readonly privateKey?: string;
}

/** The endpoint label that marks a workload with a sidecar (Istio auto mTLS). */
export const TLS_MODE_LABEL = 'security.istio.io/tlsMode';
