/**
 * An upstream host: one endpoint address of a cluster, with its connection pool and the
 * counters load balancers read.
 */
import { hostPort } from '../core/addresses.js';
import type { HostOutlierMonitor } from './outlier-detector.js';
import type { ConnectionPool } from './pool/connection-pool.js';
import type { H2Pool } from './pool/h2-pool.js';

export class Host {
  /** `address:port`, or the unix socket path. */
  readonly key: string;
  /** Requests currently assigned to this host (least-request reads it). */
  activeRequests = 0;
  /** Connections to it are Istio mTLS (ISTIO_MUTUAL, or auto mTLS to a sidecar): a mesh peer. */
  readonly istioMtls: boolean;

  constructor(
    readonly address: string,
    readonly port: number,
    readonly weight: number,
    readonly labels: Readonly<Record<string, string>>,
    readonly pool: ConnectionPool,
    /** Null when the cluster has no outlier detection. */
    readonly outlier: HostOutlierMonitor | null = null,
    /** HTTP/2 sessions, for clusters that speak HTTP/2 upstream; null otherwise. */
    readonly h2: H2Pool | null = null,
    /** Priority level, 0 the highest (Envoy EDS priorities). */
    readonly priority: number = 0,
    /** False when the control plane reports the host unhealthy: it takes traffic only in panic. */
    readonly healthy: boolean = true,
  ) {
    this.key = hostKey(address, port);
    const tls = pool.target.tls;
    this.istioMtls = tls !== undefined && tls.origination === undefined;
  }
}

/** `address:port` (IPv6 bracketed), or the `unix://` path as given. */
export function hostKey(address: string, port: number): string {
  return address.startsWith('unix://') ? address : hostPort(address, port);
}
