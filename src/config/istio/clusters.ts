/**
 * Clusters for the registry: `outbound|<port>||<host>` for every service port, plus one per
 * DestinationRule subset with the endpoints its labels select, each with the traffic policy in
 * force for that port and subset. Plus Istio's PassthroughCluster and BlackHoleCluster.
 */
import { isIP } from 'node:net';
import {
  BLACKHOLE_CLUSTER,
  INBOUND_PASSTHROUGH_CLUSTER,
  INBOUND_SOURCE_ADDRESS,
  ISTIO_CIRCUIT_BREAKERS,
  PASSTHROUGH_CLUSTER,
  type CircuitBreakers,
  type Cluster,
  type OutlierDetection,
  type DiscoveryType,
  type Endpoint,
} from '../../model/cluster.js';
import type { UpstreamTls } from '../../model/security.js';
import type { MeshSettings } from '../../model/mesh.js';
import { clusterName } from './routes.js';
import { endpointPort, labelsMatch, type Service, type ServicePort } from './registry.js';
import { effectivePolicy, loadBalancing, type DestinationRuleIndex, type PolicyBlocks } from './traffic-policy.js';

/** Istio's default idle timeout for upstream HTTP connections (http.idleTimeout). */
const DEFAULT_IDLE_TIMEOUT_MS = 3_600_000;

function endpointsFor(service: Service, port: ServicePort, subsetLabels: Readonly<Record<string, string>> | undefined): Endpoint[] {
  const declared = service.endpoints;
  if (declared.length === 0) {
    // DNS resolution without endpoints resolves the host itself. That endpoint has no labels, so
    // only a subset without labels selects it.
    const selectsAll = subsetLabels === undefined || Object.keys(subsetLabels).length === 0;
    if ((service.resolution === 'DNS' || service.resolution === 'DNS_ROUND_ROBIN') && selectsAll && !service.writtenHost.startsWith('*')) {
      return [{ address: service.writtenHost, port: port.targetPort ?? port.number, weight: 1, labels: {} }];
    }
    return [];
  }
  return declared
    .filter((e) => subsetLabels === undefined || labelsMatch(subsetLabels, e.labels ?? {}))
    // An unset or zero weight means 1, as istiod sends it (Envoy requires weights of at least 1).
    .map((e) => ({ address: e.address!, port: endpointPort(e, port), weight: e.weight || 1, labels: e.labels ?? {} }));
}

function discoveryFor(service: Service, passthrough: boolean): DiscoveryType {
  if (passthrough) return 'ORIGINAL_DST';
  switch (service.resolution) {
    case 'STATIC':
      return 'STATIC';
    case 'DNS':
    case 'DNS_ROUND_ROBIN':
      return 'STRICT_DNS';
    default:
      return 'ORIGINAL_DST';
  }
}

/** Envoy's default healthy_panic_threshold. */
const ENVOY_PANIC_THRESHOLD = 50;

/**
 * Istio's connectionPool → Envoy thresholds: a field left unset (or 0) stays at Istio's
 * 2^32 − 1, never at Envoy's own smaller defaults.
 */
function circuitBreakers(policy: PolicyBlocks | undefined): CircuitBreakers {
  const tcp = policy?.connectionPool?.tcp;
  const http = policy?.connectionPool?.http;
  const or = (v: number | undefined, fallback: number): number => (v !== undefined && v > 0 ? v : fallback);
  return {
    maxConnections: or(tcp?.maxConnections, ISTIO_CIRCUIT_BREAKERS.maxConnections),
    maxPendingRequests: or(http?.http1MaxPendingRequests, ISTIO_CIRCUIT_BREAKERS.maxPendingRequests),
    maxRequests: or(http?.http2MaxRequests, ISTIO_CIRCUIT_BREAKERS.maxRequests),
    maxRetries: or(http?.maxRetries, ISTIO_CIRCUIT_BREAKERS.maxRetries),
  };
}

/**
 * Istio's outlierDetection → Envoy's (applyOutlierDetection): emitted only when configured.
 * Unset fields take Envoy's defaults: 5 consecutive 5xx, 10 s interval, 30 s base ejection,
 * 10% maximum ejection; gateway errors count only when set; ejections are capped at 300 s.
 */
function outlierDetection(policy: PolicyBlocks | undefined): OutlierDetection | undefined {
  const od = policy?.outlierDetection;
  if (od === undefined) return undefined;
  return {
    consecutive5xx: od.consecutive5xxErrors ?? od.consecutiveErrors ?? 5,
    consecutiveGatewayFailure: od.consecutiveGatewayErrors ?? 0,
    intervalMs: od.interval ?? 10_000,
    baseEjectionTimeMs: od.baseEjectionTime ?? 30_000,
    maxEjectionTimeMs: 300_000,
    maxEjectionPercent: od.maxEjectionPercent !== undefined && od.maxEjectionPercent > 0 ? od.maxEjectionPercent : 10,
  };
}

/**
 * Secure naming: the identities a service's servers may present. A DestinationRule's
 * subjectAltNames replace the rest; otherwise the ServiceEntry's subjectAltNames together with
 * the service accounts of its endpoints (Istio's service accounts of a service).
 */
function expectedIdentities(service: Service, fromRule: readonly string[] | undefined, mesh: MeshSettings): string[] {
  if (fromRule !== undefined && fromRule.length > 0) return [...fromRule];
  const identities = new Set<string>(service.resource.spec.subjectAltNames ?? []);
  for (const e of service.endpoints) if (e.serviceAccount) identities.add(spiffeUri(mesh.trustDomain, service.namespace, e.serviceAccount));
  return [...identities];
}

function spiffeUri(trustDomain: string, namespace: string, serviceAccount: string): string {
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
}

/**
 * DestinationRule tls → the cluster's transport: ISTIO_MUTUAL explicitly, or Istio auto mTLS
 * when no rule sets TLS, for MESH_INTERNAL services only (and then only endpoints labelled as
 * sidecars get it). DISABLE is plaintext.
 * SIMPLE and MUTUAL originate TLS with the DestinationRule's certificate files (validation has
 * refused credentialName and MUTUAL without a client certificate and key). Their SNI is
 * `tls.sni`, else the service hostname (Envoy's auto_sni would use each request's Host; skiff's
 * pools are per endpoint, so the service hostname stands in). Only the DestinationRule's
 * subjectAltNames apply to them, as in Istio.
 */
function upstreamTls(service: Service, policy: PolicyBlocks | undefined, name: string, passthrough: boolean, mesh: MeshSettings): UpstreamTls | undefined {
  // (passthrough: an ORIGINAL_DST cluster, resolution NONE or the PASSTHROUGH balancer.)
  const tls = policy?.tls;
  const mode = tls?.mode;
  // A tls block without a mode is DISABLE, as in Istio; only no tls block at all is auto mTLS.
  if (mode === 'DISABLE' || (tls !== undefined && mode === undefined)) return undefined;
  // Auto mTLS never applies to passthrough clusters; an explicit ISTIO_MUTUAL always does.
  if (mode === 'SIMPLE' || mode === 'MUTUAL') {
    const sni = tls!.sni ?? (service.hostname.includes('*') || isIP(service.hostname) !== 0 ? undefined : service.hostname);
    return {
      mode,
      ...(sni !== undefined && sni !== '' ? { sni } : {}),
      subjectAltNames: [...(tls!.subjectAltNames ?? [])],
      ...(tls!.caCertificates !== undefined && tls!.caCertificates !== '' ? { caCertificates: tls!.caCertificates } : {}),
      ...(mode === 'MUTUAL' && tls!.clientCertificate !== undefined ? { clientCertificate: tls!.clientCertificate } : {}),
      ...(mode === 'MUTUAL' && tls!.privateKey !== undefined ? { privateKey: tls!.privateKey } : {}),
    };
  }
  if (tls === undefined && (passthrough || !mesh.enableAutoMtls || service.resource.spec.location !== 'MESH_INTERNAL')) return undefined;
  return {
    mode: 'ISTIO_MUTUAL',
    auto: tls === undefined,
    sni: tls?.sni ?? name,
    subjectAltNames: expectedIdentities(service, tls?.subjectAltNames, mesh),
    trustDomain: mesh.trustDomain,
  };
}

/**
 * Istio's upstream protocol: HTTP/2 for ports declared GRPC or HTTP2, and for other HTTP ports
 * when the DestinationRule says UPGRADE (Istio's own default, h2UpgradePolicy DEFAULT, keeps
 * HTTP/1.1).
 */
function speaksHttp2(port: ServicePort, policy: string | undefined): boolean {
  const p = port.protocol;
  if (p === 'GRPC' || p === 'HTTP2') return true;
  return policy === 'UPGRADE' && port.http && p !== 'GRPC-WEB';
}

export function buildClusters(registry: ReadonlyMap<string, Service>, rules: DestinationRuleIndex, mesh: MeshSettings): Cluster[] {
  const clusters: Cluster[] = [];
  for (const service of registry.values()) {
    const dr = rules.find(service.hostname, service.namespace);
    for (const port of service.ports) {
      const variants: Array<{ subset?: string; labels?: Readonly<Record<string, string>> }> = [{}];
      for (const s of dr?.spec.subsets ?? []) variants.push({ subset: s.name!, labels: s.labels ?? {} });
      for (const v of variants) {
        const policy = effectivePolicy(dr, port.number, v.subset);
        const balancing = loadBalancing(policy?.loadBalancer);
        const http = policy?.connectionPool?.http;
        const outlier = outlierDetection(policy);
        const name = clusterName(port.number, v.subset, service.hostname);
        const discovery = discoveryFor(service, balancing.passthrough);
        const tls = upstreamTls(service, policy, name, discovery === 'ORIGINAL_DST', mesh);
        clusters.push({
          name,
          discovery,
          ...(tls !== undefined ? { tls } : {}),
          ...(http?.useClientProtocol === true ? { protocol: 'client' as const } : speaksHttp2(port, http?.h2UpgradePolicy) ? { protocol: 'http2' as const } : {}),
          ...(http?.maxConcurrentStreams !== undefined && http.maxConcurrentStreams > 0 ? { maxConcurrentStreams: http.maxConcurrentStreams } : {}),
          lb: balancing.lb,
          ...(balancing.hashPolicy !== undefined ? { hashPolicy: balancing.hashPolicy } : {}),
          endpoints: endpointsFor(service, port, v.labels),
          connectTimeoutMs: policy?.connectionPool?.tcp?.connectTimeout ?? mesh.connectTimeoutMs,
          dnsRefreshRateMs: mesh.dnsRefreshRateMs,
          idleTimeoutMs: http?.idleTimeout ?? DEFAULT_IDLE_TIMEOUT_MS,
          maxRequestsPerConnection: http?.maxRequestsPerConnection ?? 0,
          circuitBreakers: circuitBreakers(policy),
          ...(outlier !== undefined ? { outlierDetection: outlier } : {}),
          // Istio sets the panic threshold from minHealthPercent (default 0: never panic) along
          // with outlier detection; without it no host is ever unhealthy.
          healthyPanicThreshold: outlier !== undefined ? (policy?.outlierDetection?.minHealthPercent ?? 0) : ENVOY_PANIC_THRESHOLD,
          service: { host: service.hostname, namespace: service.namespace, port: port.number, ...(v.subset !== undefined ? { subset: v.subset } : {}) },
        });
      }
    }
  }
  const base = {
    lb: { kind: 'ROUND_ROBIN' } as const,
    endpoints: [],
    connectTimeoutMs: mesh.connectTimeoutMs,
    dnsRefreshRateMs: mesh.dnsRefreshRateMs,
    idleTimeoutMs: DEFAULT_IDLE_TIMEOUT_MS,
    maxRequestsPerConnection: 0,
    circuitBreakers: ISTIO_CIRCUIT_BREAKERS,
    healthyPanicThreshold: ENVOY_PANIC_THRESHOLD,
  };
  clusters.push({ ...base, name: PASSTHROUGH_CLUSTER, discovery: 'ORIGINAL_DST' });
  clusters.push({ ...base, name: BLACKHOLE_CLUSTER, discovery: 'STATIC' });
  // Istio's inbound cluster speaks to the application in the protocol the client used, so gRPC
  // and HTTP/2 reach it as HTTP/2.
  clusters.push({ ...base, name: INBOUND_PASSTHROUGH_CLUSTER, discovery: 'ORIGINAL_DST', sourceAddress: INBOUND_SOURCE_ADDRESS, protocol: 'client' });
  return clusters;
}
