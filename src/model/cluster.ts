/** Clusters and endpoints: a subset of Envoy's Cluster and ClusterLoadAssignment. */
import { INBOUND_SOURCE_IPV4 } from '../core/addresses.js';
import type { UpstreamTls } from './security.js';

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
  /**
   * Envoy priority level (0 is the highest; absent means 0). Only the highest-priority level that
   * has an available host (healthy and not ejected) receives traffic.
   */
  readonly priority?: number;
  /**
   * False: the control plane reports the endpoint unhealthy (EDS health_status UNHEALTHY,
   * DRAINING or TIMEOUT); it counts in its level's size but takes traffic only in panic.
   * Absent: healthy.
   */
  readonly healthy?: boolean;
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
  /**
   * STRICT_DNS: which resolved addresses are used. Absent: all of both families;
   * `*_ONLY`: one family; `*_PREFERRED`: that family when the name has any, else the other.
   */
  readonly dnsLookupFamily?: 'V4_ONLY' | 'V6_ONLY' | 'V4_PREFERRED' | 'V6_PREFERRED';
  /** STRICT_DNS: only the first address of each name is used (Envoy LOGICAL_DNS). */
  readonly firstAddressOnly?: boolean;
  /** Idle upstream connections are closed after this long (Istio http.idleTimeout, 1h). */
  readonly idleTimeoutMs: number;
  /** Requests per upstream connection; 0 = unlimited (Istio http.maxRequestsPerConnection). */
  readonly maxRequestsPerConnection: number;
  readonly circuitBreakers: CircuitBreakers;
  /** Undefined: no outlier detection (Istio emits it only when configured). */
  readonly outlierDetection?: OutlierDetection;
  /** Envoy healthy_panic_threshold (%): below this share of healthy hosts, use all hosts. 0 disables. */
  readonly healthyPanicThreshold: number;
  /**
   * Local address upstream connections are made from, per family of the host's address (Envoy
   * upstream_bind_config): InboundPassthroughCluster uses 127.0.0.6 and ::6, which the capture
   * rules never redirect.
   */
  readonly sourceAddress?: { readonly ipv4: string; readonly ipv6: string };
  /** Undefined: plaintext. */
  readonly tls?: UpstreamTls;
  /**
   * `http2`: HTTP/2 to the hosts (Istio: ports declared GRPC or HTTP2, or h2UpgradePolicy
   * UPGRADE); `client`: the protocol the client used (useClientProtocol, and Istio's inbound
   * passthrough); undefined: HTTP/1.1.
   */
  readonly protocol?: 'http2' | 'client';
  /** HTTP/2: streams open at once per connection before another is opened; undefined: no limit. */
  readonly maxConcurrentStreams?: number;
  /** The service the cluster sends to (logs, admin output, metrics' destination_service labels). */
  readonly service?: { readonly host: string; readonly namespace: string; readonly port: number; readonly subset?: string };
}

/** Envoy circuit breaker thresholds (default priority), per cluster. */
export interface CircuitBreakers {
  readonly maxConnections: number;
  readonly maxPendingRequests: number;
  readonly maxRequests: number;
  readonly maxRetries: number;
}

/** Istio leaves every threshold at 2^32 − 1 unless a DestinationRule sets it. */
export const ISTIO_CIRCUIT_BREAKERS: CircuitBreakers = {
  maxConnections: 2 ** 32 - 1,
  maxPendingRequests: 2 ** 32 - 1,
  maxRequests: 2 ** 32 - 1,
  maxRetries: 2 ** 32 - 1,
};

/** Envoy's defaults when a cluster sets no thresholds (xDS). */
export const ENVOY_CIRCUIT_BREAKERS: CircuitBreakers = {
  maxConnections: 1024,
  maxPendingRequests: 1024,
  maxRequests: 1024,
  maxRetries: 3,
};

/** Envoy OutlierDetection, as Istio maps it (consecutive errors only; success rate off). */
export interface OutlierDetection {
  /** Consecutive 5xx (and connect failures) before ejection; 0 disables. */
  readonly consecutive5xx: number;
  /** Consecutive 502/503/504 (and connect failures) before ejection; 0 disables. */
  readonly consecutiveGatewayFailure: number;
  readonly intervalMs: number;
  readonly baseEjectionTimeMs: number;
  readonly maxEjectionTimeMs: number;
  /** At most this share of hosts is ejected, but always at least one. */
  readonly maxEjectionPercent: number;
}

export const PASSTHROUGH_CLUSTER = 'PassthroughCluster';
export const BLACKHOLE_CLUSTER = 'BlackHoleCluster';
/** Inbound traffic to the application, from 127.0.0.6 (Istio's "magic" inbound source address). */
export const INBOUND_PASSTHROUGH_CLUSTER = 'InboundPassthroughCluster';
export const INBOUND_SOURCE_ADDRESS = { ipv4: INBOUND_SOURCE_IPV4, ipv6: '::6' } as const;
