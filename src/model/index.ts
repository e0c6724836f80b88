/**
 * The internal model: plain, immutable data that every config source produces and that
 * `compile/` turns into a runtime snapshot. Nothing here does I/O or holds state.
 */
import type { Authorization } from './authorization.js';
import type { Cluster } from './cluster.js';
import type { GatewayPort } from './gateway.js';
import type { MeshSettings } from './mesh.js';
import type { RouteConfig } from './route.js';
import type { RequestAuthentication } from './request-authentication.js';
import type { PeerAuthentication } from './security.js';
import type { TcpService } from './tcp.js';

export * from './authorization.js';
export * from './cluster.js';
export * from './gateway.js';
export * from './mesh.js';
export * from './policies.js';
export * from './request-authentication.js';
export * from './route.js';
export * from './security.js';
export * from './tcp.js';
export * from './telemetry.js';

/**
 * AUTO: HTTP when the bytes are HTTP (or the mTLS ALPN says so), else TCP; HTTP: always served as
 * HTTP (other bytes are closed); TCP: always proxied as TCP; NONE: closed (no chain accepts it).
 */
export type InboundProtocol = 'AUTO' | 'HTTP' | 'TCP' | 'NONE';

export interface InboundProtocols {
  /** Ports without their own entry. */
  readonly default: InboundProtocol;
  readonly ports: Readonly<Record<number, InboundProtocol>>;
}

export interface AddressRouteConfig {
  /** Canonical IP address. */
  readonly address: string;
  readonly port: number;
  readonly routeConfig: RouteConfig;
}

export interface Model {
  readonly mesh: MeshSettings;
  /** Outbound HTTP route configs, one per service port, named by port. */
  readonly routeConfigs: readonly RouteConfig[];
  /**
   * Used for ports with no route config of their own: holds only the catch-all virtual host
   * (allow_any or block_all).
   */
  readonly fallbackRouteConfig: RouteConfig;
  /** The sidecar inbound listener's HTTP routes (to the application). */
  readonly inboundRouteConfig: RouteConfig;
  /**
   * Inbound routes of single ports, named by port (xDS: Istio's per-port inbound chains); ports
   * without one use `inboundRouteConfig`.
   */
  readonly inboundPortRouteConfigs?: readonly RouteConfig[];
  /**
   * Outbound routes for one destination address and port only (xDS: Istio's per-VIP listeners
   * `<vip>_<port>`), chosen before the port's route config for redirected connections.
   */
  readonly addressRouteConfigs?: readonly AddressRouteConfig[];
  /** What the inbound listener requires of clients (mTLS). */
  readonly peerAuthentication: PeerAuthentication;
  /**
   * How inbound connections are served, per destination port (xDS: what virtualInbound's chains
   * for the port do); absent: sniffed (AUTO) everywhere, the Istio YAML behaviour.
   */
  readonly inboundProtocols?: InboundProtocols;
  /** The AuthorizationPolicies in force for this proxy's workload (inbound). */
  readonly authorization: Authorization;
  /**
   * Policies for inbound TCP connections when they differ from `authorization` (xDS: the
   * network RBAC filters of Istio's TCP chains); absent: `authorization` applies to both.
   */
  readonly tcpAuthorization?: Authorization;
  /** The JWT rules (RequestAuthentication) in force for this proxy's workload (inbound). */
  readonly requestAuthentication: RequestAuthentication;
  readonly clusters: readonly Cluster[];
  /** Every service port as L4 sees it: sidecar TCP/TLS routing, CONNECT tunnels. */
  readonly tcpServices: readonly TcpService[];
  /** The ports a gateway proxy serves (Gateways selecting this proxy); unused by sidecars. */
  readonly gateways: readonly GatewayPort[];
}
