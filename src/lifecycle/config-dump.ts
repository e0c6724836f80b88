/**
 * The admin `/config_dump`: the model in Envoy's ConfigDump shape (bootstrap node, clusters,
 * listeners, route configs, secrets), so tools and people used to Envoy find things where they
 * expect them. Fields without an Envoy equivalent keep skiff's names; the whole model follows
 * as a last entry (`type.skiff.dev/ModelDump`).
 */
import { socketAddress } from '../admin/admin-server.js';
import type { Cluster, Model, Route, RouteConfig, StringMatch } from '../model/index.js';

const TYPE = 'type.googleapis.com/envoy.admin.v3.';

export interface DumpContext {
  readonly version: number;
  readonly node: { readonly id: string; readonly cluster: string; readonly metadata: Record<string, unknown> };
  readonly listeners: ReadonlyArray<{ readonly name: string; readonly address: string }>;
  /** The workload certificate's identity and expiry, when one is loaded. */
  readonly certificate: { readonly identity: string; readonly notAfter: Date } | null;
}

export function configDump(model: Model, ctx: DumpContext): unknown {
  const version = String(ctx.version);
  return {
    configs: [
      { '@type': `${TYPE}BootstrapConfigDump`, bootstrap: { node: ctx.node } },
      { '@type': `${TYPE}ClustersConfigDump`, version_info: version, dynamic_active_clusters: model.clusters.map((c) => ({ version_info: version, cluster: cluster(c) })) },
      {
        '@type': `${TYPE}ListenersConfigDump`,
        version_info: version,
        dynamic_listeners: ctx.listeners.map((l) => ({ name: l.name, active_state: { version_info: version, listener: { name: l.name, address: { socket_address: socketAddress(l.address) } } } })),
      },
      {
        '@type': `${TYPE}RoutesConfigDump`,
        dynamic_route_configs: [...model.routeConfigs, model.fallbackRouteConfig, model.inboundRouteConfig].map((r) => ({ version_info: version, route_config: routeConfig(r) })),
      },
      {
        '@type': `${TYPE}SecretsConfigDump`,
        dynamic_active_secrets:
          ctx.certificate === null ? [] : [{ name: 'default', secret: { name: 'default', tls_certificate: { identity: ctx.certificate.identity, expiration_time: ctx.certificate.notAfter.toISOString() } } }],
      },
      { '@type': 'type.skiff.dev/ModelDump', version: ctx.version, model: plain(model) },
    ],
  };
}


function seconds(ms: number): string {
  return `${ms / 1000}s`;
}

const ENVOY_DISCOVERY: Record<Cluster['discovery'], string> = { STATIC: 'STATIC', STRICT_DNS: 'STRICT_DNS', ORIGINAL_DST: 'ORIGINAL_DST' };

function cluster(c: Cluster): unknown {
  const b = c.circuitBreakers;
  return {
    '@type': 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
    name: c.name,
    type: ENVOY_DISCOVERY[c.discovery],
    lb_policy: c.lb.kind,
    connect_timeout: seconds(c.connectTimeoutMs),
    circuit_breakers: { thresholds: [plain(b)] },
    ...(c.outlierDetection !== undefined ? { outlier_detection: plain(c.outlierDetection) } : {}),
    ...(c.tls !== undefined ? { transport_socket: { name: 'envoy.transport_sockets.tls', typed_config: plain(c.tls) } } : {}),
    ...(c.protocol === 'http2' ? { typed_extension_protocol_options: { 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': { explicit_http_config: { http2_protocol_options: {} } } } } : {}),
    load_assignment: {
      cluster_name: c.name,
      endpoints: [
        {
          lb_endpoints: c.endpoints.map((e) => ({
            endpoint: { address: { socket_address: { address: e.address, port_value: e.port } } },
            load_balancing_weight: e.weight,
            metadata: { filter_metadata: { istio: e.labels } },
          })),
        },
      ],
    },
    ...(c.service !== undefined ? { metadata: { filter_metadata: { istio: { services: [{ host: c.service.host, namespace: c.service.namespace }] } } } } : {}),
  };
}

function routeConfig(r: RouteConfig): unknown {
  return {
    name: r.name,
    virtual_hosts: r.virtualHosts.map((v) => ({ name: v.name, domains: v.domains, routes: v.routes.map(route) })),
  };
}

function stringMatch(m: StringMatch): Record<string, unknown> {
  const base = m.kind === 'regex' ? { safe_regex: { regex: m.value } } : { [m.kind]: m.value };
  return m.kind !== 'regex' && m.ignoreCase === true ? { ...base, ignore_case: true } : base;
}

function route(r: Route): unknown {
  const path = r.match.path;
  const match = {
    ...(path === undefined ? { prefix: '/' } : path.kind === 'prefix' ? { prefix: path.value } : path.kind === 'exact' ? { path: path.value } : path.kind === 'regex' ? { safe_regex: { regex: path.value } } : { path_match: stringMatch(path) }),
    ...(r.match.headers.length > 0 ? { headers: plain(r.match.headers) } : {}),
    ...(r.match.queryParams.length > 0 ? { query_parameters: plain(r.match.queryParams) } : {}),
  };
  const a = r.action;
  const action =
    a.kind === 'direct'
      ? { direct_response: { status: a.status, ...(a.body !== undefined ? { body: { inline_string: a.body.toString() } } : {}) } }
      : a.kind === 'redirect'
        ? { redirect: plain(a) }
        : {
            route: {
              ...(a.clusters.length === 1 ? { cluster: a.clusters[0]!.cluster } : { weighted_clusters: { clusters: a.clusters.map((c) => ({ name: c.cluster, weight: c.weight })) } }),
              timeout: a.timeoutMs === undefined ? '15s' : seconds(a.timeoutMs),
              ...(a.retryPolicy !== undefined ? { retry_policy: plain(a.retryPolicy) } : {}),
              ...(a.prefixRewrite !== undefined ? { prefix_rewrite: a.prefixRewrite } : {}),
              ...(a.hostRewrite !== undefined ? { host_rewrite_literal: a.hostRewrite } : {}),
              ...(a.mirrors !== undefined && a.mirrors.length > 0 ? { request_mirror_policies: plain(a.mirrors) } : {}),
            },
          };
  return { name: r.name, match, ...action, ...(r.fault !== undefined ? { typed_per_filter_config: { 'envoy.filters.http.fault': plain(r.fault) } } : {}) };
}

/** Model data as JSON: buffers (direct response bodies) shown as text. */
export function plain(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value, (_k, v: unknown) => (v instanceof Object && (v as { type?: string }).type === 'Buffer' ? Buffer.from((v as { data: number[] }).data).toString() : v)));
}
