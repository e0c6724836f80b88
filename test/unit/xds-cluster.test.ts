/**
 * Envoy v3 Cluster → model (src/config/xds/cluster.ts): every cluster of the real istiod config
 * dumps, spot checks of the Istio shapes, Envoy's defaults, lowerCamelCase input, and refusals
 * with their exact field paths.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { INBOUND_PASSTHROUGH_CLUSTER_IPV4, PASSTHROUGH_CLUSTER, translateCluster, type XdsCluster } from '../../src/config/xds/cluster.js';
import { ENVOY_CIRCUIT_BREAKERS, INBOUND_SOURCE_ADDRESS, ISTIO_CIRCUIT_BREAKERS } from '../../src/model/index.js';

const DUMPS = '/work/shared/xds-data';
const FILES = ['DeathStarBench__config_dump.json', 'istio__configdump.json', 'istio__describe__http_config.json'];
const CLUSTER_TYPE = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';
const TLS_TYPE = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';

type Json = Record<string, unknown>;

function clustersOf(file: string): Json[] {
  const d = JSON.parse(readFileSync(`${DUMPS}/${file}`, 'utf8')) as { configs: Json[] };
  const out: Json[] = [];
  for (const c of d.configs) {
    for (const k of ['static_clusters', 'dynamic_active_clusters', 'staticClusters', 'dynamicActiveClusters']) {
      for (const e of (c[k] as Array<{ cluster: Json }> | undefined) ?? []) out.push(e.cluster);
    }
  }
  return out;
}

function dumped(file: string, name: string): Json {
  const c = clustersOf(file).find((x) => x['name'] === name);
  if (c === undefined) throw new Error(`no cluster ${name} in ${file}`);
  return c;
}

function ok(json: unknown): XdsCluster {
  const r = translateCluster(json);
  expect(r.problems).toEqual([]);
  return r.cluster!;
}

const problems = (json: unknown): Array<{ path: string; message: string }> => translateCluster(json).problems;
const paths = (json: unknown): string[] => problems(json).map((p) => p.path);

/** The Istio mTLS socket istiod sends (DeathStarBench shape), for hand-made clusters. */
function istioTls(sni: string, sans: string[] = [], alpn = ['istio-peer-exchange', 'istio']): Json {
  const sds = { api_config_source: { api_type: 'GRPC', grpc_services: [{ envoy_grpc: { cluster_name: 'sds-grpc' } }], transport_api_version: 'V3' }, resource_api_version: 'V3' };
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: {
      '@type': TLS_TYPE,
      common_tls_context: {
        tls_params: { tls_minimum_protocol_version: 'TLSv1_2', tls_maximum_protocol_version: 'TLSv1_3' },
        alpn_protocols: alpn,
        tls_certificate_sds_secret_configs: [{ name: 'default', sds_config: sds }],
        combined_validation_context: {
          default_validation_context: { match_subject_alt_names: sans.map((exact) => ({ exact })) },
          validation_context_sds_secret_config: { name: 'ROOTCA', sds_config: sds },
        },
      },
      sni,
    },
  };
}

const eds = (extra: Json = {}): Json => ({ name: 'c', type: 'EDS', eds_cluster_config: { eds_config: { ads: {} } }, ...extra });

/** Renames every object key to lowerCamelCase (proto3 JSON names), Struct keys included, as istioctl does not. */
function camel(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(camel);
  if (typeof v !== 'object' || v === null) return v;
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k.startsWith('@') || k.includes('.') ? k : k.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase()), camel(x)]));
}

// === the real dumps ===

describe('istiod config dumps', () => {
  it('translates every cluster; the only refusal is TCP keepalive on the bootstrap xds-grpc cluster', () => {
    const refused: string[] = [];
    let count = 0;
    for (const file of FILES) {
      for (const c of clustersOf(file)) {
        count++;
        for (const p of translateCluster(c).problems) refused.push(`${file} ${String(c['name'])}: ${p.path}: ${p.message}`);
      }
    }
    expect(count).toBe(138 + 5 + 23 + 5 + 1);
    expect(refused).toEqual([
      'DeathStarBench__config_dump.json xds-grpc: upstream_connection_options.tcp_keepalive: not supported: TCP keepalive on upstream connections is not supported',
      'istio__configdump.json xds-grpc: upstream_connection_options.tcp_keepalive: not supported: TCP keepalive on upstream connections is not supported',
    ]);
  });

  it('an outbound EDS cluster with auto mTLS (DeathStarBench details)', () => {
    const name = 'outbound|9080||details.default.svc.cluster.local';
    expect(ok(dumped(FILES[0]!, name))).toEqual({
      name,
      discovery: 'STATIC',
      lb: { kind: 'LEAST_REQUEST', choiceCount: 2 },
      endpoints: [],
      eds: { serviceName: name, localityWeighted: true },
      connectTimeoutMs: 10_000,
      dnsRefreshRateMs: 5_000,
      idleTimeoutMs: 3_600_000,
      maxRequestsPerConnection: 0,
      circuitBreakers: ISTIO_CIRCUIT_BREAKERS,
      healthyPanicThreshold: 50,
      tls: {
        mode: 'ISTIO_MUTUAL',
        auto: true,
        sni: 'outbound_.9080_._.details.default.svc.cluster.local',
        subjectAltNames: ['spiffe://cluster.local/ns/default/sa/bookinfo-details'],
        trustDomain: 'cluster.local',
      },
      service: { host: 'details.default.svc.cluster.local', namespace: 'default', port: 9080 },
    });
  });

  it('PassthroughCluster: original destination, the client protocol, 300 s idle timeout', () => {
    const c = ok(dumped(FILES[0]!, PASSTHROUGH_CLUSTER));
    expect(c).toMatchObject({ name: 'PassthroughCluster', discovery: 'ORIGINAL_DST', protocol: 'client', idleTimeoutMs: 300_000, circuitBreakers: ISTIO_CIRCUIT_BREAKERS });
    expect(c.tls).toBeUndefined();
    expect(c.eds).toBeUndefined();
    expect(c.sourceAddress).toBeUndefined();
  });

  it('InboundPassthroughClusterIpv4 keeps its xDS name and binds 127.0.0.6', () => {
    const c = ok(dumped(FILES[0]!, INBOUND_PASSTHROUGH_CLUSTER_IPV4));
    expect(c).toMatchObject({ name: 'InboundPassthroughClusterIpv4', discovery: 'ORIGINAL_DST', protocol: 'client', sourceAddress: { ipv4: '127.0.0.6', ipv6: '127.0.0.6' } });
    const v6 = ok(dumped(FILES[1]!, 'InboundPassthroughClusterIpv6'));
    expect(v6.sourceAddress).toEqual({ ipv4: '::6', ipv6: INBOUND_SOURCE_ADDRESS.ipv6 });
    expect(v6.maxConcurrentStreams).toBe(1073741824);
  });

  it('an inbound cluster: original destination from 127.0.0.6, the local service from its metadata', () => {
    expect(ok(dumped(FILES[0]!, 'inbound|8083||'))).toMatchObject({
      discovery: 'ORIGINAL_DST',
      protocol: 'client',
      sourceAddress: { ipv4: '127.0.0.6' },
      service: { host: 'geo.hr2.svc.cluster.local', namespace: 'hr2', port: 8083 },
      healthyPanicThreshold: 50,
    });
  });

  it('a DestinationRule subset cluster (istioctl describe fixture)', () => {
    const c = ok(dumped(FILES[2]!, 'outbound|9080|v1|productpage.default.svc.cluster.local'));
    expect(c.service).toEqual({ host: 'productpage.default.svc.cluster.local', namespace: 'default', port: 9080, subset: 'v1' });
    expect(c.tls).toMatchObject({ auto: true, subjectAltNames: ['spiffe://cluster.local/ns/default/sa/bookinfo-productpage', 'spiffe://cluster.local/ns/default/sa/default'] });
    // No common_lb_config: locality weights are not used.
    expect(c.eds).toEqual({ serviceName: 'outbound|9080|v1|productpage.default.svc.cluster.local', localityWeighted: false });
  });

  it('lowerCamelCase (Istio 1.10 dump): default ROUND_ROBIN, raw_buffer without typed_config', () => {
    const c = ok(dumped(FILES[1]!, 'outbound|9080||reviews.default.svc.cluster.local'));
    expect(c.lb).toEqual({ kind: 'ROUND_ROBIN' });
    expect(c.tls).toMatchObject({ mode: 'ISTIO_MUTUAL', auto: true, sni: 'outbound_.9080_._.reviews.default.svc.cluster.local' });
  });

  it('the same cluster reads alike in snake_case and lowerCamelCase', () => {
    const snake = dumped(FILES[0]!, 'outbound|9080||details.default.svc.cluster.local');
    expect(ok(camel(snake))).toEqual(ok(snake));
  });

  it('bootstrap clusters: a pipe endpoint over HTTP/2, a STRICT_DNS name IPv4 only', () => {
    const sds = ok(dumped(FILES[0]!, 'sds-grpc'));
    expect(sds).toMatchObject({ discovery: 'STATIC', protocol: 'http2', connectTimeoutMs: 1000, circuitBreakers: ENVOY_CIRCUIT_BREAKERS });
    expect(sds.endpoints).toEqual([{ address: 'unix://./var/run/secrets/workload-spiffe-uds/socket', port: 0, weight: 1, labels: {} }]);
    const zipkin = ok(dumped(FILES[0]!, 'zipkin'));
    expect(zipkin).toMatchObject({ discovery: 'STRICT_DNS', dnsRefreshRateMs: 30_000, dnsLookupFamily: 'V4_ONLY' });
    expect(zipkin.endpoints).toEqual([{ address: 'zipkin.istio-system', port: 9411, weight: 1, labels: {} }]);
    // 1.10: the deprecated http2_protocol_options form.
    expect(ok(dumped(FILES[1]!, 'sds-grpc')).protocol).toBe('http2');
    expect(ok(dumped(FILES[0]!, 'BlackHoleCluster'))).toMatchObject({ discovery: 'STATIC', endpoints: [], connectTimeoutMs: 10_000 });
  });
});

// === defaults and translation ===

describe('defaults and fields', () => {
  it("takes Envoy's defaults for what is unset", () => {
    expect(ok({ name: 'c' })).toEqual({
      name: 'c',
      discovery: 'STATIC',
      lb: { kind: 'ROUND_ROBIN' },
      endpoints: [],
      connectTimeoutMs: 5_000,
      dnsRefreshRateMs: 5_000,
      idleTimeoutMs: 3_600_000,
      maxRequestsPerConnection: 0,
      circuitBreakers: ENVOY_CIRCUIT_BREAKERS,
      healthyPanicThreshold: 50,
    });
  });

  it('accepts a config dump @type and checks it', () => {
    expect(ok({ '@type': CLUSTER_TYPE, name: 'c' }).name).toBe('c');
    expect(paths({ '@type': 'type.googleapis.com/envoy.config.listener.v3.Listener', name: 'c' })).toEqual(['@type']);
  });

  it('EDS service_name defaults to the cluster name', () => {
    expect(ok(eds()).eds).toEqual({ serviceName: 'c', localityWeighted: false });
    expect(ok(eds({ eds_cluster_config: { eds_config: { ads: {} }, service_name: 'x' }, common_lb_config: { locality_weighted_lb_config: {} } })).eds).toEqual({
      serviceName: 'x',
      localityWeighted: true,
    });
  });

  it('load balancing policies and their configs', () => {
    expect(ok({ name: 'c', lb_policy: 'LEAST_REQUEST', least_request_lb_config: { choice_count: 3 } }).lb).toEqual({ kind: 'LEAST_REQUEST', choiceCount: 3 });
    expect(ok({ name: 'c', lb_policy: 'RANDOM' }).lb).toEqual({ kind: 'RANDOM' });
    expect(ok({ name: 'c', lb_policy: 'RING_HASH' }).lb).toEqual({ kind: 'RING_HASH', minimumRingSize: 1024, maximumRingSize: 8388608 });
    expect(ok({ name: 'c', lb_policy: 'RING_HASH', ring_hash_lb_config: { minimum_ring_size: '2048', hash_function: 'MURMUR_HASH_2' } }).lb).toMatchObject({ minimumRingSize: 2048 });
    expect(ok({ name: 'c', lb_policy: 'MAGLEV' }).lb).toEqual({ kind: 'MAGLEV', tableSize: 65537 });
    expect(problems({ name: 'c', lb_policy: 'MAGLEV', maglev_lb_config: { table_size: 1000 } })).toEqual([{ path: 'maglev_lb_config.table_size', message: 'must be a prime number no greater than 5000011' }]);
    expect(paths({ name: 'c', lb_policy: 'LEAST_REQUEST', least_request_lb_config: { choice_count: 1 } })).toEqual(['least_request_lb_config.choice_count']);
    expect(paths({ name: 'c', lb_policy: 'LEAST_REQUEST', least_request_lb_config: { active_request_bias: { default_value: 2, runtime_key: 'k' } } })).toEqual([
      'least_request_lb_config.active_request_bias',
    ]);
  });

  it('panic threshold, circuit breakers (DEFAULT priority; unset limits at Envoy defaults)', () => {
    const c = ok({
      name: 'c',
      common_lb_config: { healthy_panic_threshold: { value: 0 } },
      circuit_breakers: { thresholds: [{ max_connections: 10, track_remaining: true }, { priority: 'HIGH', max_connections: 99 }] },
    });
    expect(c.healthyPanicThreshold).toBe(0);
    expect(c.circuitBreakers).toEqual({ ...ENVOY_CIRCUIT_BREAKERS, maxConnections: 10 });
  });

  it('outlier detection as istiod sends it, and Envoy defaults for the rest', () => {
    const c = ok({
      name: 'c',
      outlier_detection: { consecutive_5xx: 0, enforcing_consecutive_5xx: 0, consecutive_gateway_failure: 3, enforcing_consecutive_gateway_failure: 100, interval: '5s', base_ejection_time: '60s', max_ejection_percent: 50, enforcing_success_rate: 0 },
    });
    expect(c.outlierDetection).toEqual({ consecutive5xx: 0, consecutiveGatewayFailure: 3, intervalMs: 5_000, baseEjectionTimeMs: 60_000, maxEjectionTimeMs: 300_000, maxEjectionPercent: 50 });
    expect(ok({ name: 'c', outlier_detection: { enforcing_success_rate: 0 } }).outlierDetection).toEqual({
      consecutive5xx: 5,
      consecutiveGatewayFailure: 0,
      intervalMs: 10_000,
      baseEjectionTimeMs: 30_000,
      maxEjectionTimeMs: 300_000,
      maxEjectionPercent: 10,
    });
  });

  it('HTTP protocol options: explicit HTTP/2, downstream protocol, idle timeout, requests per connection', () => {
    const typed = (body: Json): Json => ({
      name: 'c',
      typed_extension_protocol_options: { 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': { '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions', ...body } },
    });
    expect(ok(typed({ explicit_http_config: { http2_protocol_options: { max_concurrent_streams: 100 } } }))).toMatchObject({ protocol: 'http2', maxConcurrentStreams: 100 });
    expect(ok(typed({ explicit_http_config: { http_protocol_options: {} } })).protocol).toBeUndefined();
    expect(ok(typed({ use_downstream_protocol_config: { http_protocol_options: {} } })).protocol).toBeUndefined();
    expect(ok(typed({ common_http_protocol_options: { idle_timeout: '30s', max_requests_per_connection: 1 } }))).toMatchObject({ idleTimeoutMs: 30_000, maxRequestsPerConnection: 1 });
    expect(ok({ name: 'c', http2_protocol_options: {}, protocol_selection: 'USE_DOWNSTREAM_PROTOCOL', max_requests_per_connection: 5 })).toMatchObject({ protocol: 'client', maxRequestsPerConnection: 5 });
    expect(paths({ ...typed({ explicit_http_config: { http2_protocol_options: {} } }), http2_protocol_options: {} })).toEqual(['http2_protocol_options']);
    expect(paths(typed({ auto_config: { http2_protocol_options: {} } }))).toEqual(['typed_extension_protocol_options.envoy.extensions.upstreams.http.v3.HttpProtocolOptions.auto_config']);
  });

  it('ISTIO_MUTUAL for every host from a plain transport_socket (DestinationRule ISTIO_MUTUAL)', () => {
    const c = ok(eds({ transport_socket: istioTls('outbound_.80_._.a.ns.svc.cluster.local', ['spiffe://td.example/ns/ns/sa/a']) }));
    expect(c.tls).toEqual({ mode: 'ISTIO_MUTUAL', auto: false, sni: 'outbound_.80_._.a.ns.svc.cluster.local', subjectAltNames: ['spiffe://td.example/ns/ns/sa/a'], trustDomain: 'cluster.local' });
    expect(translateCluster(eds({ transport_socket: istioTls('x') }), { trustDomain: 'td.example' }).cluster!.tls).toMatchObject({ trustDomain: 'td.example', subjectAltNames: [] });
  });

  it('TLS origination from files: inline file names and Istio file-cert / file-root SDS names', () => {
    const simple = ok(
      eds({
        transport_socket: {
          name: 'envoy.transport_sockets.tls',
          typed_config: { '@type': TLS_TYPE, sni: 'api.example.com', common_tls_context: { validation_context: { trusted_ca: { filename: '/etc/ca.pem' }, match_subject_alt_names: [{ exact: 'api.example.com' }] } } },
        },
      }),
    );
    expect(simple.tls).toEqual({ mode: 'SIMPLE', sni: 'api.example.com', subjectAltNames: ['api.example.com'], caCertificates: '/etc/ca.pem' });
    const mutual = ok(
      eds({
        transport_socket: {
          name: 'envoy.transport_sockets.tls',
          typed_config: {
            '@type': TLS_TYPE,
            common_tls_context: {
              tls_certificate_sds_secret_configs: [{ name: 'file-cert:/c/cert.pem~/c/key.pem', sds_config: { ads: {} } }],
              combined_validation_context: { default_validation_context: {}, validation_context_sds_secret_config: { name: 'file-root:/c/root.pem' } },
              alpn_protocols: ['h2', 'http/1.1'],
            },
          },
        },
      }),
    );
    expect(mutual.tls).toEqual({ mode: 'MUTUAL', subjectAltNames: [], caCertificates: '/c/root.pem', clientCertificate: '/c/cert.pem', privateKey: '/c/key.pem' });
    expect(ok(eds({ transport_socket: { name: 't', typed_config: { '@type': TLS_TYPE, common_tls_context: { validation_context: { system_root_certs: {} } } } } })).tls).toEqual({
      mode: 'SIMPLE',
      subjectAltNames: [],
    });
  });

  it('LOGICAL_DNS: STRICT_DNS using the first address of its one name', () => {
    const la = (n: number): Json => ({ cluster_name: 'c', endpoints: [{ lb_endpoints: Array.from({ length: n }, () => ({ endpoint: { address: { socket_address: { address: 'a.example', port_value: 80 } } } })) }] });
    expect(ok({ name: 'c', type: 'LOGICAL_DNS', load_assignment: la(1), dns_lookup_family: 'ALL' })).toMatchObject({ discovery: 'STRICT_DNS', firstAddressOnly: true });
    expect(ok({ name: 'c', type: 'LOGICAL_DNS', load_assignment: la(1), dns_lookup_family: 'ALL' }).dnsLookupFamily).toBeUndefined();
    // AUTO (the default): IPv6 when the name has any.
    expect(ok({ name: 'c', type: 'STRICT_DNS', load_assignment: la(1) }).dnsLookupFamily).toBe('V6_PREFERRED');
    expect(paths({ name: 'c', type: 'LOGICAL_DNS', load_assignment: la(2) })).toEqual(['load_assignment']);
    // STATIC endpoints must be IP addresses.
    expect(paths({ name: 'c', type: 'STATIC', load_assignment: la(1) })).toEqual(['load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address']);
  });
});

// === refusals ===

describe('refusals name the field', () => {
  it('unknown fields and unsupported types', () => {
    expect(problems({ name: 'c', colour: 'blue' })).toEqual([{ path: 'colour', message: 'unknown field' }]);
    expect(paths({ name: 'c', cluster_type: { name: 'envoy.clusters.dynamic_forward_proxy' } })).toEqual(['cluster_type']);
    expect(paths({ name: 'c', type: 'WHATEVER' })).toEqual(['type']);
    expect(paths({ name: 'c', health_checks: [{ timeout: '1s' }] })).toEqual(['health_checks']);
    expect(paths({ name: 'c', lb_subset_config: { subset_selectors: [{ keys: ['v'] }] } })).toEqual(['lb_subset_config']);
    expect(paths({ name: 'c', lb_policy: 'LOAD_BALANCING_POLICY_CONFIG' })).toEqual(['lb_policy']);
    expect(paths({ type: 'STATIC' })).toEqual(['name']);
  });

  it('ORIGINAL_DST needs CLUSTER_PROVIDED and no endpoints; CLUSTER_PROVIDED needs ORIGINAL_DST', () => {
    expect(paths({ name: 'c', type: 'ORIGINAL_DST' })).toEqual(['lb_policy']);
    expect(paths({ name: 'c', lb_policy: 'CLUSTER_PROVIDED' })).toEqual(['lb_policy']);
    expect(paths({ name: 'c', type: 'ORIGINAL_DST', lb_policy: 'CLUSTER_PROVIDED', original_dst_lb_config: { use_http_header: true } })).toEqual(['original_dst_lb_config.use_http_header']);
  });

  it('outlier detection: success rate on by default, partial enforcement, failure percentage', () => {
    expect(problems({ name: 'c', outlier_detection: { consecutive_5xx: 3 } })).toEqual([
      { path: 'outlier_detection.enforcing_success_rate', message: 'not supported: success-rate ejection (on unless enforcing_success_rate is 0) is not supported' },
    ]);
    expect(paths({ name: 'c', outlier_detection: { enforcing_success_rate: 0, enforcing_consecutive_5xx: 50 } })).toEqual(['outlier_detection.enforcing_consecutive_5xx']);
    expect(paths({ name: 'c', outlier_detection: { enforcing_success_rate: 0, enforcing_failure_percentage: 100 } })).toEqual(['outlier_detection.enforcing_failure_percentage']);
    expect(paths({ name: 'c', outlier_detection: { enforcing_success_rate: 0, split_external_local_origin_errors: true } })).toEqual(['outlier_detection.split_external_local_origin_errors']);
  });

  it('circuit breakers: retry budgets, per-host thresholds, DEFAULT twice', () => {
    expect(paths({ name: 'c', circuit_breakers: { thresholds: [{ retry_budget: { budget_percent: { value: 20 } } }], per_host_thresholds: [{ max_connections: 1 }] } })).toEqual([
      'circuit_breakers.per_host_thresholds',
      'circuit_breakers.thresholds[0].retry_budget',
    ]);
    expect(paths({ name: 'c', circuit_breakers: { thresholds: [{}, { priority: 'DEFAULT' }] } })).toEqual(['circuit_breakers.thresholds[1]']);
  });

  it('transport sockets other than Istio mTLS, raw_buffer and file-based TLS', () => {
    const base = 'transport_socket_matches[0].transport_socket.typed_config.common_tls_context';
    expect(paths(eds({ transport_socket: { name: 'envoy.transport_sockets.alts', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.alts.v3.Alts' } } }))).toEqual([
      'transport_socket.typed_config',
    ]);
    expect(paths(eds({ transport_socket_matches: [{ name: 'm', match: { tlsMode: 'istio' }, transport_socket: istioTls('s', [], ['istio', 'grpc-exp']) }] }))).toEqual([`${base}.alpn_protocols[1]`]);
    expect(paths(eds({ transport_socket_matches: [{ name: 'm', match: { foo: 'bar' }, transport_socket: istioTls('s') }] }))).toEqual(['transport_socket_matches[0]']);
    // TLS that verifies nothing: Envoy would not check the server.
    expect(paths(eds({ transport_socket: { name: 't', typed_config: { '@type': TLS_TYPE, sni: 'x' } } }))).toEqual(['transport_socket.typed_config.common_tls_context']);
    expect(paths(eds({ transport_socket: { name: 't', typed_config: { '@type': TLS_TYPE, common_tls_context: { validation_context: { trusted_ca: { inline_string: 'PEM' } } } } } }))).toEqual([
      'transport_socket.typed_config.common_tls_context.validation_context.trusted_ca.inline_string',
      // (and with no readable roots, nothing verifies the server)
      'transport_socket.typed_config.common_tls_context',
    ]);
    const prefixSan = istioTls('s');
    (((prefixSan['typed_config'] as Json)['common_tls_context'] as Json)['combined_validation_context'] as Json)['default_validation_context'] = { match_subject_alt_names: [{ prefix: 'spiffe://' }] };
    expect(paths(eds({ transport_socket: prefixSan }))).toEqual(['transport_socket.typed_config.common_tls_context.combined_validation_context.default_validation_context.match_subject_alt_names[0].prefix']);
  });

  it('upstream filters other than metadata exchange; EDS sources other than ADS; bind ports; keepalive', () => {
    expect(paths({ name: 'c', filters: [{ name: 'f', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC' } }] })).toEqual(['filters[0].typed_config']);
    expect(paths(eds({ eds_cluster_config: { eds_config: { api_config_source: { api_type: 'GRPC' } } } }))).toEqual(['eds_cluster_config.eds_config.api_config_source']);
    expect(paths({ name: 'c', upstream_bind_config: { source_address: { address: '127.0.0.6', port_value: 9 } } })).toEqual(['upstream_bind_config.source_address.port_value']);
    expect(paths({ name: 'c', typed_extension_protocol_options: { 'envoy.extensions.upstreams.tcp.v3.TcpProtocolOptions': { '@type': 'type.googleapis.com/envoy.extensions.upstreams.tcp.v3.TcpProtocolOptions' } } })).toEqual([
      'typed_extension_protocol_options.envoy.extensions.upstreams.tcp.v3.TcpProtocolOptions',
    ]);
  });
});
