/**
 * Envoy v3 `envoy.config.listener.v3.Listener` → a typed listener: its address, and per filter
 * chain the match and what the chain does (serve HTTP with a route configuration, or proxy TCP
 * to a cluster). Turning the listeners of a sidecar into skiff's model is `sidecar-model.ts`.
 *
 * Contract: as for every xDS translator (fields.ts) — each field is translated, accepted with a
 * reason, or refused with its path. Filters are known by their type URL: Envoy's HTTP connection
 * manager, TCP proxy and router; Istio's metadata exchange and stats filters, which skiff
 * replaces with its own (metadata exchange on mTLS hosts, Istio's standard metrics); and the
 * listener filters whose work skiff's capture listeners always do (original_dst, tls_inspector,
 * http_inspector). RBAC (HTTP and network) and jwt_authn filters become the chain's policies
 * (rbac.ts, jwt-authn.ts). Any other filter is refused: skiff cannot run it, and skipping it
 * could open what it guards (ext_authz, Lua).
 */
import type { Authorization, L4Destination, RequestAuthentication, RouteConfig } from '../../model/index.js';
import { translateJwtAuthn, JWT_AUTHN_TYPE } from './jwt-authn.js';
import { combineRbacFilters, HTTP_RBAC_TYPE, NETWORK_RBAC_TYPE, translateHttpRbac, translateNetworkRbac } from './rbac.js';
import { FieldReader, isTypedStruct, typeName, type AnyMessage, type Spec, type XdsProblem } from './fields.js';
import { rawFieldPresent } from './proto.js';
import { translateRouteConfiguration } from './route-configuration.js';

/** What a filter chain matches on (Envoy FilterChainMatch, the fields istiod uses). */
export interface ChainMatch {
  readonly destinationPort?: number;
  /** CIDRs of the original destination; empty matches any. */
  readonly prefixRanges: readonly string[];
  /** SNI names, exact or `*.suffix`; empty matches any. */
  readonly serverNames: readonly string[];
  /** `tls` or `raw_buffer`; undefined matches either. */
  readonly transportProtocol?: string;
  /** ALPN (or sniffed HTTP) protocols; empty matches any. */
  readonly applicationProtocols: readonly string[];
}

export type ChainAction =
  /** An HTTP connection manager: its routes by RDS name, or inline. */
  | { readonly kind: 'http'; readonly rds?: string; readonly routeConfig?: RouteConfig }
  /** A TCP proxy to one cluster or a weighted set. */
  | { readonly kind: 'tcp'; readonly destinations: readonly L4Destination[] };

export interface FilterChain {
  readonly name: string;
  readonly match: ChainMatch;
  readonly action: ChainAction;
  /** The chain terminates TLS with the workload certificate (Istio's inbound mTLS chains). */
  readonly terminatesMtls: boolean;
  /** The chain's RBAC filters as one policy set (HTTP filters for HTTP chains, network ones for TCP); none: nothing enforced. */
  readonly authorization?: Authorization;
  /** The chain's jwt_authn filter (HTTP chains); none: no token is checked. */
  readonly requestAuthentication?: RequestAuthentication;
}

export interface XdsListener {
  readonly name: string;
  readonly address: string;
  readonly port: number;
  /** Istio's virtualOutbound: hands connections to the listener of their original destination. */
  readonly useOriginalDst: boolean;
  readonly bindToPort: boolean;
  readonly direction: 'INBOUND' | 'OUTBOUND' | 'UNSPECIFIED';
  readonly chains: readonly FilterChain[];
  readonly defaultChain?: FilterChain;
}

/** A listener's chains, its default chain last. */
export const chainsOf = (l: XdsListener): FilterChain[] => [...l.chains, ...(l.defaultChain !== undefined ? [l.defaultChain] : [])];

export type ListenerResult = { readonly listener?: XdsListener; readonly problems: readonly XdsProblem[] };

export function translateListener(json: unknown): ListenerResult {
  const t = new ListenerTranslator();
  const listener = t.listener(json);
  return t.problems.length === 0 ? { listener, problems: [] } : { problems: t.problems };
}

// === specs ===

const ACCESS_LOG = 'skiff writes the access log MeshConfig asks for (accessLogFile, accessLogEncoding, accessLogFormat)';
const STATS = 'names stats only';

const LISTENER: Spec = {
  handled: ['name', 'address', 'filter_chains', 'default_filter_chain', 'use_original_dst', 'bind_to_port', 'deprecated_v1', 'traffic_direction', 'listener_filters'],
  ignored: {
    '@type': 'the resource type',
    access_log: ACCESS_LOG,
    listener_filters_timeout: 'skiff waits for the first bytes for MeshConfig protocolDetectionTimeout',
    continue_on_listener_filters_timeout: 'after the detection timeout skiff proxies the connection as TCP, as istiod asks',
    per_connection_buffer_limit_bytes: 'skiff applies back-pressure through stream flow control instead of a fixed buffer',
    stat_prefix: STATS,
  },
  refused: {
    internal_listener: 'internal listeners (ambient, HBONE) are not supported',
    additional_addresses: 'one address per listener',
    transparent: 'TPROXY interception is not supported',
    freebind: 'skiff binds its own capture listeners',
    connection_balance_config: 'each worker accepts for itself',
    udp_listener_config: 'UDP is not proxied',
    listener_filter_chain_match_predicate: 'not supported',
    filter_chain_matcher: 'the unified matcher API is not supported; use filter_chain_match',
  },
};

const ADDRESS: Spec = { handled: ['socket_address'], refused: { pipe: 'unix socket listeners are not supported', envoy_internal_address: 'internal addresses are not supported' } };
const SOCKET_ADDRESS: Spec = {
  handled: ['address', 'port_value', 'protocol'],
  ignored: { ipv4_compat: 'skiff listens on both families', resolver_name: 'not used for listeners' },
  refused: { named_port: 'not supported' },
};
const LISTENER_FILTER: Spec = {
  handled: ['name', 'typed_config'],
  ignored: { filter_disabled: 'skiff runs its inspection only when a chain needs what it finds (istiod disables it on server-first ports)' },
};
const FILTER_CHAIN: Spec = {
  handled: ['filter_chain_match', 'filters', 'transport_socket', 'name'],
  ignored: { metadata: 'descriptive only' },
  refused: { transport_socket_connect_timeout: 'not supported', on_demand_configuration: 'not supported' },
};
const FILTER_CHAIN_MATCH: Spec = {
  handled: ['destination_port', 'prefix_ranges', 'server_names', 'transport_protocol', 'application_protocols'],
  refused: {
    direct_source_prefix_ranges: 'source matching is not supported',
    source_prefix_ranges: 'source matching is not supported',
    source_ports: 'source matching is not supported',
    source_type: 'source matching is not supported',
    address_suffix: 'not supported',
    suffix_len: 'not supported',
  },
};
const CIDR_RANGE: Spec = { handled: ['address_prefix', 'prefix_len'] };
const FILTER: Spec = { handled: ['name', 'typed_config'], refused: { config_discovery: 'filter discovery (ECDS) is not supported' } };
const TRANSPORT_SOCKET: Spec = { handled: ['name', 'typed_config'] };

const TCP_PROXY: Spec = {
  handled: ['cluster', 'weighted_clusters', 'idle_timeout'],
  ignored: { stat_prefix: STATS, access_log: ACCESS_LOG, access_log_options: ACCESS_LOG, max_connect_attempts: 'skiff makes one connect attempt per host pick' },
  refused: {
    tunneling_config: 'tunnelling TCP over HTTP (HBONE) is not supported',
    metadata_match: 'subset load balancing is not supported',
    on_demand: 'not supported',
    hash_policy: 'TCP consistent hashing is not supported',
    max_downstream_connection_duration: 'not supported',
    downstream_idle_timeout: 'not supported',
    upstream_idle_timeout: 'not supported',
  },
};
const TCP_WEIGHTED: Spec = { handled: ['clusters'], refused: { runtime_key_prefix: 'skiff has no runtime' } };
const TCP_CLUSTER_WEIGHT: Spec = { handled: ['name', 'weight'], refused: { metadata_match: 'subset load balancing is not supported' } };

const HCM: Spec = {
  handled: ['rds', 'route_config', 'http_filters', 'upgrade_configs', 'stream_idle_timeout', 'normalize_path', 'path_with_escaped_slashes_action', 'codec_type', 'merge_slashes'],
  ignored: {
    stat_prefix: STATS,
    access_log: ACCESS_LOG,
    tracing: 'skiff traces as MeshConfig asks (defaultConfig.tracing, extensionProviders); span tags are its own',
    use_remote_address: 'skiff appends the peer to x-forwarded-for and trusts it as a sidecar does',
    request_id_extension: 'skiff generates UUID x-request-ids, as the uuid extension does',
    server_name: 'skiff sends `server: istio-envoy` on inbound and gateway responses, as istiod asks',
    forward_client_cert_details: 'skiff sets x-forwarded-client-cert on inbound mTLS requests as istiod asks (APPEND_FORWARD)',
    set_current_client_cert_details: 'skiff puts the peer URI and hash in x-forwarded-client-cert, as istiod asks',
    http2_protocol_options: 'stream limits follow skiff’s HTTP/2 defaults',
    http_protocol_options: 'HTTP/1.1 options follow skiff’s defaults (no HTTP/1.0 without a host)',
    common_http_protocol_options: 'idle timeouts follow MeshConfig',
    generate_request_id: 'skiff always makes an x-request-id when missing',
    preserve_external_request_id: 'skiff keeps a request id it receives',
    delayed_close_timeout: 'connection close timing',
    internal_address_config: 'skiff treats loopback and private peers as internal, Envoy’s default',
    always_set_request_id_in_response: 'not set by istiod',
  },
  refused: {
    scoped_routes: 'scoped routes are not supported',
    request_timeout: 'a whole-request timeout is not supported',
    strip_matching_host_port: 'not supported',
    local_reply_config: 'custom local replies are not supported',
    add_user_agent: 'not supported',
    max_request_headers_kb: 'the header size limit is skiff’s (60 KiB)',
  },
};
const RDS: Spec = { handled: ['route_config_name'], ignored: { config_source: 'skiff takes every resource over its one ADS stream' } };
const HTTP_FILTER: Spec = { handled: ['name', 'typed_config'], ignored: { is_optional: 'skiff knows every filter it accepts' }, refused: { config_discovery: 'filter discovery (ECDS) is not supported', disabled: 'per-route filter enabling is not supported' } };
const UPGRADE_CONFIG: Spec = { handled: ['upgrade_type', 'enabled'], refused: { filters: 'upgrade filter chains are not supported' } };

const DOWNSTREAM_TLS: Spec = {
  handled: ['common_tls_context', 'require_client_certificate'],
  ignored: { disable_stateless_session_resumption: 'skiff does not resume sessions', session_timeout: 'skiff does not resume sessions' },
  refused: { require_sni: 'not supported', ocsp_staple_policy: 'not supported', full_scan_certs_on_sni_mismatch: 'not supported' },
};
const COMMON_TLS: Spec = {
  handled: ['tls_certificate_sds_secret_configs', 'combined_validation_context', 'validation_context_sds_secret_config', 'alpn_protocols'],
  ignored: { tls_params: 'skiff uses TLS 1.2–1.3 with Istio’s default cipher suites' },
  refused: { tls_certificates: 'inline certificates are not supported: skiff uses the workload certificate (SDS `default`)', validation_context: 'inline trust is not supported: skiff uses the mesh root (SDS `ROOTCA`)' },
};

// --- filter types ---

const T = 'type.googleapis.com/';
const HCM_TYPE = `${T}envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager`;
const TCP_PROXY_TYPE = `${T}envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy`;
const DOWNSTREAM_TLS_TYPE = `${T}envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext`;
const RAW_BUFFER_TYPE = `${T}envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer`;
/** Wasm filter types (HTTP and network), as type names. */
const WASM_TYPES = new Set(['envoy.extensions.filters.http.wasm.v3.Wasm', 'envoy.extensions.filters.network.wasm.v3.Wasm']);

/** Istio filters skiff does the work of itself, by type name (TypedStruct type_url or @type). */
const ISTIO_NETWORK_FILTERS: Readonly<Record<string, string>> = {
  'stats.PluginConfig': 'skiff emits Istio’s standard TCP metrics itself',
  'envoy.tcp.metadataexchange.config.MetadataExchange': 'skiff identifies TCP peers by their mTLS identity',
  'io.istio.network.metadata_exchange.Config': 'skiff identifies TCP peers by their mTLS identity',
  // Istio ≤ 1.17's authn filter: derives the peer principal from the mTLS certificate, as skiff does.
  'istio.envoy.config.filter.http.authn.v2alpha1.FilterConfig': 'skiff takes peer principals from the mTLS certificate',
  'io.istio.network.authn.Config': 'skiff takes peer principals from the mTLS certificate',
};
const ISTIO_HTTP_FILTERS: Readonly<Record<string, string>> = {
  ...ISTIO_NETWORK_FILTERS,
  'stats.PluginConfig': 'skiff emits Istio’s standard HTTP metrics itself',
  'envoy.tcp.metadataexchange.config.MetadataExchange': 'skiff exchanges x-envoy-peer-metadata itself on mTLS hosts',
  'io.istio.http.peer_metadata.Config': 'skiff exchanges x-envoy-peer-metadata itself on mTLS hosts',
  'istio.envoy.config.filter.http.alpn.v2alpha1.FilterConfig': 'skiff offers Istio’s ALPN on mTLS connections itself',
  'envoy.extensions.filters.http.grpc_stats.v3.FilterConfig': STATS,
  'envoy.extensions.filters.http.router.v3.Router': 'the router is skiff’s own',
  // Empty filter configs: the per-route configs (translated with the routes) carry the policy.
  'envoy.extensions.filters.http.fault.v3.HTTPFault': 'fault injection is configured per route',
  'envoy.extensions.filters.http.cors.v3.Cors': 'CORS is configured per route',
  'envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit': 'rate limits are configured per route',
};
/** Filters whose typed_config must be empty for the reason above to hold. */
const EMPTY_CONFIG_FILTERS = new Set([
  'envoy.extensions.filters.http.fault.v3.HTTPFault',
  'envoy.extensions.filters.http.cors.v3.Cors',
  'envoy.extensions.filters.http.router.v3.Router',
  'envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit',
]);
/** Fields these filters may set without configuring anything (local_ratelimit requires a stat prefix). */
const INERT_FIELDS = new Set(['stat_prefix', 'statPrefix']);
/** Istio's null-VM Wasm plugins, by the inline code name their Wasm config runs. */
const ISTIO_WASM: Readonly<Record<string, string>> = {
  'envoy.wasm.metadata_exchange': 'skiff exchanges x-envoy-peer-metadata itself on mTLS hosts',
  'envoy.wasm.stats': 'skiff emits Istio’s standard HTTP metrics itself',
};
const LISTENER_FILTERS: Readonly<Record<string, string>> = {
  'envoy.extensions.filters.listener.original_dst.v3.OriginalDst': 'skiff’s capture listeners read SO_ORIGINAL_DST',
  'envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector': 'skiff reads the ClientHello when a chain needs SNI or ALPN',
  'envoy.extensions.filters.listener.http_inspector.v3.HttpInspector': 'skiff sniffs HTTP when a chain needs it',
};

/** The policy filters found while reading one chain. */
interface ChainPolicies {
  readonly rbac: Array<{ readonly path: string; readonly authorization: Authorization }>;
  jwt?: RequestAuthentication;
}

// === impl ListenerTranslator ===

class ListenerTranslator extends FieldReader {
  listener(json: unknown): XdsListener | undefined {
    const f = this.message(json, '', LISTENER);
    const name = this.string(f.get('name'), 'name') ?? '';
    if (name === '') this.problem('name', 'required');
    const address = this.#address(f.get('address'), 'address');
    for (const [i, lf] of this.list(f.get('listener_filters'), 'listener_filters').entries()) this.#listenerFilter(lf, `listener_filters[${i}]`);
    const chains = this.list(f.get('filter_chains'), 'filter_chains').flatMap((c, i) => this.#chain(c, `filter_chains[${i}]`) ?? []);
    const defaultChain = f.get('default_filter_chain') === undefined ? undefined : this.#chain(f.get('default_filter_chain'), 'default_filter_chain');
    if (chains.length === 0 && defaultChain === undefined) this.problem('filter_chains', 'a listener needs a filter chain');
    const direction = this.enum(f.get('traffic_direction'), 'traffic_direction', ['UNSPECIFIED', 'INBOUND', 'OUTBOUND']) ?? 0;
    if (address === undefined) return undefined;
    return {
      name,
      address: address.address,
      port: address.port,
      useOriginalDst: this.bool(f.get('use_original_dst'), 'use_original_dst') ?? false,
      // Istio ≤ 1.10 said bind_to_port: false in the legacy deprecated_v1 message.
      bindToPort: this.bool(f.get('bind_to_port'), 'bind_to_port') ?? this.bool(this.message(f.get('deprecated_v1'), 'deprecated_v1', { handled: ['bind_to_port'] }).get('bind_to_port'), 'deprecated_v1.bind_to_port') ?? true,
      direction: (['UNSPECIFIED', 'INBOUND', 'OUTBOUND'] as const)[direction]!,
      chains,
      ...(defaultChain !== undefined ? { defaultChain } : {}),
    };
  }

  #address(v: unknown, path: string): { address: string; port: number } | undefined {
    const f = this.message(v, path, ADDRESS);
    const s = this.message(f.get('socket_address'), `${path}.socket_address`, SOCKET_ADDRESS);
    const protocol = this.enum(s.get('protocol'), `${path}.socket_address.protocol`, ['TCP', 'UDP']);
    if (protocol === 1) this.problem(`${path}.socket_address.protocol`, 'UDP listeners are not supported');
    const address = this.string(s.get('address'), `${path}.socket_address.address`);
    const port = this.uint(s.get('port_value'), `${path}.socket_address.port_value`);
    if (address === undefined || port === undefined || port > 65535) {
      this.problem(`${path}.socket_address`, 'an address and a port (0–65535) are required');
      return undefined;
    }
    return { address, port };
  }

  #listenerFilter(v: unknown, path: string): void {
    const f = this.message(v, path, LISTENER_FILTER);
    const config = this.#typedConfig(f, path);
    if (config === undefined) return;
    const type = this.#effectiveType(config);
    if (LISTENER_FILTERS[type] === undefined) this.problem(`${path}.typed_config`, `listener filter ${type} is not supported`);
  }

  #chain(v: unknown, path: string): FilterChain | undefined {
    const f = this.message(v, path, FILTER_CHAIN);
    const match = this.#match(f.get('filter_chain_match'), `${path}.filter_chain_match`);
    const terminatesMtls = this.#transportSocket(f.get('transport_socket'), `${path}.transport_socket`);
    let action: ChainAction | undefined;
    const policies: ChainPolicies = { rbac: [] };
    for (const [i, filter] of this.list(f.get('filters'), `${path}.filters`).entries()) {
      const at = `${path}.filters[${i}]`;
      const found = this.#networkFilter(filter, at, policies);
      if (found === undefined) continue;
      if (action !== undefined) this.problem(at, 'a filter chain can end in one terminal filter only');
      action = found;
    }
    if (action === undefined) {
      this.problem(`${path}.filters`, 'needs a terminal filter (http_connection_manager or tcp_proxy)');
      return undefined;
    }
    const combined = combineRbacFilters(policies.rbac);
    for (const p of combined.problems) this.problem(p.path, p.message);
    return {
      name: this.string(f.get('name'), `${path}.name`) ?? '',
      match,
      action,
      terminatesMtls,
      ...(policies.rbac.length > 0 && combined.authorization !== undefined ? { authorization: combined.authorization } : {}),
      ...(policies.jwt !== undefined ? { requestAuthentication: policies.jwt } : {}),
    };
  }

  #match(v: unknown, path: string): ChainMatch {
    const f = this.message(v, path, FILTER_CHAIN_MATCH);
    const port = this.uint(f.get('destination_port'), `${path}.destination_port`);
    const prefixRanges = this.list(f.get('prefix_ranges'), `${path}.prefix_ranges`).flatMap((r, i) => {
      const at = `${path}.prefix_ranges[${i}]`;
      const c = this.message(r, at, CIDR_RANGE);
      const prefix = this.string(c.get('address_prefix'), `${at}.address_prefix`);
      const len = this.uint(c.get('prefix_len'), `${at}.prefix_len`) ?? 0;
      return prefix === undefined ? [] : [`${prefix}/${len}`];
    });
    const transport = this.string(f.get('transport_protocol'), `${path}.transport_protocol`);
    if (transport !== undefined && transport !== '' && transport !== 'tls' && transport !== 'raw_buffer') this.problem(`${path}.transport_protocol`, `unknown transport protocol ${JSON.stringify(transport)}`);
    return {
      ...(port !== undefined && port !== 0 ? { destinationPort: port } : {}),
      prefixRanges,
      serverNames: this.strings(f.get('server_names'), `${path}.server_names`).map((s) => s.toLowerCase()),
      ...(transport !== undefined && transport !== '' ? { transportProtocol: transport } : {}),
      applicationProtocols: this.strings(f.get('application_protocols'), `${path}.application_protocols`),
    };
  }

  /**
   * A chain's transport socket: none or raw_buffer (plaintext), or TLS terminated with the
   * workload certificate (SDS `default`) and, when client certificates are required, the mesh
   * root (SDS `ROOTCA`): Istio's inbound mTLS. Returns whether it terminates mTLS.
   */
  #transportSocket(v: unknown, path: string): boolean {
    if (v === undefined) return false;
    const f = this.message(v, path, TRANSPORT_SOCKET);
    // A name alone configures nothing, except plaintext.
    if (f.get('typed_config') === undefined && f.get('name') === 'envoy.transport_sockets.raw_buffer') return false;
    const config = this.#typedConfig(f, path);
    if (config === undefined) return false;
    if (config.typeUrl === RAW_BUFFER_TYPE) return false;
    if (config.typeUrl !== DOWNSTREAM_TLS_TYPE) {
      this.problem(`${path}.typed_config`, `transport socket ${typeName(config.typeUrl)} is not supported`);
      return false;
    }
    const at = `${path}.typed_config`;
    const tls = this.message(config.body, at, DOWNSTREAM_TLS);
    const requireClient = this.bool(tls.get('require_client_certificate'), `${at}.require_client_certificate`) ?? false;
    if (!requireClient) this.problem(`${at}.require_client_certificate`, 'only mutual TLS (Istio’s inbound mTLS) is supported on sidecar listeners');
    this.#commonTls(tls.get('common_tls_context'), `${at}.common_tls_context`);
    return true;
  }

  #commonTls(v: unknown, path: string): void {
    const f = this.message(v, path, COMMON_TLS);
    const certs = this.list(f.get('tls_certificate_sds_secret_configs'), `${path}.tls_certificate_sds_secret_configs`);
    const names = certs.map((c, i) => this.#sdsName(c, `${path}.tls_certificate_sds_secret_configs[${i}]`));
    if (names.length !== 1 || names[0] !== 'default') this.problem(`${path}.tls_certificate_sds_secret_configs`, 'exactly one secret, `default` (the workload certificate), is supported');
    const combined = f.get('combined_validation_context');
    const separate = f.get('validation_context_sds_secret_config');
    if (combined === undefined && separate === undefined) {
      this.problem(path, 'a validation context (SDS `ROOTCA`) is required for mutual TLS');
      return;
    }
    if (separate !== undefined) this.#rootCa(separate, `${path}.validation_context_sds_secret_config`);
    if (combined !== undefined) {
      const at = `${path}.combined_validation_context`;
      const c = this.message(combined, at, { handled: ['default_validation_context', 'validation_context_sds_secret_config'] });
      this.#rootCa(c.get('validation_context_sds_secret_config'), `${at}.validation_context_sds_secret_config`);
      const d = this.message(c.get('default_validation_context'), `${at}.default_validation_context`, {
        handled: ['match_subject_alt_names', 'match_typed_subject_alt_names'],
        refused: { trusted_ca: 'inline trust is not supported', verify_certificate_spki: 'not supported', verify_certificate_hash: 'not supported', custom_validator_config: 'not supported', crl: 'not supported' },
      });
      // Istio's inbound chains accept any identity of the trust domain (`prefix: spiffe://<td>/`);
      // AuthorizationPolicy narrows it. skiff accepts exactly that.
      const sans = `${at}.default_validation_context.match_subject_alt_names`;
      for (const [i, m] of this.list(d.get('match_subject_alt_names'), sans).entries()) this.#trustDomainPrefix(m, `${sans}[${i}]`);
      const typed = `${at}.default_validation_context.match_typed_subject_alt_names`;
      for (const [i, m] of this.list(d.get('match_typed_subject_alt_names'), typed).entries()) {
        const f = this.message(m, `${typed}[${i}]`, { handled: ['san_type', 'matcher'] });
        if (this.enum(f.get('san_type'), `${typed}[${i}].san_type`, ['SAN_TYPE_UNSPECIFIED', 'EMAIL', 'DNS', 'URI', 'IP_ADDRESS', 'OTHER_NAME']) !== 3) this.problem(`${typed}[${i}].san_type`, 'only URI (SPIFFE) SANs are supported');
        this.#trustDomainPrefix(f.get('matcher'), `${typed}[${i}].matcher`);
      }
    }
  }

  #trustDomainPrefix(v: unknown, path: string): void {
    const prefix = this.message(v, path, { handled: ['prefix'], refused: { exact: 'SAN matches other than the trust-domain prefix are not supported', suffix: 'not supported', contains: 'not supported', safe_regex: 'not supported', ignore_case: 'not supported' } }).get('prefix');
    if (typeof prefix !== 'string' || !/^spiffe:\/\/[^/]+\/$/.test(prefix)) this.problem(path, 'only a `spiffe://<trust domain>/` prefix is supported');
  }

  #rootCa(v: unknown, path: string): void {
    if (this.#sdsName(v, path) !== 'ROOTCA') this.problem(path, 'the validation secret must be `ROOTCA` (the mesh root)');
  }

  #sdsName(v: unknown, path: string): string | undefined {
    const f = this.message(v, path, { handled: ['name'], ignored: { sds_config: 'skiff reads the workload certificate and mesh root itself (files or SDS over ADS)' } });
    return this.string(f.get('name'), `${path}.name`);
  }

  /**
   * A network filter: the terminal action, or undefined for a filter skiff does the work of or
   * a policy filter (added to `policies`).
   */
  #networkFilter(v: unknown, path: string, policies: ChainPolicies): ChainAction | undefined {
    const f = this.message(v, path, FILTER);
    const config = this.#typedConfig(f, path);
    if (config === undefined) return undefined;
    const at = `${path}.typed_config`;
    if (config.typeUrl === HCM_TYPE) return this.#hcm(config.body, at, policies);
    if (config.typeUrl === TCP_PROXY_TYPE) return this.#tcpProxy(config.body, at);
    const type = this.#effectiveType(config);
    if (type === NETWORK_RBAC_TYPE) {
      this.#rbac(translateNetworkRbac(config.body), path, at, policies);
      return undefined;
    }
    if (WASM_TYPES.has(type)) this.#wasm(config, at);
    else if (ISTIO_NETWORK_FILTERS[type] === undefined) this.problem(at, `network filter ${type} is not supported`);
    return undefined;
  }

  #tcpProxy(body: unknown, path: string): ChainAction | undefined {
    const f = this.message(body, path, TCP_PROXY);
    const idle = this.duration(f.get('idle_timeout'), `${path}.idle_timeout`);
    // Envoy's and MeshConfig's default; skiff's TCP idle timeout is mesh-wide.
    if (idle !== undefined && idle !== 3_600_000) this.problem(`${path}.idle_timeout`, 'only the default 1h idle timeout is supported');
    const cluster = this.string(f.get('cluster'), `${path}.cluster`);
    if (cluster !== undefined && cluster !== '') return { kind: 'tcp', destinations: [{ cluster, weight: 1 }] };
    const w = this.message(f.get('weighted_clusters'), `${path}.weighted_clusters`, TCP_WEIGHTED);
    const destinations = this.list(w.get('clusters'), `${path}.weighted_clusters.clusters`).flatMap((c, i) => {
      const at = `${path}.weighted_clusters.clusters[${i}]`;
      const cw = this.message(c, at, TCP_CLUSTER_WEIGHT);
      const name = this.string(cw.get('name'), `${at}.name`);
      const weight = this.uint(cw.get('weight'), `${at}.weight`) ?? 0;
      return name === undefined || weight === 0 ? [] : [{ cluster: name, weight }];
    });
    if (destinations.length === 0) {
      this.problem(path, 'a cluster or weighted_clusters is required');
      return undefined;
    }
    return { kind: 'tcp', destinations };
  }

  #rbac(result: ReturnType<typeof translateNetworkRbac>, filterPath: string, at: string, policies: ChainPolicies): void {
    for (const p of result.problems) this.problem(`${at}${p.path === '' ? '' : `.${p.path}`}`, p.message);
    if (result.authorization !== undefined) policies.rbac.push({ path: filterPath, authorization: result.authorization });
  }

  #hcm(body: unknown, path: string, policies: ChainPolicies): ChainAction | undefined {
    const f = this.message(body, path, HCM);
    for (const [i, u] of this.list(f.get('upgrade_configs'), `${path}.upgrade_configs`).entries()) {
      const at = `${path}.upgrade_configs[${i}]`;
      const uf = this.message(u, at, UPGRADE_CONFIG);
      const type = this.string(uf.get('upgrade_type'), `${at}.upgrade_type`);
      const enabled = this.bool(uf.get('enabled'), `${at}.enabled`) ?? true;
      if (type?.toLowerCase() !== 'websocket' || !enabled) this.problem(at, 'only the websocket upgrade (enabled) is supported: skiff proxies WebSocket and refuses other upgrades');
    }
    const idle = this.duration(f.get('stream_idle_timeout'), `${path}.stream_idle_timeout`);
    if (idle !== undefined && idle !== 0) this.problem(`${path}.stream_idle_timeout`, 'a stream idle timeout is not supported (istiod sends 0s)');
    const normalize = this.bool(f.get('normalize_path'), `${path}.normalize_path`);
    if (normalize === false) this.problem(`${path}.normalize_path`, 'skiff always normalizes paths (Istio’s BASE normalization)');
    if (this.bool(f.get('merge_slashes'), `${path}.merge_slashes`) === true) this.problem(`${path}.merge_slashes`, 'merging slashes is not supported');
    const escaped = this.enum(f.get('path_with_escaped_slashes_action'), `${path}.path_with_escaped_slashes_action`, ['IMPLEMENTATION_SPECIFIC_DEFAULT', 'KEEP_UNCHANGED', 'REJECT_REQUEST', 'UNESCAPE_AND_REDIRECT', 'UNESCAPE_AND_FORWARD']);
    if (escaped !== undefined && escaped > 1) this.problem(`${path}.path_with_escaped_slashes_action`, 'only KEEP_UNCHANGED is supported');
    const codec = this.enum(f.get('codec_type'), `${path}.codec_type`, ['AUTO', 'HTTP1', 'HTTP2', 'HTTP3']);
    if (codec !== undefined && codec !== 0) this.problem(`${path}.codec_type`, 'only AUTO is supported: skiff detects HTTP/1.1 and HTTP/2');
    // Network RBAC filters before the connection manager guard connections, not requests.
    if (policies.rbac.length > 0) this.problem(path, 'network RBAC filters before an HTTP connection manager are not supported');
    for (const [i, hf] of this.list(f.get('http_filters'), `${path}.http_filters`).entries()) this.#httpFilter(hf, `${path}.http_filters[${i}]`, policies);
    const rds = f.get('rds');
    const inline = f.get('route_config');
    if ((rds === undefined) === (inline === undefined)) {
      this.problem(path, 'exactly one of rds and route_config is required');
      return undefined;
    }
    if (rds !== undefined) {
      const name = this.string(this.message(rds, `${path}.rds`, RDS).get('route_config_name'), `${path}.rds.route_config_name`);
      if (name === undefined || name === '') {
        this.problem(`${path}.rds.route_config_name`, 'required');
        return undefined;
      }
      return { kind: 'http', rds: name };
    }
    const translated = translateRouteConfiguration(inline);
    for (const p of translated.problems) this.problem(`${path}.route_config${p.path === '' ? '' : `.${p.path}`}`, p.message);
    return { kind: 'http', routeConfig: translated.config };
  }

  #httpFilter(v: unknown, path: string, policies: ChainPolicies): void {
    const f = this.message(v, path, HTTP_FILTER);
    const config = this.#typedConfig(f, path);
    if (config === undefined) return;
    const type = this.#effectiveType(config);
    const at = `${path}.typed_config`;
    if (type === HTTP_RBAC_TYPE) {
      this.#rbac(translateHttpRbac(config.body), path, at, policies);
      return;
    }
    if (type === JWT_AUTHN_TYPE) {
      if (policies.jwt !== undefined) this.problem(at, 'one jwt_authn filter per connection manager is supported');
      const jwt = translateJwtAuthn(config.body);
      for (const p of jwt.problems) this.problem(`${at}${p.path === '' ? '' : `.${p.path}`}`, p.message);
      if (jwt.requestAuthentication !== undefined) policies.jwt = jwt.requestAuthentication;
      return;
    }
    if (WASM_TYPES.has(type)) {
      this.#wasm(config, at);
      return;
    }
    if (ISTIO_HTTP_FILTERS[type] === undefined) {
      this.problem(at, `HTTP filter ${type} is not supported`);
      return;
    }
    if (type === LEGACY_AUTHN && legacyOrigins(isTypedStruct(config.typeUrl) ? config.body['value'] : config.body)) {
      this.problem(at, 'origin (JWT) authentication in the legacy authn filter is not supported: skiff takes JWT rules from jwt_authn');
    }
    if (EMPTY_CONFIG_FILTERS.has(type) && Object.keys(config.body).some((k) => !INERT_FIELDS.has(k))) {
      this.problem(at, `${type}: only an empty filter config is supported (policies are per route)`);
    }
  }

  /** A Wasm filter (direct or in a TypedStruct): only Istio's built-in plugins, which skiff replaces. */
  #wasm(config: AnyMessage, path: string): void {
    const body = isTypedStruct(config.typeUrl) ? config.body['value'] : config.body;
    const code = wasmInlineCode(body);
    if (code === undefined || ISTIO_WASM[code] === undefined) this.problem(path, `Wasm plugin ${code ?? '(remote code)'} is not supported`);
  }

  /** A filter's or socket's typed_config, which is required: a name alone says nothing skiff can check. */
  #typedConfig(f: ReadonlyMap<string, unknown>, path: string): AnyMessage | undefined {
    if (f.get('typed_config') === undefined) {
      this.problem(`${path}.typed_config`, `required (${String(f.get('name') ?? 'unnamed')} has no configuration skiff can check)`);
      return undefined;
    }
    return this.any(f.get('typed_config'), `${path}.typed_config`);
  }

  /** The type an Any configures: a TypedStruct's inner type_url, else its own. */
  #effectiveType(config: AnyMessage): string {
    if (isTypedStruct(config.typeUrl)) return typeName(String(config.body['type_url'] ?? config.body['typeUrl'] ?? ''));
    return typeName(config.typeUrl);
  }
}

/** Istio ≤ 1.17's HTTP authn filter. */
const LEGACY_AUTHN = 'istio.envoy.config.filter.http.authn.v2alpha1.FilterConfig';

/**
 * Whether a legacy authn filter config asks for origin (JWT) authentication, which skiff does
 * not do from it; its peer part only names the mTLS principal, which skiff derives itself.
 */
function legacyOrigins(body: unknown): boolean {
  const raw = typeof body === 'object' && body !== null ? (body as Record<string, unknown>)['@value'] : undefined;
  // Off the wire the type is unknown to skiff's protos: FilterConfig.policy (1) → Policy.origins (4).
  if (typeof raw === 'string') return rawFieldPresent(raw, [1, 4]);
  const policy = typeof body === 'object' && body !== null ? (body as Record<string, unknown>)['policy'] : undefined;
  const origins = typeof policy === 'object' && policy !== null ? (policy as Record<string, unknown>)['origins'] : undefined;
  return Array.isArray(origins) && origins.length > 0;
}

/** The inline code name of a Wasm filter's VM (Istio's null-VM plugins), if any. */
function wasmInlineCode(body: unknown): string | undefined {
  const camel = (k: string): string => k.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase());
  const get = (o: unknown, k: string): unknown => (typeof o === 'object' && o !== null ? ((o as Record<string, unknown>)[k] ?? (o as Record<string, unknown>)[camel(k)]) : undefined);
  const code = get(get(get(get(get(body, 'config'), 'vm_config'), 'code'), 'local'), 'inline_string');
  return typeof code === 'string' ? code : undefined;
}
