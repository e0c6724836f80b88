/** Mesh-wide settings: what Istio keeps in MeshConfig plus skiff's own listener ports. */
import { DEFAULT_ACCESS_LOG, DEFAULT_TRACING, type AccessLogSettings, type TracingSettings } from './telemetry.js';

export type OutboundTrafficMode = 'ALLOW_ANY' | 'REGISTRY_ONLY';

export interface ListenerPorts {
  readonly outbound: number;
  readonly inbound: number;
  readonly admin: number;
  readonly status: number;
  readonly readiness: number;
  readonly stats: number;
}

export interface MeshSettings {
  readonly outboundTrafficPolicy: OutboundTrafficMode;
  readonly trustDomain: string;
  /** Istio trustDomainAliases: principals in any of these count as in the trust domain. */
  readonly trustDomainAliases: readonly string[];
  /** Namespace of resources that do not name one, and of clients of the standalone proxy. */
  readonly defaultNamespace: string;
  readonly rootNamespace: string;
  /** Labels of the workload this proxy runs for (sourceLabels matches). */
  readonly workloadLabels: Readonly<Record<string, string>>;
  /** Upstream TCP connect timeout (Istio meshConfig.connectTimeout, default 10s). */
  readonly connectTimeoutMs: number;
  /** How often DNS endpoints are re-resolved (Istio meshConfig.dnsRefreshRate, default 60s). */
  readonly dnsRefreshRateMs: number;
  /** Time allowed for a client to send a complete request header section. */
  readonly requestHeadersTimeoutMs: number;
  /** Idle time after which a downstream connection is closed (Envoy HCM idle_timeout, 1h). */
  readonly downstreamIdleTimeoutMs: number;
  /**
   * Sidecar protocol sniffing: how long to wait for the first bytes before the connection is
   * treated as opaque TCP (so server-first protocols on undeclared ports do not hang). 0 waits
   * forever, as Istio's default does.
   */
  readonly protocolDetectionTimeoutMs: number;
  /** Proxied TCP connections idle this long in both directions are closed (Envoy's 1h). */
  readonly tcpIdleTimeoutMs: number;
  /** Istio enableAutoMtls: without a DestinationRule TLS setting, mTLS to sidecar endpoints. */
  readonly enableAutoMtls: boolean;
  readonly accessLog: AccessLogSettings;
  readonly tracing: TracingSettings;
  /** After SIGTERM, how long outbound keeps serving the application (terminationDrainDuration, 5s). */
  readonly terminationDrainDurationMs: number;
  /** The longest a graceful drain may last before connections are closed (drainDuration, 45s). */
  readonly drainDurationMs: number;
  readonly ports: ListenerPorts;
}

export const DEFAULT_PORTS: ListenerPorts = {
  outbound: 15001,
  inbound: 15006,
  admin: 15000,
  status: 15020,
  readiness: 15021,
  stats: 15090,
};

export const DEFAULT_MESH: MeshSettings = {
  outboundTrafficPolicy: 'ALLOW_ANY',
  trustDomain: 'cluster.local',
  trustDomainAliases: [],
  defaultNamespace: 'default',
  rootNamespace: 'istio-system',
  workloadLabels: {},
  connectTimeoutMs: 10_000,
  dnsRefreshRateMs: 60_000,
  requestHeadersTimeoutMs: 10_000,
  downstreamIdleTimeoutMs: 3_600_000,
  protocolDetectionTimeoutMs: 100,
  tcpIdleTimeoutMs: 3_600_000,
  enableAutoMtls: true,
  accessLog: DEFAULT_ACCESS_LOG,
  tracing: DEFAULT_TRACING,
  terminationDrainDurationMs: 5_000,
  drainDurationMs: 45_000,
  ports: DEFAULT_PORTS,
};
