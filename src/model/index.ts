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
  /** What the inbound listener requires of clients (mTLS). */
  readonly peerAuthentication: PeerAuthentication;
  /** The AuthorizationPolicies in force for this proxy's workload (inbound). */
  readonly authorization: Authorization;
  /** The JWT rules (RequestAuthentication) in force for this proxy's workload (inbound). */
  readonly requestAuthentication: RequestAuthentication;
  readonly clusters: readonly Cluster[];
  /** Every service port as L4 sees it: sidecar TCP/TLS routing, CONNECT tunnels. */
  readonly tcpServices: readonly TcpService[];
  /** The ports a gateway proxy serves (Gateways selecting this proxy); unused by sidecars. */
  readonly gateways: readonly GatewayPort[];
}
