/**
 * Envoy v3 resources shaped as istiod sends them to a sidecar (proto3 JSON, snake_case), for
 * tests that serve them over the test ADS server. Endpoints are on 127.0.0.1.
 */
const T = 'type.googleapis.com/';
const ADS = { ads: {}, initial_fetch_timeout: '0s', resource_api_version: 'V3' };
const UNLIMITED = { max_connections: 4294967295, max_pending_requests: 4294967295, max_requests: 4294967295, max_retries: 4294967295, track_remaining: true };

/** `outbound|<port>|<subset>|<host>`, an EDS cluster as istiod makes it for a service port (plaintext). */
export function edsCluster(host: string, port: number, options: { subset?: string; namespace?: string } = {}): Record<string, unknown> {
  const subset = options.subset ?? '';
  const name = `outbound|${port}|${subset}|${host}`;
  return {
    '@type': `${T}envoy.config.cluster.v3.Cluster`,
    name,
    type: 'EDS',
    eds_cluster_config: { eds_config: ADS, service_name: name },
    connect_timeout: '10s',
    lb_policy: 'LEAST_REQUEST',
    circuit_breakers: { thresholds: [UNLIMITED] },
    common_lb_config: { locality_weighted_lb_config: {} },
    metadata: { filter_metadata: { istio: { services: [{ host, name: host.split('.')[0], namespace: options.namespace ?? 'default' }], ...(subset !== '' ? { subset } : {}) } } },
  };
}

export const PASSTHROUGH_CLUSTER = {
  '@type': `${T}envoy.config.cluster.v3.Cluster`,
  name: 'PassthroughCluster',
  type: 'ORIGINAL_DST',
  connect_timeout: '10s',
  lb_policy: 'CLUSTER_PROVIDED',
  circuit_breakers: { thresholds: [UNLIMITED] },
};

export const BLACKHOLE_CLUSTER = { '@type': `${T}envoy.config.cluster.v3.Cluster`, name: 'BlackHoleCluster', type: 'STATIC', connect_timeout: '10s' };

/** A ClusterLoadAssignment with one locality of 127.0.0.1 endpoints. */
export function assignment(clusterName: string, ports: readonly number[], weights?: readonly number[]): object {
  return {
    '@type': `${T}envoy.config.endpoint.v3.ClusterLoadAssignment`,
    cluster_name: clusterName,
    endpoints: [
      {
        locality: {},
        lb_endpoints: ports.map((port, i) => ({
          endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } },
          health_status: 'HEALTHY',
          load_balancing_weight: weights?.[i] ?? 1,
        })),
        load_balancing_weight: ports.length,
      },
    ],
  };
}

const tcpProxy = (cluster: string): object => ({
  name: 'envoy.filters.network.tcp_proxy',
  typed_config: { '@type': `${T}envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy`, stat_prefix: cluster, cluster },
});

/** Istio's virtualOutbound on 15001: a loop guard and the catch-all (ALLOW_ANY or REGISTRY_ONLY). */
export function virtualOutbound(catchAll: 'PassthroughCluster' | 'BlackHoleCluster' = 'PassthroughCluster'): object {
  return {
    '@type': `${T}envoy.config.listener.v3.Listener`,
    name: 'virtualOutbound',
    address: { socket_address: { address: '0.0.0.0', port_value: 15001 } },
    filter_chains: [
      { filter_chain_match: { destination_port: 15001 }, filters: [tcpProxy('BlackHoleCluster')], name: 'virtualOutbound-blackhole' },
      { filters: [tcpProxy(catchAll)], name: 'virtualOutbound-catchall-tcp' },
    ],
    use_original_dst: true,
    traffic_direction: 'OUTBOUND',
  };
}

const HTTP_FILTERS = [
  { name: 'envoy.filters.http.fault', typed_config: { '@type': `${T}envoy.extensions.filters.http.fault.v3.HTTPFault` } },
  { name: 'envoy.filters.http.router', typed_config: { '@type': `${T}envoy.extensions.filters.http.router.v3.Router` } },
];

/** `0.0.0.0_<port>`: HTTP on that port for every address, routes by RDS name (the port). */
export function httpListener(port: number, routeName = String(port)): object {
  return {
    '@type': `${T}envoy.config.listener.v3.Listener`,
    name: `0.0.0.0_${port}`,
    address: { socket_address: { address: '0.0.0.0', port_value: port } },
    filter_chains: [
      {
        filter_chain_match: { transport_protocol: 'raw_buffer', application_protocols: ['http/1.1', 'h2c'] },
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': `${T}envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager`,
              stat_prefix: `outbound_0.0.0.0_${port}`,
              rds: { config_source: ADS, route_config_name: routeName },
              http_filters: HTTP_FILTERS,
            },
          },
        ],
      },
    ],
    default_filter_chain: { filters: [tcpProxy('PassthroughCluster')], name: 'PassthroughFilterChain' },
    listener_filters: [
      { name: 'envoy.filters.listener.tls_inspector', typed_config: { '@type': `${T}envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector` } },
      { name: 'envoy.filters.listener.http_inspector', typed_config: { '@type': `${T}envoy.extensions.filters.listener.http_inspector.v3.HttpInspector` } },
    ],
    traffic_direction: 'OUTBOUND',
    bind_to_port: false,
  };
}

export interface TestRoute {
  readonly prefix?: string;
  /** One cluster, or weighted clusters. */
  readonly to: string | ReadonlyArray<{ readonly name: string; readonly weight: number }>;
}

/** A RouteConfiguration with one virtual host per host (domains: the host) and the allow_any catch-all. */
export function routeConfig(name: string, hosts: Readonly<Record<string, readonly TestRoute[]>>): object {
  const route = (r: TestRoute): object => ({
    match: { prefix: r.prefix ?? '/' },
    route: {
      ...(typeof r.to === 'string' ? { cluster: r.to } : { weighted_clusters: { clusters: r.to.map((c) => ({ name: c.name, weight: c.weight })) } }),
      timeout: '0s',
      retry_policy: { retry_on: 'connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes', num_retries: 2, retriable_status_codes: [503] },
    },
    name: 'default',
  });
  return {
    '@type': `${T}envoy.config.route.v3.RouteConfiguration`,
    name,
    virtual_hosts: [
      ...Object.entries(hosts).map(([host, routes]) => ({ name: `${host}:${name}`, domains: [host], routes: routes.map(route) })),
      { name: 'allow_any', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'PassthroughCluster', timeout: '0s' }, name: 'allow_any' }] },
    ],
    validate_clusters: false,
  };
}

// === Istio sidecar shapes between pods: mTLS, per-VIP listeners, virtualInbound ===
//
// Shaped as istiod sends them to a sidecar (copied from the DeathStarBench config dump in
// shared/xds-data, Istio 1.18): endpoints on real pod addresses, auto mTLS by endpoint metadata,
// and the inbound chains of virtualInbound per application port.

/** An SDS secret reference as istiod writes it (`default`: the workload certificate, `ROOTCA`: the mesh root). */
const sds = (name: string): object => ({
  name,
  sds_config: {
    api_config_source: { api_type: 'GRPC', grpc_services: [{ envoy_grpc: { cluster_name: 'sds-grpc' } }], set_node_on_first_message_only: true, transport_api_version: 'V3' },
    initial_fetch_timeout: '0s',
    resource_api_version: 'V3',
  },
});

const USE_DOWNSTREAM_PROTOCOL = {
  'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
    '@type': `${T}envoy.extensions.upstreams.http.v3.HttpProtocolOptions`,
    use_downstream_protocol_config: { http_protocol_options: {}, http2_protocol_options: {} },
  },
};

const METADATA_EXCHANGE_NETWORK = { name: 'istio.metadata_exchange', typed_config: { '@type': `${T}envoy.tcp.metadataexchange.config.MetadataExchange`, protocol: 'istio-peer-exchange' } };
const ISTIO_STATS_NETWORK = { name: 'istio.stats', typed_config: { '@type': `${T}stats.PluginConfig` } };
const ISTIO_AUTHN = { name: 'istio_authn', typed_config: { '@type': `${T}udpa.type.v1.TypedStruct`, type_url: `${T}io.istio.network.authn.Config` } };

/** The HTTP filters of an istiod HCM (1.18), outbound or inbound. */
function istioHttpFilters(direction: 'outbound' | 'inbound'): object[] {
  return [
    {
      name: 'istio.metadata_exchange',
      typed_config: {
        '@type': `${T}envoy.extensions.filters.http.wasm.v3.Wasm`,
        config: {
          vm_config: { runtime: 'envoy.wasm.runtime.null', code: { local: { inline_string: 'envoy.wasm.metadata_exchange' } } },
          configuration: { '@type': `${T}envoy.tcp.metadataexchange.config.MetadataExchange` },
        },
      },
    },
    { name: 'envoy.filters.http.grpc_stats', typed_config: { '@type': `${T}envoy.extensions.filters.http.grpc_stats.v3.FilterConfig`, emit_filter_state: true, stats_for_all_methods: false } },
    ...(direction === 'outbound'
      ? [
          {
            name: 'istio.alpn',
            typed_config: {
              '@type': `${T}istio.envoy.config.filter.http.alpn.v2alpha1.FilterConfig`,
              alpn_override: [
                { alpn_override: ['istio-http/1.0', 'istio', 'http/1.0'] },
                { upstream_protocol: 'HTTP11', alpn_override: ['istio-http/1.1', 'istio', 'http/1.1'] },
                { upstream_protocol: 'HTTP2', alpn_override: ['istio-h2', 'istio', 'h2'] },
              ],
            },
          },
        ]
      : []),
    { name: 'envoy.filters.http.fault', typed_config: { '@type': `${T}envoy.extensions.filters.http.fault.v3.HTTPFault` } },
    { name: 'envoy.filters.http.cors', typed_config: { '@type': `${T}envoy.extensions.filters.http.cors.v3.Cors` } },
    { name: 'istio.stats', typed_config: { '@type': `${T}stats.PluginConfig`, ...(direction === 'inbound' ? { disable_host_header_fallback: true } : {}) } },
    { name: 'envoy.filters.http.router', typed_config: { '@type': `${T}envoy.extensions.filters.http.router.v3.Router` } },
  ];
}

const INSPECTORS = [
  { name: 'envoy.filters.listener.tls_inspector', typed_config: { '@type': `${T}envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector` } },
  { name: 'envoy.filters.listener.http_inspector', typed_config: { '@type': `${T}envoy.extensions.filters.listener.http_inspector.v3.HttpInspector` } },
];

/**
 * `outbound|<port>|<subset>|<host>`: an EDS cluster with Istio's auto-mTLS transport socket
 * matches (tlsMode-istio → mTLS expecting `serviceAccount`'s SPIFFE identity, tlsMode-disabled →
 * plaintext).
 */
export function meshEdsCluster(host: string, port: number, options: { serviceAccount: string; namespace?: string; subset?: string; trustDomain?: string }): object {
  const namespace = options.namespace ?? 'default';
  return {
    ...edsCluster(host, port, { namespace, ...(options.subset !== undefined ? { subset: options.subset } : {}) }),
    typed_extension_protocol_options: USE_DOWNSTREAM_PROTOCOL,
    filters: [METADATA_EXCHANGE_NETWORK],
    transport_socket_matches: [
      {
        name: 'tlsMode-istio',
        match: { tlsMode: 'istio' },
        transport_socket: {
          name: 'envoy.transport_sockets.tls',
          typed_config: {
            '@type': `${T}envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext`,
            common_tls_context: {
              tls_params: { tls_minimum_protocol_version: 'TLSv1_2', tls_maximum_protocol_version: 'TLSv1_3' },
              alpn_protocols: ['istio-peer-exchange', 'istio'],
              tls_certificate_sds_secret_configs: [sds('default')],
              combined_validation_context: {
                default_validation_context: { match_subject_alt_names: [{ exact: `spiffe://${options.trustDomain ?? 'cluster.local'}/ns/${namespace}/sa/${options.serviceAccount}` }] },
                validation_context_sds_secret_config: sds('ROOTCA'),
              },
            },
            sni: `outbound_.${port}_.${options.subset ?? ''}_.${host}`,
          },
        },
      },
      {
        name: 'tlsMode-disabled',
        match: {},
        transport_socket: { name: 'envoy.transport_sockets.raw_buffer', typed_config: { '@type': `${T}envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer` } },
      },
    ],
  };
}

export interface PodEndpoint {
  readonly address: string;
  readonly port: number;
  /** `istio`: the endpoint has a sidecar (auto mTLS); unset: plaintext. */
  readonly tlsMode?: 'istio';
  /** Istio's `workload` metadata: `<name>;<namespace>;<canonical service>;<revision>;<cluster>`. */
  readonly workload?: string;
}

/** A ClusterLoadAssignment of pod endpoints with Istio's endpoint metadata. */
export function podAssignment(clusterName: string, endpoints: readonly PodEndpoint[]): object {
  return {
    '@type': `${T}envoy.config.endpoint.v3.ClusterLoadAssignment`,
    cluster_name: clusterName,
    endpoints: [
      {
        locality: {},
        lb_endpoints: endpoints.map((e) => ({
          endpoint: { address: { socket_address: { address: e.address, port_value: e.port } } },
          health_status: 'HEALTHY',
          metadata: {
            filter_metadata: {
              ...(e.tlsMode !== undefined ? { 'envoy.transport_socket_match': { tlsMode: e.tlsMode } } : {}),
              istio: { workload: e.workload ?? '' },
            },
          },
          load_balancing_weight: 1,
        })),
        load_balancing_weight: endpoints.length,
      },
    ],
    policy: { overprovisioning_factor: 140 },
  };
}

/**
 * `<vip>_<port>`: a service VIP's HTTP listener, routes by RDS `<host>:<port>` (Istio's per-VIP
 * route configuration), and anything not HTTP proxied to `cluster` (the default chain).
 */
export function vipHttpListener(vip: string, port: number, routeName: string, cluster: string): object {
  return {
    '@type': `${T}envoy.config.listener.v3.Listener`,
    name: `${vip}_${port}`,
    address: { socket_address: { address: vip, port_value: port } },
    filter_chains: [
      {
        filter_chain_match: { transport_protocol: 'raw_buffer', application_protocols: ['http/1.1', 'h2c'] },
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': `${T}envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager`,
              stat_prefix: `outbound_${vip}_${port}`,
              rds: { config_source: ADS, route_config_name: routeName },
              http_filters: istioHttpFilters('outbound'),
              use_remote_address: false,
              upgrade_configs: [{ upgrade_type: 'websocket' }],
              stream_idle_timeout: '0s',
              normalize_path: true,
              request_id_extension: { typed_config: { '@type': `${T}envoy.extensions.request_id.uuid.v3.UuidRequestIdConfig`, use_request_id_for_trace_sampling: true } },
              path_with_escaped_slashes_action: 'KEEP_UNCHANGED',
            },
          },
        ],
      },
    ],
    default_filter_chain: { filters: [ISTIO_STATS_NETWORK, tcpProxy(cluster)] },
    listener_filters: INSPECTORS,
    listener_filters_timeout: '0s',
    traffic_direction: 'OUTBOUND',
    continue_on_listener_filters_timeout: true,
    bind_to_port: false,
  };
}

/** `<vip>_<port>`: a service VIP's TCP listener proxying to `cluster`. */
export function vipTcpListener(vip: string, port: number, cluster: string): object {
  return {
    '@type': `${T}envoy.config.listener.v3.Listener`,
    name: `${vip}_${port}`,
    address: { socket_address: { address: vip, port_value: port } },
    filter_chains: [{ filters: [ISTIO_STATS_NETWORK, tcpProxy(cluster)] }],
    traffic_direction: 'OUTBOUND',
    bind_to_port: false,
  };
}

/**
 * Istio's per-VIP RouteConfiguration `<host>:<port>`: one virtual host for every domain, its
 * routes in order (a header match, a single cluster or weighted clusters).
 */
export function vipRouteConfig(
  host: string,
  port: number,
  routes: ReadonlyArray<{ readonly header?: { readonly name: string; readonly exact: string }; readonly to: string | ReadonlyArray<{ readonly name: string; readonly weight: number }> }>,
): object {
  const name = `${host}:${port}`;
  return {
    '@type': `${T}envoy.config.route.v3.RouteConfiguration`,
    name,
    virtual_hosts: [
      {
        name,
        domains: ['*'],
        routes: routes.map((r, i) => ({
          match: { prefix: '/', ...(r.header !== undefined ? { headers: [{ name: r.header.name, string_match: { exact: r.header.exact } }] } : {}) },
          route: {
            ...(typeof r.to === 'string' ? { cluster: r.to } : { weighted_clusters: { clusters: r.to.map((c) => ({ name: c.name, weight: c.weight })) } }),
            timeout: '0s',
            retry_policy: {
              retry_on: 'connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes',
              num_retries: 2,
              retry_host_predicate: [{ name: 'envoy.retry_host_predicates.previous_hosts', typed_config: { '@type': `${T}envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate` } }],
              host_selection_retry_max_attempts: '5',
              retriable_status_codes: [503],
            },
            max_grpc_timeout: '0s',
          },
          decorator: { operation: `${name}/*` },
          name: i === routes.length - 1 ? 'default' : `route-${i}`,
        })),
        include_request_attempt_count: true,
      },
    ],
    validate_clusters: false,
    max_direct_response_body_size_bytes: 1048576,
    ignore_port_in_host_matching: true,
  };
}

/** `inbound|<port>||`: Istio's inbound cluster for an application port (the original destination, from 127.0.0.6). */
export function inboundCluster(port: number, host: string, namespace = 'default'): object {
  return {
    '@type': `${T}envoy.config.cluster.v3.Cluster`,
    name: `inbound|${port}||`,
    type: 'ORIGINAL_DST',
    connect_timeout: '10s',
    lb_policy: 'CLUSTER_PROVIDED',
    circuit_breakers: { thresholds: [UNLIMITED] },
    upstream_bind_config: { source_address: { address: '127.0.0.6', port_value: 0 } },
    metadata: { filter_metadata: { istio: { services: [{ name: host.split('.')[0], namespace, host }] } } },
    common_lb_config: {},
    typed_extension_protocol_options: USE_DOWNSTREAM_PROTOCOL,
  };
}

export const INBOUND_PASSTHROUGH_CLUSTER_IPV4 = {
  '@type': `${T}envoy.config.cluster.v3.Cluster`,
  name: 'InboundPassthroughClusterIpv4',
  type: 'ORIGINAL_DST',
  connect_timeout: '10s',
  lb_policy: 'CLUSTER_PROVIDED',
  circuit_breakers: { thresholds: [UNLIMITED] },
  upstream_bind_config: { source_address: { address: '127.0.0.6', port_value: 0 } },
  typed_extension_protocol_options: {
    'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
      '@type': `${T}envoy.extensions.upstreams.http.v3.HttpProtocolOptions`,
      common_http_protocol_options: { idle_timeout: '300s' },
      use_downstream_protocol_config: { http_protocol_options: {}, http2_protocol_options: {} },
    },
  },
};

/** The inbound mTLS transport socket: the workload certificate, peers of the trust domain. */
function inboundMtls(alpn: readonly string[]): object {
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: {
      '@type': `${T}envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext`,
      common_tls_context: {
        tls_params: {
          tls_minimum_protocol_version: 'TLSv1_2',
          tls_maximum_protocol_version: 'TLSv1_3',
          cipher_suites: ['ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES128-GCM-SHA256', 'AES256-GCM-SHA384', 'AES128-GCM-SHA256'],
        },
        alpn_protocols: [...alpn],
        tls_certificate_sds_secret_configs: [sds('default')],
        combined_validation_context: {
          default_validation_context: { match_subject_alt_names: [{ prefix: 'spiffe://cluster.local/' }] },
          validation_context_sds_secret_config: sds('ROOTCA'),
        },
      },
      require_client_certificate: true,
    },
  };
}

/** An inbound HCM with its inline route configuration: every request to `cluster`. */
function inboundHcm(statPrefix: string, routeName: string, vhostName: string, cluster: string, operation: string): object {
  return {
    name: 'envoy.filters.network.http_connection_manager',
    typed_config: {
      '@type': `${T}envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager`,
      stat_prefix: statPrefix,
      route_config: {
        name: routeName,
        virtual_hosts: [
          {
            name: vhostName,
            domains: ['*'],
            routes: [
              {
                match: { prefix: '/' },
                route: { cluster, timeout: '0s', max_stream_duration: { max_stream_duration: '0s', grpc_timeout_header_max: '0s' } },
                decorator: { operation },
                name: 'default',
              },
            ],
          },
        ],
        validate_clusters: false,
      },
      http_filters: istioHttpFilters('inbound'),
      server_name: 'istio-envoy',
      use_remote_address: false,
      forward_client_cert_details: 'APPEND_FORWARD',
      set_current_client_cert_details: { subject: true, dns: true, uri: true },
      upgrade_configs: [{ upgrade_type: 'websocket' }],
      stream_idle_timeout: '0s',
      normalize_path: true,
      request_id_extension: { typed_config: { '@type': `${T}envoy.extensions.request_id.uuid.v3.UuidRequestIdConfig`, use_request_id_for_trace_sampling: true } },
      path_with_escaped_slashes_action: 'KEEP_UNCHANGED',
    },
  };
}

const ISTIO_HTTP_ALPN = ['istio-http/1.0', 'istio-http/1.1', 'istio-h2'];
const PLAIN_HTTP_ALPN = ['http/1.1', 'h2c'];
const ISTIO_TCP_ALPN = ['istio-peer-exchange', 'istio'];

export interface InboundPort {
  readonly port: number;
  readonly protocol: 'http' | 'tcp';
  /** PERMISSIVE: mTLS and plaintext chains; STRICT: mTLS chains only. */
  readonly mode: 'PERMISSIVE' | 'STRICT';
  /** The service host, for the inbound cluster's metadata and the route decorator. */
  readonly host: string;
  /** Where requests go: `inbound|<port>||` (default) or InboundPassthroughClusterIpv4. */
  readonly cluster?: string;
}

/** The chains istiod gives virtualInbound for one application port (or the catch-all, port undefined). */
function inboundChains(p: { port?: number; protocol: 'http' | 'tcp'; mode: 'PERMISSIVE' | 'STRICT'; cluster: string; host: string; name: string }): object[] {
  const match = (extra: object): object => (p.port !== undefined ? { destination_port: p.port, ...extra } : { prefix_ranges: [{ address_prefix: '0.0.0.0', prefix_len: 0 }], ...extra });
  const strict = p.mode === 'STRICT';
  if (p.protocol === 'http') {
    const hcm = (): object =>
      p.port !== undefined
        ? inboundHcm(`inbound_0.0.0.0_${p.port}`, `inbound|${p.port}||`, `inbound|http|${p.port}`, p.cluster, `${p.host}:${p.port}/*`)
        : inboundHcm(p.cluster, p.cluster, 'inbound|http|0', p.cluster, ':0/*');
    return [
      { filter_chain_match: match({ transport_protocol: 'tls', application_protocols: ISTIO_HTTP_ALPN }), filters: [ISTIO_AUTHN, METADATA_EXCHANGE_NETWORK, hcm()], transport_socket: inboundMtls(['h2', 'http/1.1']), name: p.name },
      ...(strict ? [] : [{ filter_chain_match: match({ transport_protocol: 'raw_buffer', application_protocols: PLAIN_HTTP_ALPN }), filters: [ISTIO_AUTHN, METADATA_EXCHANGE_NETWORK, hcm()], name: p.name }]),
    ];
  }
  const tcp = (): object[] => [ISTIO_AUTHN, METADATA_EXCHANGE_NETWORK, ISTIO_STATS_NETWORK, tcpProxy(p.cluster)];
  return [
    { filter_chain_match: match({ transport_protocol: 'tls', application_protocols: ISTIO_TCP_ALPN }), filters: tcp(), transport_socket: inboundMtls(['istio-peer-exchange', 'h2', 'http/1.1']), name: p.name },
    ...(strict
      ? []
      : [
          { filter_chain_match: match({ transport_protocol: 'raw_buffer' }), filters: tcp(), name: p.name },
          // The application's own TLS, passed through.
          { filter_chain_match: match({ transport_protocol: 'tls' }), filters: tcp(), name: p.name },
        ]),
  ];
}

/**
 * Istio's virtualInbound on 15006: the loop guard, per application port its chains (mTLS, and
 * plaintext when PERMISSIVE) serving HTTP with the inline route configuration `inbound|<port>||`
 * or proxying TCP, then the catch-all chains for other ports (`catchAll` mode) to
 * InboundPassthroughClusterIpv4.
 */
export function virtualInbound(ports: readonly InboundPort[], catchAll: 'PERMISSIVE' | 'STRICT' = 'PERMISSIVE'): object {
  const passthrough = 'InboundPassthroughClusterIpv4';
  return {
    '@type': `${T}envoy.config.listener.v3.Listener`,
    name: 'virtualInbound',
    address: { socket_address: { address: '0.0.0.0', port_value: 15006 } },
    filter_chains: [
      { filter_chain_match: { destination_port: 15006 }, filters: [METADATA_EXCHANGE_NETWORK, ISTIO_STATS_NETWORK, tcpProxy('BlackHoleCluster')], name: 'virtualInbound-blackhole' },
      ...inboundChains({ protocol: 'http', mode: catchAll, cluster: passthrough, host: '', name: 'virtualInbound-catchall-http' }),
      ...inboundChains({ protocol: 'tcp', mode: catchAll, cluster: passthrough, host: '', name: 'virtualInbound' }),
      ...ports.flatMap((p) => inboundChains({ port: p.port, protocol: p.protocol, mode: p.mode, cluster: p.cluster ?? `inbound|${p.port}||`, host: p.host, name: `0.0.0.0_${p.port}` })),
    ],
    listener_filters: [
      { name: 'envoy.filters.listener.original_dst', typed_config: { '@type': `${T}envoy.extensions.filters.listener.original_dst.v3.OriginalDst` } },
      { ...INSPECTORS[0], filter_disabled: { destination_port_range: { start: 15006, end: 15007 } } },
      { ...INSPECTORS[1], filter_disabled: { destination_port_range: { start: 15006, end: 15007 } } },
    ],
    listener_filters_timeout: '0s',
    traffic_direction: 'INBOUND',
    continue_on_listener_filters_timeout: true,
  };
}

// === AuthorizationPolicy on virtualInbound: RBAC filters as istiod emits them ===
//
// Shaped as in shared/xds-data/istio__authz__configdump.yaml: the HTTP RBAC filter sits in each
// inbound connection manager right after istio.metadata_exchange (before the router), the
// network RBAC filter in each TCP chain right after istio.metadata_exchange (before tcp_proxy).

/** Envoy RBAC `rules`: an action and its policies by name (none: ALLOW with no policies denies all). */
export interface RbacRules {
  readonly action?: 'ALLOW' | 'DENY' | 'LOG';
  readonly policies?: Readonly<Record<string, object>>;
}

/** `envoy.filters.http.rbac` enforcing `rules`. */
export function httpRbacFilter(rules: RbacRules): object {
  return { name: 'envoy.filters.http.rbac', typed_config: { '@type': `${T}envoy.extensions.filters.http.rbac.v3.RBAC`, rules, shadow_rules_stat_prefix: 'istio_dry_run_allow_' } };
}

/** `envoy.filters.network.rbac` enforcing `rules` (istiod's deny-all: `{}`). */
export function networkRbacFilter(rules: RbacRules): object {
  return {
    name: 'envoy.filters.network.rbac',
    typed_config: { '@type': `${T}envoy.extensions.filters.network.rbac.v3.RBAC`, rules, stat_prefix: 'tcp.', shadow_rules_stat_prefix: 'istio_dry_run_allow_' },
  };
}

/**
 * istiod's policy for one AuthorizationPolicy rule `from: principals [principal]`, `to: methods
 * [method], paths [pathPrefix*]`: and_rules/or_rules permissions and and_ids/or_ids principals.
 * The principal as Istio ≥ 1.20 writes it (`filter_state` io.istio.peer_principal) or as earlier
 * releases did (`authenticated.principal_name`).
 */
export function istioAllowRule(options: { principal: string; method: string; pathPrefix: string; principalForm?: 'filter_state' | 'authenticated' }): object {
  const principal =
    (options.principalForm ?? 'filter_state') === 'filter_state'
      ? { filter_state: { key: 'io.istio.peer_principal', string_match: { exact: options.principal } } }
      : { authenticated: { principal_name: { exact: options.principal } } };
  return {
    permissions: [
      {
        and_rules: {
          rules: [{ or_rules: { rules: [{ header: { name: ':method', exact_match: options.method } }] } }, { or_rules: { rules: [{ url_path: { path: { prefix: options.pathPrefix } } }] } }],
        },
      },
    ],
    principals: [{ and_ids: { ids: [{ or_ids: { ids: [principal] } }] } }],
  };
}

type JsonObject = Record<string, unknown>;
const isHcm = (f: JsonObject): boolean => f['name'] === 'envoy.filters.network.http_connection_manager';
const isTcpProxy = (f: JsonObject): boolean => f['name'] === 'envoy.filters.network.tcp_proxy';
/** Where istiod puts an RBAC filter: right after istio.metadata_exchange (else first). */
const afterMetadataExchange = (filters: readonly JsonObject[], added: object): JsonObject[] => {
  const at = filters.findIndex((f) => f['name'] === 'istio.metadata_exchange') + 1;
  return [...filters.slice(0, at), added as JsonObject, ...filters.slice(at)];
};

/**
 * A copy of a virtualInbound listener (from `virtualInbound`) with `http` added to every HTTP
 * chain's connection manager and `tcp` to every TCP chain, as istiod repeats a workload's
 * policies on each chain; the loop guard (port 15006) is left alone.
 */
export function withInboundRbac(listener: object, filters: { readonly http?: object; readonly tcp?: object }): object {
  const l = structuredClone(listener) as JsonObject & { filter_chains: JsonObject[] };
  for (const chain of l.filter_chains) {
    const match = (chain['filter_chain_match'] ?? {}) as JsonObject;
    if (match['destination_port'] === 15006) continue;
    const chainFilters = chain['filters'] as JsonObject[];
    const hcm = chainFilters.find(isHcm);
    if (hcm !== undefined) {
      if (filters.http === undefined) continue;
      const config = hcm['typed_config'] as JsonObject;
      config['http_filters'] = afterMetadataExchange(config['http_filters'] as JsonObject[], filters.http);
    } else if (chainFilters.some(isTcpProxy) && filters.tcp !== undefined) {
      chain['filters'] = afterMetadataExchange(chainFilters, filters.tcp);
    }
  }
  return l;
}
