/**
 * Listener translation and the sidecar model built from real istiod output (shared/xds-data),
 * plus the refusals that become NACKs, the node skiff presents, and pilot-agent's flags.
 */
import { readFileSync } from 'node:fs';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { translateListener, type XdsListener } from '../../src/config/xds/listener.js';
import { buildNode } from '../../src/config/xds/node.js';
import { translateRouteConfiguration } from '../../src/config/xds/route-configuration.js';
import { buildSidecarModel, routeNamesOf } from '../../src/config/xds/sidecar-model.js';
import { goDurationMs, parseGoFlags } from '../../src/cli/proxy-sidecar.js';
import { DEFAULT_MESH, type RouteConfig } from '../../src/model/index.js';
import { httpListener, virtualOutbound } from '../helpers/xds-resources.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const dump = (name: string): Obj => JSON.parse(readFileSync(new URL(`../../../shared/xds-data/${name}`, import.meta.url), 'utf8')) as Obj;
const strip = ({ ['@type']: _t, ...body }: Obj): Obj => body;

function activeListeners(d: Obj): Obj[] {
  const l = d['configs'].find((c: Obj) => String(c['@type']).includes('Listeners'));
  return (l.dynamic_listeners ?? l.dynamicListeners).flatMap((x: Obj) => {
    const a = (x.active_state ?? x.activeState)?.listener;
    return a === undefined ? [] : [strip(a)];
  });
}

function routes(d: Obj): Map<string, RouteConfig> {
  const r = d['configs'].find((c: Obj) => String(c['@type']).includes('Routes') && (c.dynamic_route_configs ?? c.dynamicRouteConfigs));
  const out = new Map<string, RouteConfig>();
  for (const x of r.dynamic_route_configs ?? r.dynamicRouteConfigs) {
    const rc = strip(x.route_config ?? x.routeConfig);
    const t = translateRouteConfiguration(rc, rc['name']);
    expect(t.problems, rc['name']).toEqual([]);
    out.set(rc['name'], t.config);
  }
  return out;
}

function translateAll(d: Obj): XdsListener[] {
  return activeListeners(d).map((l) => {
    const t = translateListener(l);
    expect(t.problems, l['name']).toEqual([]);
    return t.listener!;
  });
}

describe('listeners from istiod', () => {
  it('translates every active listener of both sidecar dumps', () => {
    expect(translateAll(dump('DeathStarBench__config_dump.json'))).toHaveLength(140);
    expect(translateAll(dump('istio__configdump.json'))).toHaveLength(16);
  });

  it('builds the sidecar of the Istio 1.10 bookinfo dump (details-v1)', () => {
    const d = dump('istio__configdump.json');
    const listeners = translateAll(d);
    const rc = routes(d);
    expect(routeNamesOf(listeners).every((n) => rc.has(n))).toBe(true);
    const { model, problems } = buildSidecarModel({ listeners, routes: rc, clusters: [] }, DEFAULT_MESH);
    expect(problems).toEqual([]);
    expect(model!.mesh.outboundTrafficPolicy).toBe('ALLOW_ANY');
    // A TCP service VIP, an HTTP port for every address, and a VIP with its own routes.
    expect(model!.tcpServices).toContainEqual(
      expect.objectContaining({ addresses: ['10.96.0.10'], port: 53, protocol: 'TCP', cluster: 'outbound|53||kube-dns.kube-system.svc.cluster.local' }),
    );
    expect(model!.tcpServices).toContainEqual(expect.objectContaining({ addresses: [], port: 9080, protocol: 'AUTO', cluster: 'PassthroughCluster' }));
    expect(model!.routeConfigs.map((r) => r.name).sort()).toEqual(['15010', '15014', '80', '9080']);
    expect(model!.addressRouteConfigs!.map((a) => `${a.address}:${a.port}`).sort()).toEqual(['10.96.0.10:9153', '10.96.132.134:15021']);
    // virtualInbound: port 9080 takes mTLS and plaintext (PERMISSIVE), with its own routes.
    expect(model!.peerAuthentication).toEqual({ mode: 'PERMISSIVE', portModes: {} });
    // 9080 has HTTP chains only (a declared HTTP port); the catch-all serves both.
    expect(model!.inboundProtocols).toEqual({ default: 'AUTO', ports: { 9080: 'HTTP' } });
    expect(model!.inboundPortRouteConfigs!.map((r) => r.name)).toEqual(['9080']);
    // The IPv4 and IPv6 catch-all routes are one route to the model's passthrough cluster.
    expect(model!.inboundRouteConfig.virtualHosts[0]!.routes[0]!.action).toMatchObject({ kind: 'forward', clusters: [{ cluster: 'InboundPassthroughCluster' }] });
    expect(model!.inboundPortRouteConfigs![0]!.virtualHosts[0]!.routes[0]!.action).toMatchObject({ kind: 'forward', clusters: [{ cluster: 'inbound|9080||' }] });
  });

  it('reads STRICT and per-port modes from the inbound chains', () => {
    const d = dump('istio__configdump.json');
    const inbound = activeListeners(d).find((l) => l['name'] === 'virtualInbound')!;
    // Keep only the mTLS chains: plaintext is then refused everywhere (STRICT).
    const strict = { ...inbound, filterChains: inbound['filterChains'].filter((c: Obj) => c['transportSocket'] !== undefined || c['filterChainMatch']?.['destinationPort'] === 15006) };
    const listener = translateListener(strict).listener!;
    const built = buildSidecarModel({ listeners: [listener], routes: new Map(), clusters: [] }, DEFAULT_MESH);
    expect(built.model!.peerAuthentication).toEqual({ mode: 'STRICT', portModes: {} });
    // Port 9080 plaintext only, the rest mTLS only.
    const mixed = {
      ...strict,
      filterChains: [
        ...strict['filterChains'].filter((c: Obj) => c['filterChainMatch']?.['destinationPort'] !== 9080),
        ...inbound['filterChains'].filter((c: Obj) => c['filterChainMatch']?.['destinationPort'] === 9080 && c['transportSocket'] === undefined),
      ],
    };
    const m2 = buildSidecarModel({ listeners: [translateListener(mixed).listener!], routes: new Map(), clusters: [] }, DEFAULT_MESH);
    expect(m2.model!.peerAuthentication).toEqual({ mode: 'STRICT', portModes: { 9080: 'DISABLE' } });
  });

  it('takes the workload policies from virtualInbound: HTTP RBAC for requests, network RBAC for connections', () => {
    // The ambient-era httpbin sidecar; its CUSTOM (ext_authz) filters are taken out, since
    // skiff refuses them (tested below).
    const d = dump('istio__authz__configdump.yaml');
    const inbound = activeListeners(d).find((l) => l['name'] === 'virtualInbound')!;
    const withoutExtAuthz = JSON.parse(JSON.stringify(inbound), (_k, v: unknown) =>
      Array.isArray(v) ? v.filter((x: Obj) => !(typeof x === 'object' && x !== null && x['name'] === 'envoy.filters.http.ext_authz')) : v,
    ) as Obj;
    expect(translateListener(inbound).problems[0]!.message).toBe('HTTP filter envoy.extensions.filters.http.ext_authz.v3.ExtAuthz is not supported');
    const t = translateListener(withoutExtAuthz);
    expect(t.problems).toEqual([]);
    const { model, problems } = buildSidecarModel({ listeners: [t.listener!], routes: new Map(), clusters: [] }, DEFAULT_MESH, { routesPending: true });
    expect(problems).toEqual([]);
    expect(model!.authorization.allow.map((p) => p.name)).toEqual(['ns[default]-policy[httpbin]-rule[0]']);
    expect(model!.authorization.deny).toEqual([]);
    // The policy's HTTP-only rules cannot match a connection: istiod gives TCP chains a deny-all.
    expect(model!.tcpAuthorization!.allow).toHaveLength(1);
    expect(model!.tcpAuthorization!.allow[0]!.rbac).toBeUndefined();
  });

  it('refuses inbound chains whose policies differ', () => {
    const d = dump('istio__authz__configdump.yaml');
    const inbound = activeListeners(d).find((l) => l['name'] === 'virtualInbound')!;
    const cleaned = JSON.parse(JSON.stringify(inbound), (_k, v: unknown) =>
      Array.isArray(v) ? v.filter((x: Obj) => !(typeof x === 'object' && x !== null && x['name'] === 'envoy.filters.http.ext_authz')) : v,
    ) as Obj;
    // Drop the RBAC filter from one HTTP chain only.
    const chains = cleaned['filter_chains'] as Obj[];
    const i = chains.findIndex((c) => JSON.stringify(c).includes('envoy.filters.http.rbac'));
    const hcm = chains[i]!['filters'].find((f: Obj) => f['name'] === 'envoy.filters.network.http_connection_manager');
    hcm['typed_config']['http_filters'] = hcm['typed_config']['http_filters'].filter((h: Obj) => h['name'] !== 'envoy.filters.http.rbac');
    const built = buildSidecarModel({ listeners: [translateListener(cleaned).listener!], routes: new Map(), clusters: [] }, DEFAULT_MESH, { routesPending: true });
    expect(built.problems.map((p) => p.message)).toContainEqual(expect.stringContaining('per-port policies are not supported'));
  });

  it('takes REGISTRY_ONLY from virtualOutbound; without virtualInbound every inbound connection is closed', () => {
    const listener = translateListener(strip(virtualOutbound('BlackHoleCluster') as Obj)).listener!;
    const model = buildSidecarModel({ listeners: [listener], routes: new Map(), clusters: [] }, DEFAULT_MESH).model!;
    expect(model.mesh.outboundTrafficPolicy).toBe('REGISTRY_ONLY');
    expect(model.inboundProtocols).toEqual({ default: 'NONE', ports: {} });
  });

  it('serves an inbound port as its chains say: TCP-only ports proxy HTTP bytes too', () => {
    const d = dump('istio__configdump.json');
    const inbound = activeListeners(d).find((l) => l['name'] === 'virtualInbound')!;
    // Port 9080 as a TCP port: its HTTP connection managers replaced by TCP proxies.
    const tcp = { name: 'envoy.filters.network.tcp_proxy', typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', statPrefix: 'inbound|9080||', cluster: 'inbound|9080||' } };
    const asTcp = {
      ...inbound,
      filterChains: inbound['filterChains'].map((c: Obj) => (c['filterChainMatch']?.['destinationPort'] === 9080 ? { ...c, filters: [tcp] } : c)),
    };
    const model = buildSidecarModel({ listeners: [translateListener(asTcp).listener!], routes: new Map(), clusters: [] }, DEFAULT_MESH).model!;
    expect(model.inboundProtocols).toEqual({ default: 'AUTO', ports: { 9080: 'TCP' } });
    expect(model.inboundPortRouteConfigs).toEqual([]);
  });
});

describe('what becomes a NACK', () => {
  const problems = (l: object): string[] => translateListener(strip(l as Obj)).problems.map((p) => `${p.path}: ${p.message}`);

  it('refuses filters skiff cannot run, naming the path', () => {
    const l = httpListener(80) as Obj;
    const chain = l['filter_chains'][0];
    const hcm = chain.filters[0].typed_config;
    const lua = { name: 'envoy.filters.http.lua', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua', default_source_code: { inline_string: 'x' } } };
    const withLua = { ...l, filter_chains: [{ ...chain, filters: [{ ...chain.filters[0], typed_config: { ...hcm, http_filters: [lua, ...hcm.http_filters] } }] }] };
    expect(problems(withLua)).toEqual(['filter_chains[0].filters[0].typed_config.http_filters[0].typed_config: HTTP filter envoy.extensions.filters.http.lua.v3.Lua is not supported']);
    const rbac = { name: 'envoy.filters.network.rbac', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.ext_authz.v3.ExtAuthz' } };
    expect(problems({ ...l, filter_chains: [{ ...chain, filters: [rbac, ...chain.filters] }] })[0]).toContain('network filter envoy.extensions.filters.network.ext_authz.v3.ExtAuthz is not supported');
  });

  it('refuses a filter or transport socket given by name only, and a listener-level rate limit', () => {
    const l = httpListener(80) as Obj;
    const chain = l['filter_chains'][0];
    const hcm = chain.filters[0].typed_config;
    const named = { name: 'envoy.filters.http.ext_authz' };
    expect(problems({ ...l, filter_chains: [{ ...chain, filters: [{ ...chain.filters[0], typed_config: { ...hcm, http_filters: [named, ...hcm.http_filters] } }] }] })).toEqual([
      'filter_chains[0].filters[0].typed_config.http_filters[0].typed_config: required (envoy.filters.http.ext_authz has no configuration skiff can check)',
    ]);
    // A TLS socket without its context would otherwise read as plaintext.
    expect(problems({ ...l, filter_chains: [{ ...chain, transport_socket: { name: 'envoy.transport_sockets.tls' } }] })).toEqual([
      'filter_chains[0].transport_socket.typed_config: required (envoy.transport_sockets.tls has no configuration skiff can check)',
    ]);
    expect(problems({ ...l, filter_chains: [{ ...chain, transport_socket: { name: 'envoy.transport_sockets.raw_buffer' } }] })).toEqual([]);
    const limit = (config: Obj): Obj => ({ name: 'envoy.filters.http.local_ratelimit', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit', stat_prefix: 'http_local_rate_limiter', ...config } });
    const withLimit = (config: Obj): Obj => ({ ...l, filter_chains: [{ ...chain, filters: [{ ...chain.filters[0], typed_config: { ...hcm, http_filters: [limit(config), ...hcm.http_filters] } }] }] });
    expect(problems(withLimit({}))).toEqual([]);
    expect(problems(withLimit({ token_bucket: { max_tokens: 10, fill_interval: '1s' } }))[0]).toContain('only an empty filter config is supported (policies are per route)');
  });

  it("refuses the legacy authn filter's origin (JWT) authentication", () => {
    const l = httpListener(80) as Obj;
    const chain = l['filter_chains'][0];
    const hcm = chain.filters[0].typed_config;
    const authn = (policy: Obj): Obj => ({ name: 'istio_authn', typed_config: { '@type': 'type.googleapis.com/istio.envoy.config.filter.http.authn.v2alpha1.FilterConfig', policy } });
    const withAuthn = (policy: Obj): Obj => ({ ...l, filter_chains: [{ ...chain, filters: [{ ...chain.filters[0], typed_config: { ...hcm, http_filters: [authn(policy), ...hcm.http_filters] } }] }] });
    expect(problems(withAuthn({ peers: [{ mtls: { mode: 'PERMISSIVE' } }] }))).toEqual([]);
    expect(problems(withAuthn({ origins: [{ jwt: { issuer: 'x' } }] }))[0]).toContain('origin (JWT) authentication in the legacy authn filter is not supported');
    // Off the wire the filter's type is unknown to skiff's protos: its raw bytes are checked.
    const raw = (withOrigins: boolean): string => {
      const policy = protobuf.Writer.create();
      policy.uint32((2 << 3) | 2).bytes(protobuf.Writer.create().finish()); // peers: [{}]
      if (withOrigins) policy.uint32((4 << 3) | 2).bytes(protobuf.Writer.create().uint32((1 << 3) | 2).string('jwt').finish());
      return Buffer.from(protobuf.Writer.create().uint32((1 << 3) | 2).bytes(policy.finish()).uint32((3 << 3) | 0).bool(true).finish()).toString('base64');
    };
    const wire = (withOrigins: boolean): Obj => ({ ...l, filter_chains: [{ ...chain, filters: [{ ...chain.filters[0], typed_config: { ...hcm, http_filters: [{ name: 'istio_authn', typed_config: { '@type': 'type.googleapis.com/istio.envoy.config.filter.http.authn.v2alpha1.FilterConfig', '@value': raw(withOrigins) } }, ...hcm.http_filters] } }] }] });
    expect(problems(wire(false))).toEqual([]);
    expect(problems(wire(true))[0]).toContain('origin (JWT) authentication');
  });

  it('refuses unknown fields, chains without a terminal filter, and listeners that would bind', () => {
    const l = httpListener(80) as Obj;
    expect(problems({ ...l, reuse_port: true })).toEqual(['reuse_port: unknown field']);
    expect(problems({ ...l, filter_chains: [{ filters: [] }], default_filter_chain: undefined })).toContain('filter_chains[0].filters: needs a terminal filter (http_connection_manager or tcp_proxy)');
    const bound = translateListener(strip({ ...l, bind_to_port: true })).listener!;
    expect(buildSidecarModel({ listeners: [bound], routes: new Map(), clusters: [] }, DEFAULT_MESH).problems[0]!.message).toContain('must not bind');
  });

  it('checks an LDS update for shape before its routes come, and routes once they do', () => {
    const listener = translateListener(strip(httpListener(80) as Obj)).listener!;
    expect(buildSidecarModel({ listeners: [listener], routes: new Map(), clusters: [] }, DEFAULT_MESH, { routesPending: true }).problems).toEqual([]);
    expect(buildSidecarModel({ listeners: [listener], routes: new Map(), clusters: [] }, DEFAULT_MESH).problems[0]!.message).toContain('route configuration 80 has not been received');
  });
});

describe('the node', () => {
  it('is what istiod expects of a sidecar: id, cluster and metadata from the pod environment', () => {
    const node = buildNode({
      type: 'sidecar',
      workload: { name: 'reviews-v1-abc', namespace: 'shop', workloadName: 'reviews-v1', labels: { app: 'reviews', version: 'v1' }, clusterId: 'Kubernetes', meshId: 'cluster.local', serviceAccount: 'bookinfo-reviews', instanceIps: ['10.1.2.3'] },
      env: { ISTIO_META_POD_PORTS: '[{"containerPort":9080}]', ISTIO_METAJSON_ANNOTATIONS: '{"a":"b"}', ISTIO_META_INTERCEPTION_MODE: 'TPROXY', PATH: '/bin' },
    });
    expect(node).toMatchObject({
      id: 'sidecar~10.1.2.3~reviews-v1-abc.shop~shop.svc.cluster.local',
      cluster: 'reviews.shop',
      user_agent_name: 'skiff',
      metadata: {
        NAMESPACE: 'shop',
        INSTANCE_IPS: '10.1.2.3',
        LABELS: { app: 'reviews', version: 'v1' },
        CLUSTER_ID: 'Kubernetes',
        MESH_ID: 'cluster.local',
        WORKLOAD_NAME: 'reviews-v1',
        SERVICE_ACCOUNT: 'bookinfo-reviews',
        POD_PORTS: '[{"containerPort":9080}]',
        ANNOTATIONS: { a: 'b' },
        INTERCEPTION_MODE: 'TPROXY',
        ISTIO_VERSION: expect.stringMatching(/^1\.\d+/),
      },
    });
    expect((node['metadata'] as Obj)['PATH']).toBeUndefined();
  });
});

describe("pilot-agent's flags", () => {
  it('parses Go flag forms', () => {
    const flags = parseGoFlags(['--discoveryAddress', 'istiod:15012', '--proxyLogLevel=warning', '-concurrency', '2', '--help', '--domain', 'shop.svc.cluster.local']);
    expect(Object.fromEntries(flags)).toEqual({ discoveryAddress: 'istiod:15012', proxyLogLevel: 'warning', concurrency: '2', help: '', domain: 'shop.svc.cluster.local' });
    expect(() => parseGoFlags(['stray'])).toThrow('unexpected argument "stray"');
  });

  it('reads Go durations', () => {
    expect(goDurationMs('45s', 'x')).toBe(45_000);
    expect(goDurationMs('1m30s', 'x')).toBe(90_000);
    expect(goDurationMs('500ms', 'x')).toBe(500);
    expect(goDurationMs('0', 'x')).toBe(0);
    expect(() => goDurationMs('soon', 'drainDuration')).toThrow('--drainDuration: invalid duration "soon"');
  });
});
