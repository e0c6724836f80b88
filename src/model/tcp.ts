/**
 * Services as an L4 proxy sees them: where the sidecar's outbound listener sends a connection
 * it does not serve as HTTP (Istio's per-VIP TCP and TLS listeners), and where a CONNECT tunnel
 * goes.
 */

/**
 * How a service port is proxied (Istio protocol selection): HTTP (HTTP, HTTP2, GRPC, GRPC-WEB)
 * by Host header; TLS (HTTPS, TLS) opaque, by SNI; TCP opaque, never sniffed, so server-first
 * protocols work; AUTO (protocol unset) sniffed, HTTP when the first bytes are HTTP.
 */
export type PortProtocol = 'HTTP' | 'TLS' | 'TCP' | 'AUTO';

/** Istio assumes these server-first ports are TCP when no protocol is declared: never sniffed. */
export const SERVER_FIRST_PORTS: ReadonlySet<number> = new Set([25, 53, 3306, 27017]);

export interface L4Destination {
  readonly cluster: string;
  readonly weight: number;
}

/** One VirtualService `tcp` or `tls` route, already narrowed to the service port it serves. */
export interface L4Route {
  /** CIDRs the connection's original destination must be in; empty matches any. */
  readonly destinationSubnets: readonly string[];
  /** `tls` routes: SNI names, exact or `*.suffix`; undefined for `tcp` routes. */
  readonly sniHosts?: readonly string[];
  /** Relative weights; a single entry gets every connection. */
  readonly destinations: readonly L4Destination[];
}

export interface TcpService {
  /** The service's FQDN. */
  readonly hostname: string;
  /** Names the service answers to (CONNECT authority, TLS SNI): its name forms and VIPs. */
  readonly domains: readonly string[];
  /** ServiceEntry `addresses` that are single IPs (VIPs), canonical. */
  readonly addresses: readonly string[];
  /** ServiceEntry `addresses` that are CIDR ranges, canonical. With no addresses and no subnets the service is known by port (and name) only. */
  readonly subnets: readonly string[];
  readonly port: number;
  readonly protocol: PortProtocol;
  /** The service port's own cluster, used when no route matches. */
  readonly cluster: string;
  /** VirtualService routes in order; the first that matches wins. */
  readonly routes: readonly L4Route[];
}
