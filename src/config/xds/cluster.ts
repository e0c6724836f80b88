/**
 * Envoy v3 `envoy.config.cluster.v3.Cluster` → the cluster model.
 *
 * Input is the resource as proto3 JSON or parsed YAML (snake_case or lowerCamelCase field names;
 * Struct and map keys are kept as written). Contract: every field is translated, accepted
 * because it cannot change which host a request reaches or how (each such field says why
 * below), or reported as an `XdsProblem` naming its snake_case path. A result with problems is a
 * NACK: its cluster must not be used.
 *
 * Envoy semantics and defaults folded in here:
 * - defaults when unset: connect_timeout 5 s, lb_policy ROUND_ROBIN, least-request choice_count
 *   2, ring 1024..8M, Maglev table 65537, healthy_panic_threshold 50%, dns_refresh_rate 5 s,
 *   upstream idle_timeout 1 h, thresholds 1024/1024/1024/3 (`ENVOY_CIRCUIT_BREAKERS`); outlier
 *   detection as in `#outlierDetection`;
 * - LOGICAL_DNS is a STRICT_DNS cluster that uses only the first address of its one name
 *   (`firstAddressOnly`). Envoy keeps one logical host whose address changes under its open
 *   connections; skiff replaces the host, and the old one's connections finish their requests;
 * - EDS: the cluster has no endpoints of its own; `eds.serviceName` names the
 *   ClusterLoadAssignment that supplies them (translate it with `eds.localityWeighted`);
 * - transport sockets (`transport_socket`, `transport_socket_matches`) become the cluster's
 *   upstream TLS in upstream-tls.ts (Istio's auto-mTLS and SDS secrets → ISTIO_MUTUAL, with the
 *   trust domain of `ClusterOptions`; certificate files → TLS origination); its problems are the
 *   cluster's, with the same paths;
 * - the xDS names of Istio's clusters are kept: InboundPassthroughClusterIpv4 / Ipv6 play the
 *   role the Istio-YAML path gives to one `InboundPassthroughCluster`.
 */
import { isIP } from 'node:net';
import {
  BLACKHOLE_CLUSTER,
  ENVOY_CIRCUIT_BREAKERS,
  PASSTHROUGH_CLUSTER,
  type CircuitBreakers,
  type Cluster,
  type DiscoveryType,
  type Endpoint,
  type LbPolicy,
  type OutlierDetection,
} from '../../model/cluster.js';
import type { UpstreamTls } from '../../model/security.js';
import { EndpointsTranslator, withoutType } from './endpoints.js';
import { FieldReader, isObject, isSet, isTypedStruct, typeName, type Fields, type Obj, type Spec, type XdsProblem } from './fields.js';
import { UpstreamTlsTranslator } from './upstream-tls.js';

export type { XdsProblem } from './fields.js';
export { BLACKHOLE_CLUSTER, PASSTHROUGH_CLUSTER };
/** Istio's inbound passthrough clusters over xDS (one per family; both bind 127.0.0.6 / ::6). */
export const INBOUND_PASSTHROUGH_CLUSTER_IPV4 = 'InboundPassthroughClusterIpv4';
export const INBOUND_PASSTHROUGH_CLUSTER_IPV6 = 'InboundPassthroughClusterIpv6';

/**
 * A model Cluster from CDS. EDS clusters have no endpoints (`endpoints` is empty) until the
 * ClusterLoadAssignment named `eds.serviceName` arrives; translate it with
 * `{ localityWeighted: eds.localityWeighted }`. Other clusters carry their inline
 * `load_assignment` endpoints.
 */
export type XdsCluster = Cluster & {
  readonly eds?: { readonly serviceName: string; readonly localityWeighted: boolean };
};

export interface ClusterOptions {
  /** Trust domain for ISTIO_MUTUAL identities when the cluster names none (default cluster.local). */
  readonly trustDomain?: string;
}

/** `problems` non-empty means the cluster must not be used (a NACK). */
export interface ClusterResult {
  readonly cluster?: XdsCluster;
  readonly problems: XdsProblem[];
}

export function translateCluster(json: unknown, options: ClusterOptions = {}): ClusterResult {
  const t = new ClusterTranslator(options);
  const cluster = t.cluster(json);
  return t.problems.length === 0 && cluster !== undefined ? { cluster, problems: [] } : { problems: t.problems };
}

// === defaults (Envoy's, when a field is unset) ===

const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
const DEFAULT_DNS_REFRESH_MS = 5_000;
const DEFAULT_IDLE_TIMEOUT_MS = 3_600_000;
const DEFAULT_PANIC_THRESHOLD = 50;
const DEFAULT_CHOICE_COUNT = 2;
const DEFAULT_MIN_RING = 1024;
const DEFAULT_MAX_RING = 8 * 1024 * 1024;
const DEFAULT_MAGLEV_TABLE = 65537;

// === field specs ===

const STATS_ONLY = 'names stats only';
const NO_ACTIVE_HEALTH_CHECKS = 'acts only with active health checking (health_checks are refused)';

const CLUSTER: Spec = {
  handled: [
    'name', 'type', 'eds_cluster_config', 'connect_timeout', 'lb_policy', 'load_assignment', 'max_requests_per_connection',
    'circuit_breakers', 'common_http_protocol_options', 'http_protocol_options', 'http2_protocol_options',
    'typed_extension_protocol_options', 'dns_refresh_rate', 'dns_lookup_family', 'outlier_detection', 'upstream_bind_config',
    'ring_hash_lb_config', 'maglev_lb_config', 'original_dst_lb_config', 'least_request_lb_config', 'round_robin_lb_config',
    'common_lb_config', 'transport_socket', 'transport_socket_matches', 'metadata', 'protocol_selection',
    'upstream_connection_options', 'filters',
  ],
  ignored: {
    alt_stat_name: STATS_ONLY,
    observability_name: STATS_ONLY,
    track_timeout_budgets: STATS_ONLY,
    track_cluster_stats: STATS_ONLY,
    // Read and write buffer watermarks: flow control only; skiff applies backpressure itself.
    per_connection_buffer_limit_bytes: 'a buffer watermark (flow control only)',
    // Istio sets it on every DNS cluster. The system resolver reports no TTLs, so skiff re-resolves
    // every dns_refresh_rate: the same answers, refreshed on a different timer.
    respect_dns_ttl: 'refresh timing only: names are re-resolved every dns_refresh_rate',
    dns_failure_refresh_rate: 'refresh timing only: a failed resolution is retried at dns_refresh_rate',
    wait_for_warm_on_init: 'start-up ordering only',
    // How often unused ORIGINAL_DST hosts are dropped; skiff's sweep drops them once idle.
    cleanup_interval: 'when idle original-destination hosts are dropped, not whether they are used',
    close_connections_on_host_health_failure: NO_ACTIVE_HEALTH_CHECKS,
    ignore_health_on_host_removal: NO_ACTIVE_HEALTH_CHECKS,
  },
  refused: {
    cluster_type: 'custom cluster types (e.g. dynamic forward proxy) are not supported',
    health_checks: 'active health checking is not supported',
    upstream_http_protocol_options: 'auto SNI and SAN validation from the request are not supported',
    dns_resolvers: 'custom DNS resolvers are not supported',
    use_tcp_for_dns_lookups: 'custom DNS resolution is not supported',
    dns_resolution_config: 'custom DNS resolution is not supported',
    typed_dns_resolver_config: 'custom DNS resolvers are not supported',
    lb_subset_config: 'subset load balancing is not supported',
    load_balancing_policy: 'extension load-balancing policies are not supported',
    lrs_server: 'load reporting is not supported',
    lrs_report_endpoint_metrics: 'load reporting is not supported',
    upstream_config: 'custom upstream connection pools are not supported',
    preconnect_policy: 'preconnecting is not supported',
    connection_pool_per_downstream_connection: 'per-downstream-connection pools are not supported',
  },
};

const EDS_CLUSTER_CONFIG: Spec = { handled: ['eds_config', 'service_name'] };
const CONFIG_SOURCE: Spec = {
  handled: ['ads', 'self', 'resource_api_version'],
  // Istio sends 0s (wait until the resource arrives); the ADS client applies Envoy's 15 s
  // does-not-exist timeout to warming instead.
  ignored: { initial_fetch_timeout: 'warming time only: the ADS client waits for the assignment' },
  refused: {
    path: 'only ADS is supported',
    path_config_source: 'only ADS is supported',
    api_config_source: 'only ADS is supported',
    authorities: 'xDS authorities are not supported',
  },
};
const SELF_CONFIG_SOURCE: Spec = { handled: ['transport_api_version'] };

const CIRCUIT_BREAKERS: Spec = {
  handled: ['thresholds'],
  refused: { per_host_thresholds: 'per-host circuit breakers are not supported' },
};
const THRESHOLDS: Spec = {
  handled: ['priority', 'max_connections', 'max_pending_requests', 'max_requests', 'max_retries'],
  ignored: { track_remaining: 'publishes remaining-capacity stats only' },
  refused: {
    retry_budget: 'retry budgets are not supported',
    max_connection_pools: 'a limit on connection pools is not supported',
  },
};

const OUTLIER_DETECTION: Spec = {
  handled: [
    'consecutive_5xx', 'enforcing_consecutive_5xx', 'consecutive_gateway_failure', 'enforcing_consecutive_gateway_failure',
    'interval', 'base_ejection_time', 'max_ejection_time', 'max_ejection_percent', 'enforcing_success_rate',
    'enforcing_failure_percentage', 'enforcing_failure_percentage_local_origin', 'split_external_local_origin_errors',
    'always_eject_one_host',
  ],
  ignored: {
    success_rate_minimum_hosts: 'used only by success-rate ejection, which must be off (enforcing_success_rate 0)',
    success_rate_request_volume: 'used only by success-rate ejection, which must be off (enforcing_success_rate 0)',
    success_rate_stdev_factor: 'used only by success-rate ejection, which must be off (enforcing_success_rate 0)',
    failure_percentage_threshold: 'used only by failure-percentage ejection, which must be off',
    failure_percentage_minimum_hosts: 'used only by failure-percentage ejection, which must be off',
    failure_percentage_request_volume: 'used only by failure-percentage ejection, which must be off',
    consecutive_local_origin_failure: 'used only with split_external_local_origin_errors, which is refused',
    enforcing_consecutive_local_origin_failure: 'used only with split_external_local_origin_errors, which is refused',
    enforcing_local_origin_success_rate: 'used only with split_external_local_origin_errors, which is refused',
    successful_active_health_check_uneject_host: NO_ACTIVE_HEALTH_CHECKS,
  },
  refused: {
    max_ejection_time_jitter: 'ejection time jitter is not supported',
    monitors: 'outlier detection monitors are not supported',
    detect_degraded_hosts: 'degraded-host detection is not supported',
  },
};

const COMMON_LB_CONFIG: Spec = {
  handled: ['healthy_panic_threshold', 'locality_weighted_lb_config'],
  ignored: { update_merge_window: 'batches host-set updates in time only; skiff applies each update at once' },
  refused: {
    zone_aware_lb_config: 'zone-aware routing is not supported',
    ignore_new_hosts_until_first_hc: 'active health checking is not supported',
    close_connections_on_host_set_change: 'closing connections on host-set changes is not supported',
    consistent_hashing_lb_config: 'consistent hashing options are not supported',
    override_host_status: 'host overrides (stateful sessions) are not supported',
  },
};
const EMPTY: Spec = { handled: [] };
const PERCENT: Spec = { handled: ['value'] };

const LEAST_REQUEST_LB_CONFIG: Spec = {
  handled: ['choice_count', 'active_request_bias'],
  refused: { slow_start_config: 'slow start is not supported' },
};
const RUNTIME_DOUBLE: Spec = { handled: ['default_value'], ignored: { runtime_key: 'skiff has no runtime: the default applies' } };
const RING_HASH_LB_CONFIG: Spec = {
  handled: ['minimum_ring_size', 'maximum_ring_size'],
  // Either function is consistent; skiff's ring maps keys to hosts with its own hash anyway.
  ignored: { hash_function: 'skiff hashes ring points with its own function (keys map to other hosts than in Envoy with either choice)' },
};
const MAGLEV_LB_CONFIG: Spec = { handled: ['table_size'] };
const ROUND_ROBIN_LB_CONFIG: Spec = { handled: [], refused: { slow_start_config: 'slow start is not supported' } };
const ORIGINAL_DST_LB_CONFIG: Spec = {
  handled: [],
  refused: {
    use_http_header: 'the destination from a header is not supported',
    http_header_name: 'the destination from a header is not supported',
    upstream_port_override: 'overriding the original destination port is not supported',
    metadata_key: 'the destination from metadata is not supported',
  },
};

const HTTP_PROTOCOL_OPTIONS: Spec = {
  handled: ['common_http_protocol_options', 'explicit_http_config', 'use_downstream_protocol_config'],
  refused: {
    upstream_http_protocol_options: 'auto SNI and SAN validation from the request are not supported',
    auto_config: 'protocol selection by ALPN (auto_config) is not supported',
    http_filters: 'upstream HTTP filters are not supported',
    header_validation_config: 'custom header validators are not supported',
  },
};
const PROTOCOL_CONFIG: Spec = {
  handled: ['http_protocol_options', 'http2_protocol_options'],
  refused: { http3_protocol_options: 'HTTP/3 upstreams are not supported' },
};
const COMMON_HTTP_PROTOCOL_OPTIONS: Spec = {
  handled: ['idle_timeout', 'max_requests_per_connection'],
  refused: {
    max_connection_duration: 'a maximum upstream connection duration is not supported',
    max_headers_count: 'a limit on upstream response header count is not supported',
    max_stream_duration: 'a maximum upstream stream duration is not supported',
    headers_with_underscores_action: 'actions on headers with underscores are not supported',
    max_response_headers_kb: 'a limit on upstream response header size is not supported',
  },
};
const HTTP1_PROTOCOL_OPTIONS: Spec = {
  handled: [],
  ignored: {
    // Request-side (downstream) options: an upstream codec never parses requests.
    allow_absolute_url: 'applies to parsing requests (downstream) only',
    accept_http_10: 'applies to parsing requests (downstream) only',
    default_host_for_http_10: 'applies to parsing requests (downstream) only',
  },
  refused: {
    header_key_format: 'header case preservation is not supported',
    enable_trailers: 'HTTP/1.1 trailers upstream are not supported',
    allow_chunked_length: 'accepting Content-Length with chunked encoding is not supported',
    override_stream_error_on_invalid_http_message: 'overriding invalid-message handling is not supported',
    send_fully_qualified_url: 'absolute-form request targets are not supported',
    use_balsa_parser: 'choosing the HTTP/1 parser is not supported',
    allow_custom_methods: 'custom methods are not supported',
  },
};
const HTTP2_PROTOCOL_OPTIONS: Spec = {
  handled: ['max_concurrent_streams'],
  // Header compression state size: requests and responses are the same either way.
  ignored: { hpack_table_size: 'header compression table size only' },
  refused: {
    initial_stream_window_size: 'HTTP/2 window sizes are not configurable',
    initial_connection_window_size: 'HTTP/2 window sizes are not configurable',
    allow_connect: 'extended CONNECT upstream is not supported',
    allow_metadata: 'HTTP/2 METADATA frames are not supported',
    max_outbound_frames: 'HTTP/2 flood limits are not configurable',
    max_outbound_control_frames: 'HTTP/2 flood limits are not configurable',
    max_consecutive_inbound_frames_with_empty_payload: 'HTTP/2 flood limits are not configurable',
    max_inbound_priority_frames_per_stream: 'HTTP/2 flood limits are not configurable',
    max_inbound_window_update_frames_per_data_frame_sent: 'HTTP/2 flood limits are not configurable',
    stream_error_on_invalid_http_messaging: 'overriding invalid-message handling is not supported',
    override_stream_error_on_invalid_http_message: 'overriding invalid-message handling is not supported',
    custom_settings_parameters: 'custom HTTP/2 settings are not supported',
    connection_keepalive: 'HTTP/2 keepalive PINGs are not supported',
    use_oghttp2_codec: 'choosing the HTTP/2 codec is not supported',
  },
};

const BIND_CONFIG: Spec = {
  handled: ['source_address', 'extra_source_addresses', 'additional_source_addresses'],
  refused: {
    freebind: 'IP_FREEBIND is not supported',
    socket_options: 'socket options are not supported',
    local_address_selector: 'custom local address selectors are not supported',
  },
};
const EXTRA_SOURCE_ADDRESS: Spec = { handled: ['address'], refused: { socket_options: 'socket options are not supported' } };
const SOCKET_ADDRESS: Spec = {
  handled: ['address', 'port_value', 'protocol'],
  refused: { named_port: 'named ports are not supported', resolver_name: 'custom resolvers are not supported', ipv4_compat: 'applies to listeners only' },
};
const UPSTREAM_CONNECTION_OPTIONS: Spec = {
  handled: [],
  ignored: { set_local_interface_name_on_upstream_connections: 'records the interface name for logs only' },
  refused: {
    tcp_keepalive: 'TCP keepalive on upstream connections is not supported',
    happy_eyeballs_config: 'happy eyeballs is not supported',
  },
};

const METADATA: Spec = { handled: ['filter_metadata'], ignored: { typed_filter_metadata: 'opaque to skiff' } };
const FILTER: Spec = { handled: ['name', 'typed_config'], refused: { config_discovery: 'filter config discovery is not supported' } };

const DISCOVERY_TYPES = ['STATIC', 'STRICT_DNS', 'LOGICAL_DNS', 'EDS', 'ORIGINAL_DST'] as const;
const LB_POLICIES = ['ROUND_ROBIN', 'LEAST_REQUEST', 'RING_HASH', 'RANDOM', '(reserved)', 'MAGLEV', 'CLUSTER_PROVIDED', 'LOAD_BALANCING_POLICY_CONFIG'] as const;
const DNS_FAMILIES = ['AUTO', 'V4_ONLY', 'V6_ONLY', 'V4_PREFERRED', 'ALL'] as const;
const ROUTING_PRIORITIES = ['DEFAULT', 'HIGH'] as const;
const API_VERSIONS = ['AUTO', 'V2', 'V3'] as const;
const PROTOCOL_SELECTIONS = ['USE_CONFIGURED_PROTOCOL', 'USE_DOWNSTREAM_PROTOCOL'] as const;

const CLUSTER_TYPE = 'envoy.config.cluster.v3.Cluster';
const HTTP_PROTOCOL_OPTIONS_TYPE = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';
/** Istio's upstream metadata exchange: skiff exchanges peer metadata itself (telemetry). */
const METADATA_EXCHANGE_TYPES = new Set(['envoy.tcp.metadataexchange.config.MetadataExchange']);
const DEFAULT_TRUST_DOMAIN = 'cluster.local';

// === translator ===

interface HttpOptions {
  readonly protocol?: 'http2' | 'client';
  readonly maxConcurrentStreams?: number;
  readonly idleTimeoutMs?: number;
  readonly maxRequestsPerConnection?: number;
}

class ClusterTranslator extends FieldReader {
  readonly #trustDomain: string;

  constructor(options: ClusterOptions) {
    super();
    this.#trustDomain = options.trustDomain ?? DEFAULT_TRUST_DOMAIN;
  }

  cluster(v: unknown): XdsCluster | undefined {
    const f = this.message(withoutType(v, CLUSTER_TYPE, (m) => this.problem('@type', m)), '', CLUSTER);
    const name = this.string(f.get('name'), 'name') ?? '';
    if (name === '') this.problem('name', 'required');
    const type = DISCOVERY_TYPES[this.enum(f.get('type'), 'type', DISCOVERY_TYPES) ?? 0]!;
    const common = this.#commonLb(f.get('common_lb_config'), 'common_lb_config');
    const discovery = this.#discovery(f, type, name, common.localityWeighted);
    const lb = this.#lb(f, type);
    const http = this.#httpOptions(f);
    const outlier = this.#outlierDetection(f.get('outlier_detection'), 'outlier_detection');
    const tls = this.#upstreamTls(f);
    const sourceAddress = this.#bindConfig(f.get('upstream_bind_config'), 'upstream_bind_config');
    const service = this.#service(f.get('metadata'), 'metadata', name);
    this.#filters(f.get('filters'), 'filters');
    this.message(f.get('upstream_connection_options'), 'upstream_connection_options', UPSTREAM_CONNECTION_OPTIONS);
    const dnsFamily = DNS_FAMILIES[this.enum(f.get('dns_lookup_family'), 'dns_lookup_family', DNS_FAMILIES) ?? 0]!;
    const connectTimeoutMs = this.duration(f.get('connect_timeout'), 'connect_timeout') ?? DEFAULT_CONNECT_TIMEOUT_MS;
    if (connectTimeoutMs <= 0) this.problem('connect_timeout', 'must be greater than 0');
    const dnsRefreshRateMs = this.duration(f.get('dns_refresh_rate'), 'dns_refresh_rate') ?? DEFAULT_DNS_REFRESH_MS;
    if (dnsRefreshRateMs <= 1) this.problem('dns_refresh_rate', 'must be greater than 1ms');
    if (name === '') return undefined;
    return {
      name,
      discovery: discovery.discovery,
      lb,
      endpoints: discovery.endpoints,
      connectTimeoutMs,
      dnsRefreshRateMs,
      // DNS clusters only. AUTO is Envoy's "IPv6 if the name has any, else IPv4"; ALL is the model's default.
      ...(discovery.discovery !== 'STRICT_DNS' || dnsFamily === 'ALL' ? {} : { dnsLookupFamily: dnsFamily === 'AUTO' ? 'V6_PREFERRED' : dnsFamily }),
      ...(type === 'LOGICAL_DNS' ? { firstAddressOnly: true } : {}),
      idleTimeoutMs: http.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
      maxRequestsPerConnection: http.maxRequestsPerConnection ?? 0,
      circuitBreakers: this.#circuitBreakers(f.get('circuit_breakers'), 'circuit_breakers'),
      ...(outlier !== undefined ? { outlierDetection: outlier } : {}),
      healthyPanicThreshold: common.panicThreshold,
      ...(sourceAddress !== undefined ? { sourceAddress } : {}),
      ...(tls !== undefined ? { tls } : {}),
      ...(http.protocol !== undefined ? { protocol: http.protocol } : {}),
      ...(http.maxConcurrentStreams !== undefined ? { maxConcurrentStreams: http.maxConcurrentStreams } : {}),
      ...(service !== undefined ? { service } : {}),
      ...(discovery.eds !== undefined ? { eds: discovery.eds } : {}),
    };
  }

  // --- discovery ---

  /** The model discovery type, and the endpoints (inline) or the EDS subscription. */
  #discovery(
    f: Fields,
    type: (typeof DISCOVERY_TYPES)[number],
    name: string,
    localityWeighted: boolean,
  ): { discovery: DiscoveryType; endpoints: readonly Endpoint[]; eds?: XdsCluster['eds'] } {
    if (f.has('eds_cluster_config') && type !== 'EDS') this.problem('eds_cluster_config', 'set on a cluster whose type is not EDS');
    switch (type) {
      case 'EDS': {
        // An inline load_assignment is not used by an EDS cluster: the EDS assignment replaces it.
        const e = this.message(f.get('eds_cluster_config'), 'eds_cluster_config', EDS_CLUSTER_CONFIG);
        this.#configSource(e.get('eds_config'), 'eds_cluster_config.eds_config');
        const serviceName = this.string(e.get('service_name'), 'eds_cluster_config.service_name') || name;
        return { discovery: 'STATIC', endpoints: [], eds: { serviceName, localityWeighted } };
      }
      case 'ORIGINAL_DST':
        if (f.has('load_assignment')) this.problem('load_assignment', 'an ORIGINAL_DST cluster takes no endpoints');
        return { discovery: 'ORIGINAL_DST', endpoints: [] };
      default: {
        const dns = type === 'STRICT_DNS' || type === 'LOGICAL_DNS';
        const reader = new EndpointsTranslator({ localityWeighted, allowNames: dns });
        const endpoints = f.has('load_assignment') ? reader.clusterLoadAssignment(f.get('load_assignment'), 'load_assignment').endpoints : [];
        this.problems.push(...reader.problems);
        if (type === 'LOGICAL_DNS' && endpoints.length !== 1) this.problem('load_assignment', 'a LOGICAL_DNS cluster takes exactly one endpoint');
        return { discovery: dns ? 'STRICT_DNS' : 'STATIC', endpoints };
      }
    }
  }

  /** An EDS ConfigSource: only ADS (`ads`, or `self` on the ADS stream). */
  #configSource(v: unknown, path: string): void {
    const f = this.message(v, path, CONFIG_SOURCE);
    if (f.has('ads')) this.message(f.get('ads'), `${path}.ads`, EMPTY);
    if (f.has('self')) this.message(f.get('self'), `${path}.self`, SELF_CONFIG_SOURCE);
    if (v !== undefined && !f.has('ads') && !f.has('self') && !['path', 'path_config_source', 'api_config_source'].some((k) => isObject(v) && isSet(v[k] ?? v[camel(k)]))) {
      this.problem(path, 'must name ads (or self)');
    }
    if (this.enum(f.get('resource_api_version'), `${path}.resource_api_version`, API_VERSIONS) === 1) this.problem(`${path}.resource_api_version`, 'not supported: only V3 resources are supported');
  }

  // --- load balancing ---

  #lb(f: Fields, type: (typeof DISCOVERY_TYPES)[number]): LbPolicy {
    const i = this.enum(f.get('lb_policy'), 'lb_policy', LB_POLICIES) ?? 0;
    const policy = LB_POLICIES[i]!;
    this.message(f.get('original_dst_lb_config'), 'original_dst_lb_config', ORIGINAL_DST_LB_CONFIG);
    this.message(f.get('round_robin_lb_config'), 'round_robin_lb_config', ROUND_ROBIN_LB_CONFIG);
    if (type === 'ORIGINAL_DST' && policy !== 'CLUSTER_PROVIDED') this.problem('lb_policy', 'must be CLUSTER_PROVIDED for an ORIGINAL_DST cluster');
    // (The policy is not used for ORIGINAL_DST: each destination is its own host.)
    switch (policy) {
      case 'CLUSTER_PROVIDED':
        if (type !== 'ORIGINAL_DST') this.problem('lb_policy', 'CLUSTER_PROVIDED is valid only for ORIGINAL_DST clusters');
        return { kind: 'ROUND_ROBIN' };
      case 'LEAST_REQUEST':
        return { kind: 'LEAST_REQUEST', choiceCount: this.#leastRequest(f.get('least_request_lb_config'), 'least_request_lb_config') };
      case 'RING_HASH':
        return this.#ringHash(f.get('ring_hash_lb_config'), 'ring_hash_lb_config');
      case 'MAGLEV':
        return this.#maglev(f.get('maglev_lb_config'), 'maglev_lb_config');
      case 'RANDOM':
        return { kind: 'RANDOM' };
      case 'ROUND_ROBIN':
        return { kind: 'ROUND_ROBIN' };
      default:
        this.problem('lb_policy', `not supported: ${policy}`);
        return { kind: 'ROUND_ROBIN' };
    }
  }

  /** choice_count (default 2, at least 2); the request bias must be skiff's (and Envoy's default) 1. */
  #leastRequest(v: unknown, path: string): number {
    const f = this.message(v, path, LEAST_REQUEST_LB_CONFIG);
    const choices = this.uint(f.get('choice_count'), `${path}.choice_count`) ?? DEFAULT_CHOICE_COUNT;
    if (choices < 2) this.problem(`${path}.choice_count`, 'must be at least 2');
    if (f.has('active_request_bias')) {
      const b = this.message(f.get('active_request_bias'), `${path}.active_request_bias`, RUNTIME_DOUBLE).get('default_value') ?? 0;
      if (b !== 1) this.problem(`${path}.active_request_bias`, 'not supported: only the default bias of 1.0 is supported');
    }
    return choices;
  }

  #ringHash(v: unknown, path: string): LbPolicy {
    const f = this.message(v, path, RING_HASH_LB_CONFIG);
    const min = this.uint(f.get('minimum_ring_size'), `${path}.minimum_ring_size`) ?? DEFAULT_MIN_RING;
    const max = this.uint(f.get('maximum_ring_size'), `${path}.maximum_ring_size`) ?? DEFAULT_MAX_RING;
    if (max > DEFAULT_MAX_RING) this.problem(`${path}.maximum_ring_size`, `must be at most ${DEFAULT_MAX_RING}`);
    if (min > max) this.problem(`${path}.minimum_ring_size`, 'must not exceed maximum_ring_size');
    return { kind: 'RING_HASH', minimumRingSize: min, maximumRingSize: max };
  }

  #maglev(v: unknown, path: string): LbPolicy {
    const f = this.message(v, path, MAGLEV_LB_CONFIG);
    const size = this.uint(f.get('table_size'), `${path}.table_size`) ?? DEFAULT_MAGLEV_TABLE;
    if (size > 5_000_011 || !isPrime(size)) this.problem(`${path}.table_size`, 'must be a prime number no greater than 5000011');
    return { kind: 'MAGLEV', tableSize: size };
  }

  /**
   * healthy_panic_threshold (default 50%) and whether locality weights apply. Envoy uses locality
   * weights only with locality_weighted_lb_config; istiod always sets it on EDS clusters, and the
   * endpoints translator folds the weights into host weights (see endpoints.ts).
   */
  #commonLb(v: unknown, path: string): { panicThreshold: number; localityWeighted: boolean } {
    const f = this.message(v, path, COMMON_LB_CONFIG);
    let panicThreshold = DEFAULT_PANIC_THRESHOLD;
    if (f.has('healthy_panic_threshold')) {
      const p = this.message(f.get('healthy_panic_threshold'), `${path}.healthy_panic_threshold`, PERCENT).get('value') ?? 0;
      if (typeof p !== 'number' || !(p >= 0 && p <= 100)) this.problem(`${path}.healthy_panic_threshold.value`, 'must be a number from 0 to 100');
      else panicThreshold = p;
    }
    if (f.has('locality_weighted_lb_config')) this.message(f.get('locality_weighted_lb_config'), `${path}.locality_weighted_lb_config`, EMPTY);
    return { panicThreshold, localityWeighted: f.has('locality_weighted_lb_config') };
  }

  // --- circuit breakers and outlier detection ---

  /**
   * The DEFAULT-priority thresholds; unset values take Envoy's defaults (1024/1024/1024/3).
   * HIGH-priority thresholds apply only to routes of priority HIGH, which the route translator
   * refuses, so they can never apply.
   */
  #circuitBreakers(v: unknown, path: string): CircuitBreakers {
    const f = this.message(v, path, CIRCUIT_BREAKERS);
    let chosen: CircuitBreakers | undefined;
    this.list(f.get('thresholds'), `${path}.thresholds`).forEach((t, i) => {
      const at = `${path}.thresholds[${i}]`;
      const g = this.message(t, at, THRESHOLDS);
      const priority = this.enum(g.get('priority'), `${at}.priority`, ROUTING_PRIORITIES) ?? 0;
      const limits: CircuitBreakers = {
        maxConnections: this.uint(g.get('max_connections'), `${at}.max_connections`) ?? ENVOY_CIRCUIT_BREAKERS.maxConnections,
        maxPendingRequests: this.uint(g.get('max_pending_requests'), `${at}.max_pending_requests`) ?? ENVOY_CIRCUIT_BREAKERS.maxPendingRequests,
        maxRequests: this.uint(g.get('max_requests'), `${at}.max_requests`) ?? ENVOY_CIRCUIT_BREAKERS.maxRequests,
        maxRetries: this.uint(g.get('max_retries'), `${at}.max_retries`) ?? ENVOY_CIRCUIT_BREAKERS.maxRetries,
      };
      if (priority !== 0) return;
      if (chosen !== undefined) this.problem(at, 'DEFAULT priority thresholds are set twice');
      chosen = limits;
    });
    return chosen ?? ENVOY_CIRCUIT_BREAKERS;
  }

  /**
   * Envoy's consecutive-error detectors (what the model's detector does). Envoy's defaults:
   * consecutive_5xx 5 enforced 100%, consecutive_gateway_failure 5 enforced 0% (off), interval
   * 10 s, base ejection 30 s, max ejection 300 s, max ejection 10%. An enforcing percentage must
   * be 0 or 100 (a detector off or always on). Success-rate ejection is on by default in Envoy
   * (enforcing_success_rate 100), so it must be turned off explicitly (istiod always sends 0);
   * failure-percentage ejection must stay off.
   *
   * Difference: skiff always lets one host be ejected whatever max_ejection_percent says, as
   * Envoy did before always_eject_one_host existed (and does with it set).
   */
  #outlierDetection(v: unknown, path: string): OutlierDetection | undefined {
    if (v === undefined) return undefined;
    const f = this.message(v, path, OUTLIER_DETECTION);
    const percent = (name: string, fallback: number): number => {
      const p = this.uint(f.get(name), `${path}.${name}`) ?? fallback;
      if (p > 100) this.problem(`${path}.${name}`, 'must be at most 100');
      return p;
    };
    const enforced = (name: string, fallback: number): boolean => {
      const p = percent(name, fallback);
      if (p !== 0 && p !== 100) this.problem(`${path}.${name}`, 'not supported: only 0 (off) or 100 (always) can be enforced');
      return p === 100;
    };
    const consecutive5xx = this.uint(f.get('consecutive_5xx'), `${path}.consecutive_5xx`) ?? 5;
    const gateway = this.uint(f.get('consecutive_gateway_failure'), `${path}.consecutive_gateway_failure`) ?? 5;
    const enforce5xx = enforced('enforcing_consecutive_5xx', 100);
    const enforceGateway = enforced('enforcing_consecutive_gateway_failure', 0);
    if (percent('enforcing_success_rate', 100) !== 0) {
      this.problem(`${path}.enforcing_success_rate`, 'not supported: success-rate ejection (on unless enforcing_success_rate is 0) is not supported');
    }
    if (percent('enforcing_failure_percentage', 0) !== 0) this.problem(`${path}.enforcing_failure_percentage`, 'not supported: failure-percentage ejection is not supported');
    if (percent('enforcing_failure_percentage_local_origin', 0) !== 0) {
      this.problem(`${path}.enforcing_failure_percentage_local_origin`, 'not supported: failure-percentage ejection is not supported');
    }
    if (this.bool(f.get('split_external_local_origin_errors'), `${path}.split_external_local_origin_errors`) === true) {
      this.problem(`${path}.split_external_local_origin_errors`, 'not supported: local-origin errors are not counted apart');
    }
    this.bool(f.get('always_eject_one_host'), `${path}.always_eject_one_host`);
    const intervalMs = this.duration(f.get('interval'), `${path}.interval`) ?? 10_000;
    if (intervalMs <= 0) this.problem(`${path}.interval`, 'must be greater than 0');
    const baseEjectionTimeMs = this.duration(f.get('base_ejection_time'), `${path}.base_ejection_time`) ?? 30_000;
    return {
      consecutive5xx: enforce5xx ? consecutive5xx : 0,
      consecutiveGatewayFailure: enforceGateway ? gateway : 0,
      intervalMs,
      baseEjectionTimeMs,
      // Unset: 300 s or base_ejection_time, whichever is larger (the detector takes the larger too).
      maxEjectionTimeMs: this.duration(f.get('max_ejection_time'), `${path}.max_ejection_time`) ?? Math.max(300_000, baseEjectionTimeMs),
      maxEjectionPercent: percent('max_ejection_percent', 10),
    };
  }

  // --- HTTP protocol options ---

  /**
   * The upstream protocol, idle timeout, requests per connection and HTTP/2 stream limit, from
   * typed_extension_protocol_options' HttpProtocolOptions or the deprecated cluster fields (not
   * both, as in Envoy).
   */
  #httpOptions(f: Fields): HttpOptions {
    const typed = this.#typedProtocolOptions(f.get('typed_extension_protocol_options'), 'typed_extension_protocol_options');
    const deprecated = ['http_protocol_options', 'http2_protocol_options', 'common_http_protocol_options', 'protocol_selection'].filter((k) => f.has(k));
    if (typed !== undefined && deprecated.length > 0) {
      for (const k of deprecated) this.problem(k, 'set together with typed_extension_protocol_options HttpProtocolOptions');
    }
    let options = typed;
    if (options === undefined) {
      this.message(f.get('http_protocol_options'), 'http_protocol_options', HTTP1_PROTOCOL_OPTIONS);
      const common = this.#commonHttp(f.get('common_http_protocol_options'), 'common_http_protocol_options');
      const h2 = f.has('http2_protocol_options') ? this.#http2(f.get('http2_protocol_options'), 'http2_protocol_options') : undefined;
      const downstream = this.enum(f.get('protocol_selection'), 'protocol_selection', PROTOCOL_SELECTIONS) === 1;
      options = {
        ...common,
        ...(h2 !== undefined ? { protocol: downstream ? ('client' as const) : ('http2' as const), ...h2 } : {}),
      };
    }
    const top = this.uint(f.get('max_requests_per_connection'), 'max_requests_per_connection');
    if (top !== undefined) {
      if (options.maxRequestsPerConnection !== undefined) this.problem('max_requests_per_connection', 'set together with common_http_protocol_options.max_requests_per_connection');
      else options = { ...options, maxRequestsPerConnection: top };
    }
    return options;
  }

  /** The typed_extension_protocol_options map: only HttpProtocolOptions. Map keys are kept as written. */
  #typedProtocolOptions(v: unknown, path: string): HttpOptions | undefined {
    if (v === undefined) return undefined;
    if (!isObject(v)) {
      this.problem(path, 'must be an object');
      return undefined;
    }
    let options: HttpOptions | undefined;
    for (const [key, value] of Object.entries(v)) {
      const at = `${path}.${key}`;
      const any = this.any(value, at);
      if (any === undefined) continue;
      if (typeName(any.typeUrl) !== HTTP_PROTOCOL_OPTIONS_TYPE) {
        this.problem(at, `not supported: protocol options ${typeName(any.typeUrl)}`);
        continue;
      }
      options = this.#httpProtocolOptions(any.body, at);
    }
    return options;
  }

  #httpProtocolOptions(v: Obj, path: string): HttpOptions {
    const f = this.message(v, path, HTTP_PROTOCOL_OPTIONS);
    const common = this.#commonHttp(f.get('common_http_protocol_options'), `${path}.common_http_protocol_options`);
    if (f.has('explicit_http_config') && f.has('use_downstream_protocol_config')) this.problem(`${path}.use_downstream_protocol_config`, 'set together with explicit_http_config');
    const explicit = f.has('explicit_http_config');
    const key = explicit ? 'explicit_http_config' : 'use_downstream_protocol_config';
    if (!f.has(key)) return common;
    const at = `${path}.${key}`;
    const p = this.message(f.get(key), at, PROTOCOL_CONFIG);
    if (p.has('http_protocol_options')) this.message(p.get('http_protocol_options'), `${at}.http_protocol_options`, HTTP1_PROTOCOL_OPTIONS);
    if (explicit && p.has('http_protocol_options') && p.has('http2_protocol_options')) this.problem(at, 'names more than one protocol');
    if (explicit && !p.has('http_protocol_options') && !p.has('http2_protocol_options')) this.problem(at, 'names no protocol');
    if (!p.has('http2_protocol_options')) return common;
    // Explicit: always HTTP/2. Downstream: HTTP/2 for HTTP/2 clients, HTTP/1.1 for the others.
    const h2 = this.#http2(p.get('http2_protocol_options'), `${at}.http2_protocol_options`);
    return { ...common, ...h2, protocol: explicit ? 'http2' : 'client' };
  }

  #commonHttp(v: unknown, path: string): HttpOptions {
    const f = this.message(v, path, COMMON_HTTP_PROTOCOL_OPTIONS);
    const idle = this.duration(f.get('idle_timeout'), `${path}.idle_timeout`);
    const max = this.uint(f.get('max_requests_per_connection'), `${path}.max_requests_per_connection`);
    return { ...(idle !== undefined ? { idleTimeoutMs: idle } : {}), ...(max !== undefined ? { maxRequestsPerConnection: max } : {}) };
  }

  #http2(v: unknown, path: string): HttpOptions {
    const f = this.message(v, path, HTTP2_PROTOCOL_OPTIONS);
    const streams = this.uint(f.get('max_concurrent_streams'), `${path}.max_concurrent_streams`);
    if (streams === 0) this.problem(`${path}.max_concurrent_streams`, 'must be at least 1');
    return streams !== undefined && streams > 0 ? { maxConcurrentStreams: streams } : {};
  }

  // --- transport sockets ---

  /** The cluster's upstream TLS (upstream-tls.ts); its problems become the cluster's, paths unchanged. */
  #upstreamTls(f: Fields): UpstreamTls | undefined {
    const reader = new UpstreamTlsTranslator(this.#trustDomain);
    const tls = reader.upstreamTls(f);
    this.problems.push(...reader.problems);
    return tls;
  }

  // --- bind config, metadata, filters ---

  /**
   * upstream_bind_config → the source address per family. A family with no address of its own
   * uses the primary one, so connecting to a host of that family fails, as it does in Envoy.
   */
  #bindConfig(v: unknown, path: string): Cluster['sourceAddress'] {
    if (v === undefined) return undefined;
    const f = this.message(v, path, BIND_CONFIG);
    const addresses: string[] = [];
    const primary = this.#sourceAddress(f.get('source_address'), `${path}.source_address`);
    if (primary !== undefined) addresses.push(primary);
    this.list(f.get('extra_source_addresses'), `${path}.extra_source_addresses`).forEach((e, i) => {
      const at = `${path}.extra_source_addresses[${i}]`;
      const a = this.#sourceAddress(this.message(e, at, EXTRA_SOURCE_ADDRESS).get('address'), `${at}.address`);
      if (a !== undefined) addresses.push(a);
    });
    this.list(f.get('additional_source_addresses'), `${path}.additional_source_addresses`).forEach((e, i) => {
      const a = this.#sourceAddress(e, `${path}.additional_source_addresses[${i}]`);
      if (a !== undefined) addresses.push(a);
    });
    if (addresses.length === 0) return undefined;
    const ipv4 = addresses.find((a) => isIP(a) === 4) ?? addresses[0]!;
    const ipv6 = addresses.find((a) => isIP(a) === 6) ?? addresses[0]!;
    return { ipv4, ipv6 };
  }

  /** A source SocketAddress: an IP literal with port 0 (any local port). */
  #sourceAddress(v: unknown, path: string): string | undefined {
    if (v === undefined) return undefined;
    const f = this.message(v, path, SOCKET_ADDRESS);
    if ((this.enum(f.get('protocol'), `${path}.protocol`, ['TCP', 'UDP']) ?? 0) !== 0) this.problem(`${path}.protocol`, 'not supported: UDP');
    const address = this.string(f.get('address'), `${path}.address`) ?? '';
    if (isIP(address) === 0) this.problem(`${path}.address`, `must be an IP address, got ${JSON.stringify(address)}`);
    if ((this.uint(f.get('port_value'), `${path}.port_value`) ?? 0) !== 0) this.problem(`${path}.port_value`, 'not supported: binding a fixed source port');
    return isIP(address) === 0 ? undefined : address;
  }

  /**
   * Istio's cluster metadata → the model's `service`: `istio.services[0]` gives host and
   * namespace (an inbound cluster serving several services reports the first), the cluster name
   * `outbound|<port>|<subset>|<host>` (or `inbound|<port>||`) the port and subset. Other keys
   * (`default_original_port`, `config`: the DestinationRule's path) and namespaces are opaque.
   */
  #service(v: unknown, path: string, name: string): Cluster['service'] {
    const f = this.message(v, path, METADATA);
    const filter = f.get('filter_metadata');
    if (filter === undefined) return undefined;
    if (!isObject(filter)) {
      this.problem(`${path}.filter_metadata`, 'must be an object');
      return undefined;
    }
    const istio = filter['istio'];
    if (!isObject(istio) || !Array.isArray(istio['services'])) return undefined;
    const first: unknown = istio['services'][0];
    const parts = /^(?:outbound|inbound)\|(\d+)\|([^|]*)\|/.exec(name);
    if (!isObject(first) || typeof first['host'] !== 'string' || parts === null) return undefined;
    const subset = parts[2] !== '' ? parts[2] : typeof istio['subset'] === 'string' && istio['subset'] !== '' ? istio['subset'] : undefined;
    return {
      host: first['host'],
      namespace: typeof first['namespace'] === 'string' ? first['namespace'] : '',
      port: Number(parts[1]),
      ...(subset !== undefined ? { subset } : {}),
    };
  }

  /** Upstream network filters: only Istio's metadata exchange (skiff exchanges peer metadata itself). */
  #filters(v: unknown, path: string): void {
    this.list(v, path).forEach((filter, i) => {
      const at = `${path}[${i}]`;
      const f = this.message(filter, at, FILTER);
      const any = this.any(f.get('typed_config'), `${at}.typed_config`);
      if (any === undefined) {
        if (!f.has('typed_config')) this.problem(`${at}.typed_config`, 'required');
        return;
      }
      let type = typeName(any.typeUrl);
      if (isTypedStruct(type)) {
        const url = any.body['type_url'] ?? any.body['typeUrl'];
        type = typeof url === 'string' ? typeName(url) : '';
      }
      if (!METADATA_EXCHANGE_TYPES.has(type)) this.problem(`${at}.typed_config`, `not supported: upstream network filter ${type || JSON.stringify(any.typeUrl)}`);
    });
  }
}

const camel = (name: string): string => name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

function isPrime(n: number): boolean {
  if (n < 2) return false;
  for (let d = 2; d * d <= n; d++) if (n % d === 0) return false;
  return true;
}
