/**
 * Envoy v3 ClusterLoadAssignment → model endpoints (src/config/xds/endpoints.ts), and the upstream
 * cluster honouring what they carry: priorities, EDS health and locality weights.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { ClusterSpec } from '../../src/compile/snapshot.js';
import { translateClusterLoadAssignment } from '../../src/config/xds/endpoints.js';
import { ENVOY_CIRCUIT_BREAKERS, TLS_MODE_LABEL, type Endpoint } from '../../src/model/index.js';
import { createCluster, type Cluster } from '../../src/upstream/cluster.js';

const DUMPS = '/work/shared/xds-data';
const CLA_TYPE = 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment';
type Json = Record<string, unknown>;

function assignmentsOf(file: string): Json[] {
  const d = JSON.parse(readFileSync(`${DUMPS}/${file}`, 'utf8')) as { configs: Json[] };
  const out: Json[] = [];
  for (const c of d.configs) {
    for (const k of ['static_endpoint_configs', 'dynamic_endpoint_configs']) {
      for (const e of (c[k] as Array<{ endpoint_config: Json }> | undefined) ?? []) out.push(e.endpoint_config);
    }
  }
  return out;
}

function ok(json: unknown, options: Parameters<typeof translateClusterLoadAssignment>[1] = {}): Endpoint[] {
  const r = translateClusterLoadAssignment(json, options);
  expect(r.problems).toEqual([]);
  return r.endpoints;
}
const paths = (json: unknown): string[] => translateClusterLoadAssignment(json).problems.map((p) => p.path);

const lbEndpoint = (address: string, extra: Json = {}): Json => ({ endpoint: { address: { socket_address: { address, port_value: 80 } } }, ...extra });
const cla = (...localities: Json[]): Json => ({ cluster_name: 'c', endpoints: localities });

describe('istiod config dumps', () => {
  it('translates every assignment with no problems', () => {
    const files = ['DeathStarBench__config_dump.json', 'istio__endpoint__configdump.json'];
    const all = files.flatMap((f) => assignmentsOf(f).map((a) => ({ f, a })));
    expect(all.length).toBe(138 + 5 + 32 + 5);
    for (const { f, a } of all) expect(translateClusterLoadAssignment(a, { localityWeighted: true }).problems, `${f} ${String(a['cluster_name'])}`).toEqual([]);
  });

  it('reviews: three workloads with sidecars, labelled as the Istio-YAML path labels them', () => {
    const a = assignmentsOf('istio__endpoint__configdump.json').find((x) => x['cluster_name'] === 'outbound|9080||reviews.default.svc.cluster.local')!;
    const r = translateClusterLoadAssignment(a, { localityWeighted: true });
    expect(r.clusterName).toBe('outbound|9080||reviews.default.svc.cluster.local');
    expect(r.endpoints.map((e) => e.labels['service.istio.io/workload-name']).sort()).toEqual(['reviews-v1', 'reviews-v2', 'reviews-v3']);
    expect(r.endpoints[0]).toEqual({
      address: '10.244.0.192',
      port: 9080,
      weight: 1,
      labels: {
        [TLS_MODE_LABEL]: 'istio',
        'service.istio.io/workload-name': 'reviews-v3',
        'service.istio.io/canonical-name': 'reviews',
        'service.istio.io/canonical-revision': 'v3',
        'topology.istio.io/cluster': 'Kubernetes',
      },
    });
  });
});

describe('translation', () => {
  it('priorities, weights, locality labels, pipes; a config dump @type', () => {
    const eps = ok({
      '@type': CLA_TYPE,
      cluster_name: 'c',
      endpoints: [
        { locality: { region: 'r1', zone: 'z1', sub_zone: 's' }, lb_endpoints: [lbEndpoint('10.0.0.1', { load_balancing_weight: 3 })] },
        { priority: 1, lb_endpoints: [lbEndpoint('::1')] },
        { lb_endpoints: [{ endpoint: { address: { pipe: { path: '/run/s.sock' } } } }] },
      ],
      policy: { overprovisioning_factor: 140 },
    });
    expect(eps).toEqual([
      { address: '10.0.0.1', port: 80, weight: 3, labels: { 'topology.kubernetes.io/region': 'r1', 'topology.kubernetes.io/zone': 'z1', 'topology.istio.io/subzone': 's' } },
      { address: '::1', port: 80, weight: 1, labels: {}, priority: 1 },
      { address: 'unix:///run/s.sock', port: 0, weight: 1, labels: {} },
    ]);
  });

  it('health: UNKNOWN and HEALTHY usable; UNHEALTHY, DRAINING, TIMEOUT only in panic; DEGRADED refused', () => {
    const eps = ok(cla({ lb_endpoints: ['UNKNOWN', 'HEALTHY', 'UNHEALTHY', 'DRAINING', 'TIMEOUT'].map((s, i) => lbEndpoint(`10.0.0.${i}`, { health_status: s })) }));
    expect(eps.map((e) => e.healthy)).toEqual([undefined, undefined, false, false, false]);
    expect(paths(cla({ lb_endpoints: [lbEndpoint('10.0.0.1', { health_status: 'DEGRADED' })] }))).toEqual(['endpoints[0].lb_endpoints[0].health_status']);
  });

  it('locality weights fold into host weights only for locality-weighted clusters', () => {
    const a = cla(
      { load_balancing_weight: 1, lb_endpoints: [lbEndpoint('10.0.0.1'), lbEndpoint('10.0.0.2')] },
      { load_balancing_weight: 3, lb_endpoints: [lbEndpoint('10.0.0.3', { load_balancing_weight: 2 }), lbEndpoint('10.0.0.4')] },
      { lb_endpoints: [lbEndpoint('10.0.0.5')] },
    );
    expect(ok(a).map((e) => e.weight)).toEqual([1, 1, 2, 1, 1]);
    // Locality 1: 1/2 each; locality 2: 3 split 2:1; locality 3 has no weight: no traffic.
    expect(ok(a, { localityWeighted: true }).map((e) => [e.address, e.weight])).toEqual([
      ['10.0.0.1', 0.5],
      ['10.0.0.2', 0.5],
      ['10.0.0.3', 2],
      ['10.0.0.4', 1],
    ]);
  });

  it('lowerCamelCase reads alike', () => {
    const camel = { clusterName: 'c', endpoints: [{ loadBalancingWeight: 1, lbEndpoints: [{ endpoint: { address: { socketAddress: { address: '10.0.0.1', portValue: 80 } } }, healthStatus: 'HEALTHY', loadBalancingWeight: 1, metadata: { filterMetadata: { 'envoy.transport_socket_match': { tlsMode: 'istio' } } } }] }] };
    expect(ok(camel, { localityWeighted: true })).toEqual([{ address: '10.0.0.1', port: 80, weight: 1, labels: { [TLS_MODE_LABEL]: 'istio' } }]);
  });

  it('refusals with their paths', () => {
    expect(paths({ cluster_name: 'c', named_endpoints: { a: {} } })).toEqual(['named_endpoints']);
    expect(paths({ endpoints: [] })).toEqual(['cluster_name']);
    expect(paths(cla({ lb_endpoints: [lbEndpoint('backend.internal')] }))).toEqual(['endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address']);
    expect(paths(cla({ lb_endpoints: [lbEndpoint('10.0.0.1', { load_balancing_weight: 0 })] }))).toEqual(['endpoints[0].lb_endpoints[0].load_balancing_weight']);
    expect(paths(cla({ lb_endpoints: [{ endpoint_name: 'x' }] }))).toEqual(['endpoints[0].lb_endpoints[0].endpoint_name', 'endpoints[0].lb_endpoints[0].endpoint']);
    expect(paths(cla({ lb_endpoints: [lbEndpoint('10.0.0.1')], leds_cluster_locality_config: { leds_collection_name: 'x' } }))).toEqual(['endpoints[0].leds_cluster_locality_config']);
    expect(paths({ cluster_name: 'c', policy: { drop_overloads: [{ category: 'x' }] } })).toEqual(['policy.drop_overloads']);
    expect(paths(cla({ lb_endpoints: [lbEndpoint('10.0.0.1', { colour: 1 })] }))).toEqual(['endpoints[0].lb_endpoints[0].colour']);
  });
});

// === the upstream cluster honours priorities and health ===

function staticCluster(endpoints: readonly Endpoint[], extra: Partial<ClusterSpec> = {}): Cluster {
  const spec: ClusterSpec = {
    name: 'c',
    discovery: 'STATIC',
    lb: { kind: 'ROUND_ROBIN' },
    endpoints,
    connectTimeoutMs: 1000,
    dnsRefreshRateMs: 5000,
    idleTimeoutMs: 60_000,
    maxRequestsPerConnection: 0,
    circuitBreakers: ENVOY_CIRCUIT_BREAKERS,
    healthyPanicThreshold: 50,
    configHash: 'h',
    ...extra,
  };
  return createCluster(spec, {});
}

/** The addresses 40 picks reach. */
function picked(c: Cluster): string[] {
  const seen = new Set<string>();
  for (let i = 0; i < 40; i++) seen.add(c.pick({}, { host: '', port: 0 })?.address ?? 'none');
  return [...seen].sort();
}

const ep = (address: string, priority?: number, healthy?: boolean): Endpoint => ({
  address,
  port: 80,
  weight: 1,
  labels: {},
  ...(priority !== undefined ? { priority } : {}),
  ...(healthy !== undefined ? { healthy } : {}),
});

describe('upstream priorities (real StaticCluster)', () => {
  const OUTLIER = { consecutive5xx: 1, consecutiveGatewayFailure: 0, intervalMs: 60_000, baseEjectionTimeMs: 60_000, maxEjectionTimeMs: 60_000, maxEjectionPercent: 100 };

  it('only the highest priority level with an available host takes traffic', () => {
    const c = staticCluster([ep('10.0.1.1', 1), ep('10.0.0.1'), ep('10.0.0.2'), ep('10.0.2.1', 2)]);
    expect(picked(c)).toEqual(['10.0.0.1', '10.0.0.2']);
    c.retire();
  });

  it('fails over when the level is ejected, and back when it returns', () => {
    const c = staticCluster([ep('10.0.0.1'), ep('10.0.0.2'), ep('10.0.1.1', 1)], { outlierDetection: OUTLIER, healthyPanicThreshold: 0 });
    const byAddress = new Map(c.hosts.map((h) => [h.address, h]));
    byAddress.get('10.0.0.1')!.outlier!.putStatus(500);
    expect(picked(c)).toEqual(['10.0.0.2']);
    byAddress.get('10.0.0.2')!.outlier!.putStatus(500);
    expect(picked(c)).toEqual(['10.0.1.1']);
    byAddress.get('10.0.1.1')!.outlier!.putStatus(500);
    // Nothing available anywhere, panic disabled: no host.
    expect(picked(c)).toEqual(['none']);
    c.retire();
  });

  it('EDS-unhealthy hosts are skipped, count towards panic, and take traffic in panic', () => {
    expect(picked(staticCluster([ep('10.0.0.1', 0, false), ep('10.0.0.2'), ep('10.0.1.1', 1)]))).toEqual(['10.0.0.2']);
    // All of P0 unhealthy: P1.
    expect(picked(staticCluster([ep('10.0.0.1', 0, false), ep('10.0.1.1', 1)]))).toEqual(['10.0.1.1']);
    // One level, 1 of 3 healthy (33% < 50%): panic, every host.
    expect(picked(staticCluster([ep('10.0.0.1', 0, false), ep('10.0.0.2', 0, false), ep('10.0.0.3')]))).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3']);
    // Panic disabled: only the healthy one.
    expect(picked(staticCluster([ep('10.0.0.1', 0, false), ep('10.0.0.2', 0, false), ep('10.0.0.3')], { healthyPanicThreshold: 0 }))).toEqual(['10.0.0.3']);
    // None healthy in any level, panic on: the highest level's hosts.
    expect(picked(staticCluster([ep('10.0.0.1', 0, false), ep('10.0.1.1', 1, false)]))).toEqual(['10.0.0.1']);
  });
});
