/** Clusters and endpoints: a subset of Envoy's Cluster and ClusterLoadAssignment. */

export type LbPolicy =
  | { readonly kind: 'LEAST_REQUEST'; readonly choiceCount: number }
  | { readonly kind: 'ROUND_ROBIN' }
  | { readonly kind: 'RANDOM' }
  | { readonly kind: 'RING_HASH'; readonly minimumRingSize: number; readonly maximumRingSize: number }
  | { readonly kind: 'MAGLEV'; readonly tableSize: number };

/** What a consistent-hash cluster hashes a request on (Envoy route hash_policy). */
export type HashPolicy =
  | { readonly kind: 'header'; readonly name: string }
  | {
      readonly kind: 'cookie';
      readonly name: string;
      readonly path?: string;
      /** When set, a missing cookie is generated and returned with this Max-Age. */
      readonly ttlMs?: number;
    }
  | { readonly kind: 'sourceIp' }
  | { readonly kind: 'queryParam'; readonly name: string };

export interface Endpoint {
  /** IP address or DNS name (DNS names are resolved by STRICT_DNS clusters). */
  readonly address: string;
  readonly port: number;
  readonly weight: number;
  readonly labels: Readonly<Record<string, string>>;
}

/**
 * How a cluster finds its hosts:
 * - STATIC: the endpoints as given;
 * - STRICT_DNS: each endpoint address is a DNS name resolved to all its addresses, refreshed;
 * - ORIGINAL_DST: the destination the request names (Istio's PassthroughCluster, resolution NONE).
 */
export type DiscoveryType = 'STATIC' | 'STRICT_DNS' | 'ORIGINAL_DST';

export interface Cluster {
  /** `outbound|<port>|<subset>|<host>`, or PassthroughCluster / BlackHoleCluster. */
  readonly name: string;
  readonly discovery: DiscoveryType;
  readonly lb: LbPolicy;
  readonly hashPolicy?: HashPolicy;
  readonly endpoints: readonly Endpoint[];
  readonly connectTimeoutMs: number;
  readonly dnsRefreshRateMs: number;
  /** Idle upstream connections are closed after this long (Istio http.idleTimeout, 1h). */
  readonly idleTimeoutMs: number;
  /** Requests per upstream connection; 0 = unlimited (Istio http.maxRequestsPerConnection). */
  readonly maxRequestsPerConnection: number;
  /** Where the cluster came from, for logs and admin output. */
  readonly service?: { readonly host: string; readonly port: number; readonly subset?: string };
}

export const PASSTHROUGH_CLUSTER = 'PassthroughCluster';
export const BLACKHOLE_CLUSTER = 'BlackHoleCluster';
