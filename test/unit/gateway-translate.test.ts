/**
 * Istio Gateways and VirtualServices → the gateway proxy's ports (model.gateways), checked
 * against istiod's gateway semantics: selection by labels, merging servers per port in creation
 * order, server host namespaces, VirtualService binding and virtual host domains, httpsRedirect,
 * TLS termination and passthrough, and the fields skiff refuses.
 */
import { describe, expect, it } from 'vitest';
import { formatDiagnostic } from '../../src/config/diagnostics.js';
import { loadFromSources } from '../../src/config/load.js';
import type { GatewayPort, GatewayServer, L4Route, Model, Route, RouteConfig, VirtualHost } from '../../src/model/index.js';

interface Loaded {
  readonly model: Model | undefined;
  /** Diagnostics as printed (`mesh.yaml:line:col: …`). */
  readonly lines: string[];
}

/** Loads the documents as one file, `mesh.yaml`. */
async function load(...docs: string[]): Promise<Loaded> {
  const result = loadFromSources([{ name: 'mesh.yaml', absolutePath: '/config/mesh.yaml', text: docs.join('---\n') }]);
  return { model: result.model, lines: result.diagnostics.map((d) => formatDiagnostic(d)) };
}

/** Loads and requires a valid model. */
async function model(...docs: string[]): Promise<Model> {
  const r = await load(...docs);
  if (r.model === undefined) throw new Error(`config is invalid:\n${r.lines.join('\n')}`);
  return r.model;
}

/** Loads and requires the config to be refused; returns the error lines. */
async function refused(...docs: string[]): Promise<string[]> {
  const r = await load(...docs);
  expect(r.model, `expected errors, got:\n${r.lines.join('\n')}`).toBeUndefined();
  return r.lines.filter((l) => !l.includes(': warning: '));
}

const warnings = (r: Loaded): string[] => r.lines.filter((l) => l.includes(': warning: '));

// === resources ===

/** The proxy's mesh settings: its labels and namespace. Seven lines. */
function meshConfig(labels = '{istio: ingressgateway}', defaultNamespace = 'default'): string {
  return `apiVersion: skiff.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  defaultNamespace: ${defaultNamespace}
  workloadLabels: ${labels}
`;
}

interface GwOptions {
  namespace?: string;
  created?: string;
  /** The selector map, YAML flow style; `none` leaves it out. */
  selector?: string;
}

/**
 * A Gateway; `servers` is the YAML of the servers list, indented by two. Layout: line 1
 * apiVersion, 2 kind, 3 metadata, 4 name, 5 namespace, [creationTimestamp], then spec, selector
 * (unless none) and servers.
 */
function gateway(name: string, servers: string, o: GwOptions = {}): string {
  const selector = o.selector === 'none' ? '' : `  selector: ${o.selector ?? '{istio: ingressgateway}'}\n`;
  return `apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: ${name}
  namespace: ${o.namespace ?? 'istio-system'}${o.created ? `\n  creationTimestamp: "${o.created}"` : ''}
spec:
${selector}  servers:
${servers}`;
}

/** One server, as a list item. */
/** Port names must be unique within a Gateway (Istio's validation): each server gets its own. */
let serverCount = 0;

function server(port: number, protocol: string, hosts: string, extra = ''): string {
  return `  - port: {number: ${port}, protocol: ${protocol}, name: p${port}-${++serverCount}}
    hosts: ${hosts}
${extra}`;
}

function virtualService(name: string, spec: string, namespace?: string): string {
  return `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ${name}${namespace ? `\n  namespace: ${namespace}` : ''}
spec:
${spec}`;
}

/** A VirtualService with one named HTTP route to `dest`, bound to `gateways`. */
function httpVs(name: string, hosts: string, gateways: string, o: { namespace?: string; dest?: string; route?: string } = {}): string {
  return virtualService(
    name,
    `  hosts: ${hosts}
  gateways: ${gateways}
  http:
  - name: ${o.route ?? name}
    route: [{destination: {host: ${o.dest ?? 'backend.example.com'}}}]
`,
    o.namespace,
  );
}

function serviceEntry(host: string, ports = '[{number: 8080, name: http, protocol: HTTP}]'): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: ${host.replace(/[^a-z0-9-]/g, '-')}
spec:
  hosts: ["${host}"]
  ports: ${ports}
  resolution: STATIC
  endpoints: [{address: 10.0.0.1}]
`;
}

const BACKEND = serviceEntry('backend.example.com');

const TLS_FILES = 'serverCertificate: /certs/tls.crt, privateKey: /certs/tls.key';

// === model accessors ===

function gwPort(m: Model, port: number): GatewayPort {
  const p = m.gateways.find((g) => g.port === port);
  if (p === undefined) throw new Error(`no gateway port ${port}; have ${m.gateways.map((g) => g.port).join(', ')}`);
  return p;
}

function gwServer(m: Model, port: number, name: string): GatewayServer {
  const s = gwPort(m, port).servers.find((x) => x.name === name);
  if (s === undefined) throw new Error(`no server ${name} on ${port}; have ${gwPort(m, port).servers.map((x) => x.name).join(', ')}`);
  return s;
}

function httpConfig(s: GatewayServer): RouteConfig {
  if (s.routes.kind !== 'http') throw new Error(`server ${s.name} has ${s.routes.kind} routes`);
  return s.routes.config;
}

function l4(s: GatewayServer): readonly L4Route[] {
  if (s.routes.kind !== 'l4') throw new Error(`server ${s.name} has ${s.routes.kind} routes`);
  return s.routes.routes;
}

/** The route config of a plaintext HTTP port (its single server). */
function httpPortConfig(m: Model, port: number): RouteConfig {
  const p = gwPort(m, port);
  expect(p.kind).toBe('http');
  expect(p.servers).toHaveLength(1);
  return httpConfig(p.servers[0]!);
}

/** `[vhost name, domains, route names]` for each virtual host. */
function vhostSummary(rc: RouteConfig): Array<[string, readonly string[], string[]]> {
  return rc.virtualHosts.map((v: VirtualHost) => [v.name, v.domains, v.routes.map((r: Route) => r.name)]);
}

function clustersOf(r: Route): string[] {
  if (r.action.kind !== 'forward') throw new Error(`route ${r.name} is ${r.action.kind}`);
  return r.action.clusters.map((c) => c.cluster);
}

const BLACKHOLE = (port: number): Array<[string, string[], string[]]> => [[`blackhole:${port}`, ['*'], []]];

// === tests ===

describe('gateway selection', () => {
  it('a Gateway applies when its selector is a subset of the proxy labels; an absent or empty selector applies to every proxy', async () => {
    const m = await model(
      meshConfig('{istio: ingressgateway, app: edge}'),
      gateway('subset', server(8001, 'HTTP', '["*"]')),
      gateway('exact', server(8002, 'HTTP', '["*"]'), { selector: '{istio: ingressgateway, app: edge}' }),
      gateway('other-value', server(8003, 'HTTP', '["*"]'), { selector: '{istio: egressgateway}' }),
      gateway('extra-label', server(8004, 'HTTP', '["*"]'), { selector: '{istio: ingressgateway, zone: a}' }),
      gateway('no-selector', server(8005, 'HTTP', '["*"]'), { selector: 'none' }),
      gateway('empty-selector', server(8006, 'HTTP', '["*"]'), { selector: '{}' }),
    );
    expect(m.gateways.map((g) => g.port)).toEqual([8001, 8002, 8005, 8006]);
  });

  it('without a MeshConfig the proxy has no labels: only selector-less Gateways apply', async () => {
    const m = await model(gateway('labelled', server(80, 'HTTP', '["*"]')), gateway('open', server(81, 'HTTP', '["*"]'), { selector: 'none' }));
    expect(m.gateways.map((g) => g.port)).toEqual([81]);
  });

  it('no Gateway: no gateway ports', async () => {
    const m = await model(meshConfig(), BACKEND);
    expect(m.gateways).toEqual([]);
  });
});

describe('merging servers per port', () => {
  it('HTTP, HTTP2, GRPC and GRPC-WEB servers on one port share one server http.<port> and one route config; ports are sorted', async () => {
    const m = await model(
      meshConfig(),
      gateway(
        'gw',
        server(9090, 'TCP', '["*"]') +
          server(80, 'HTTP', '[a.example.com]') +
          server(80, 'HTTP2', '[b.example.com]') +
          server(80, 'GRPC', '["*/c.example.com"]') +
          server(80, 'GRPC-WEB', '["./d.example.com"]'),
      ),
    );
    expect(m.gateways.map((g) => [g.port, g.kind, g.bind])).toEqual([
      [80, 'http', ''],
      [9090, 'tcp', ''],
    ]);
    const [s] = gwPort(m, 80).servers;
    expect(s!.name).toBe('http.80');
    expect(s!.hosts).toEqual(['a.example.com', 'b.example.com', 'c.example.com', 'd.example.com']);
    expect(s!.tls).toBeUndefined();
    expect(httpConfig(s!)).toEqual({ name: 'http.80', virtualHosts: [{ name: 'blackhole:80', domains: ['*'], routes: [] }] });
  });

  it('servers from several Gateways merge on a port; hosts keep creation order', async () => {
    const m = await model(
      meshConfig(),
      gateway('late', server(80, 'HTTP', '[late.example.com]'), { created: '2024-03-01T00:00:00Z' }),
      gateway('early', server(80, 'HTTP', '[early.example.com]'), { created: '2024-01-01T00:00:00Z' }),
    );
    expect(gwPort(m, 80).servers.map((s) => s.hosts)).toEqual([['early.example.com', 'late.example.com']]);
  });

  it('MONGO, REDIS, MYSQL and TCP ports are tcp ports with one server named namespace/gateway/<server name or index>', async () => {
    const m = await model(
      meshConfig(),
      gateway(
        'gw',
        server(27017, 'MONGO', '["*"]') +
          server(6379, 'REDIS', '["*"]') +
          server(3306, 'MYSQL', '["*"]') +
          `  - port: {number: 9000, protocol: TCP}\n    hosts: ["*"]\n`,
      ),
    );
    expect(m.gateways.map((g) => [g.port, g.kind, g.servers.map((s) => s.name)])).toEqual([
      [3306, 'tcp', ['istio-system/gw/2']],
      [6379, 'tcp', ['istio-system/gw/1']],
      [9000, 'tcp', ['istio-system/gw/3']],
      [27017, 'tcp', ['istio-system/gw/0']],
    ]);
    expect(gwPort(m, 9000).servers[0]!.routes).toEqual({ kind: 'l4', routes: [] });
  });

  it('a server of another kind on a used port is ignored with a warning at its port', async () => {
    const r = await load(
      meshConfig(),
      gateway('gw', server(8443, 'HTTPS', '[a.example.com]', `    tls: {mode: SIMPLE, ${TLS_FILES}}\n`) + server(8443, 'HTTP', '[b.example.com]')),
    );
    expect(r.model).toBeDefined();
    const p = gwPort(r.model!, 8443);
    expect(p.kind).toBe('tls');
    expect(p.servers.map((s) => s.name)).toEqual(['istio-system/gw/0']);
    // mesh.yaml: the MeshConfig is lines 1-6, the Gateway starts on line 8; servers[1] on line 19.
    expect(r.lines).toEqual([
      'mesh.yaml:19:11: Gateway/gw: spec.servers[1].port: warning: port 8443 already serves TLS (istio-system/gw/0): this server is ignored',
    ]);
  });

  it('a server with another bind on a used port is ignored with a warning; bind is carried to the port', async () => {
    const r = await load(
      meshConfig(),
      gateway('gw', server(80, 'HTTP', '[a.example.com]', '    bind: 10.0.0.5\n') + server(80, 'HTTP', '[b.example.com]') + server(81, 'HTTP', '["*"]', '    bind: "::1"\n')),
    );
    expect(r.model).toBeDefined();
    expect(r.model!.gateways.map((g) => [g.port, g.bind, g.servers[0]!.hosts])).toEqual([
      [80, '10.0.0.5', ['a.example.com']],
      [81, '::1', ['*']],
    ]);
    expect(warnings(r)).toEqual([
      'mesh.yaml:19:11: Gateway/gw: spec.servers[1].port: warning: port 80 is already bound to 10.0.0.5 by istio-system/gw/0: this server is ignored',
    ]);
  });

  it('a second TCP server on a port is ignored; the earliest Gateway by creationTimestamp wins, whatever the file order', async () => {
    const r = await load(
      meshConfig(),
      gateway('newer', server(5432, 'TCP', '["*"]'), { created: '2024-06-01T00:00:00Z' }),
      gateway('older', server(5432, 'TCP', '["*"]'), { created: '2023-06-01T00:00:00Z' }),
    );
    expect(gwPort(r.model!, 5432).servers.map((s) => s.name)).toEqual(['istio-system/older/0']);
    expect(warnings(r)).toEqual([
      'mesh.yaml:17:11: Gateway/newer: spec.servers[0].port: warning: port 5432 already serves TCP for istio-system/older/0; a TCP port takes one server: this server is ignored',
    ]);
  });

  it('with equal creation times, Gateways are ordered by name', async () => {
    const r = await load(meshConfig(), gateway('zeta', server(5432, 'TCP', '["*"]')), gateway('alpha', server(5432, 'TCP', '["*"]')));
    expect(gwPort(r.model!, 5432).servers.map((s) => s.name)).toEqual(['istio-system/alpha/0']);
    expect(warnings(r)).toHaveLength(1);
    expect(warnings(r)[0]).toContain('Gateway/zeta: spec.servers[0].port: warning: port 5432 already serves TCP for istio-system/alpha/0');
  });

  // Istio orders by the instant a timestamp names, not by its text.
  it('creation order compares times, not strings: an offset or fractional timestamp is ordered by its instant', async () => {
    const r = await load(
      meshConfig(),
      gateway('utc', server(5432, 'TCP', '["*"]'), { created: '2024-01-01T00:00:00Z' }),
      // 2023-12-31T23:00:00Z: an hour before `utc`.
      gateway('offset', server(5432, 'TCP', '["*"]'), { created: '2024-01-01T01:00:00+02:00' }),
    );
    expect(gwPort(r.model!, 5432).servers.map((s) => s.name)).toEqual(['istio-system/offset/0']);
  });

  it('TLS servers on one port are kept apart by SNI host; a host already claimed stays with the earlier server', async () => {
    const r = await load(
      meshConfig(),
      gateway(
        'gw',
        `  - port: {number: 443, name: https-a, protocol: HTTPS}
    name: a
    hosts: [a.example.com, shared.example.com]
    tls: {mode: SIMPLE, ${TLS_FILES}}
  - port: {number: 443, name: https-b, protocol: HTTPS}
    hosts: [B.example.com, shared.example.com]
    tls: {mode: SIMPLE, ${TLS_FILES}}
  - port: {number: 443, name: https-c, protocol: HTTPS}
    hosts: [a.example.com]
    tls: {mode: PASSTHROUGH}
`,
      ),
    );
    expect(r.model).toBeDefined();
    const p = gwPort(r.model!, 443);
    expect(p.kind).toBe('tls');
    expect(p.servers.map((s) => [s.name, s.hosts])).toEqual([
      ['istio-system/gw/0', ['a.example.com', 'shared.example.com']],
      ['istio-system/gw/1', ['b.example.com']],
    ]);
    expect(warnings(r)).toEqual([
      'mesh.yaml:21:12: Gateway/gw: spec.servers[1].hosts: warning: some hosts are already served on port 443 by an earlier server; that server keeps them',
      'mesh.yaml:24:12: Gateway/gw: spec.servers[2].hosts: warning: some hosts are already served on port 443 by an earlier server; that server keeps them',
    ]);
  });
});

describe('server hosts and VirtualService namespaces', () => {
  it('a VirtualService not exported to the gateway proxy\'s namespace is not bound (exportTo)', async () => {
    const team = (name: string, exportTo: string): string =>
      virtualService(
        name,
        `  hosts: [${name}.example.com]
  gateways: [istio-system/gw]
  exportTo: ${exportTo}
  http: [{route: [{destination: {host: backend.example.com}}]}]
`,
        'team',
      );
    const m = await model(
      meshConfig('{istio: ingressgateway}', 'istio-system'),
      BACKEND,
      gateway('gw', server(80, 'HTTP', '["*"]')),
      team('private', '["."]'),
      team('shared', '[istio-system]'),
      team('everyone', '["*"]'),
    );
    expect(httpPortConfig(m, 80).virtualHosts.map((v) => v.domains[0])).toEqual(['shared.example.com', 'everyone.example.com']);
  });

  const vsIn = (ns: string): string => httpVs(`vs-${ns}`, `[${ns}.example.com]`, '[istio-system/gw]', { namespace: ns });
  const domainsFor = async (hosts: string): Promise<readonly string[]> => {
    const m = await model(meshConfig(), BACKEND, gateway('gw', server(80, 'HTTP', hosts)), vsIn('default'), vsIn('prod'), vsIn('istio-system'));
    return httpPortConfig(m, 80).virtualHosts.flatMap((v) => v.domains);
  };

  it('a bare host and */host admit VirtualServices of every namespace', async () => {
    expect(await domainsFor('["*"]')).toEqual(['default.example.com', 'prod.example.com', 'istio-system.example.com']);
    expect(await domainsFor('["*/*.example.com"]')).toEqual(['default.example.com', 'prod.example.com', 'istio-system.example.com']);
  });

  it('./host admits the Gateway namespace only; ns/host admits ns only', async () => {
    expect(await domainsFor('["./*"]')).toEqual(['istio-system.example.com']);
    expect(await domainsFor('["prod/*"]')).toEqual(['prod.example.com']);
    expect(await domainsFor('["prod/*", "default/default.example.com"]')).toEqual(['default.example.com', 'prod.example.com']);
    expect(await domainsFor('["nowhere/*"]')).toEqual(['*']);
  });
});

describe('VirtualService binding and virtual hosts', () => {
  it('a VirtualService without gateways is mesh-only: the gateway port answers 404', async () => {
    const m = await model(
      meshConfig(),
      BACKEND,
      gateway('gw', server(80, 'HTTP', '["*"]')),
      virtualService('mesh-only', '  hosts: [a.example.com]\n  http:\n  - route: [{destination: {host: backend.example.com}}]\n'),
      httpVs('mesh-explicit', '[b.example.com]', '[mesh]'),
    );
    expect(vhostSummary(httpPortConfig(m, 80))).toEqual(BLACKHOLE(80));
  });

  it('gateway names resolve in the VirtualService namespace unless qualified', async () => {
    const m = await model(
      meshConfig(),
      BACKEND,
      gateway('gw', server(80, 'HTTP', '["*"]')),
      httpVs('short-same-ns', '[a.example.com]', '[gw]', { namespace: 'istio-system' }),
      httpVs('short-other-ns', '[b.example.com]', '[gw]', { namespace: 'prod' }),
      httpVs('qualified', '[c.example.com]', '[istio-system/gw]', { namespace: 'prod' }),
      httpVs('default-ns-short', '[d.example.com]', '[gw]'),
      httpVs('wrong-gateway', '[e.example.com]', '[istio-system/other]'),
    );
    expect(vhostSummary(httpPortConfig(m, 80))).toEqual([
      ['a.example.com:80', ['a.example.com'], ['short-same-ns']],
      ['c.example.com:80', ['c.example.com'], ['qualified']],
    ]);
  });

  it('a VirtualService namespace defaults to MeshConfig defaultNamespace', async () => {
    const m = await model(meshConfig('{istio: ingressgateway}', 'istio-system'), BACKEND, gateway('gw', server(80, 'HTTP', '["./*"]')), httpVs('vs', '[a.example.com]', '[gw]'));
    expect(vhostSummary(httpPortConfig(m, 80))).toEqual([['a.example.com:80', ['a.example.com'], ['vs']]]);
  });

  it('per-match gateways narrow the rules served on each Gateway', async () => {
    const m = await model(
      meshConfig(),
      BACKEND,
      gateway('public', server(80, 'HTTP', '["*"]')),
      gateway('internal', server(8080, 'HTTP', '["*"]')),
      virtualService(
        'vs',
        `  hosts: [a.example.com]
  gateways: [istio-system/public, istio-system/internal, mesh]
  http:
  - name: public-only
    match: [{gateways: [istio-system/public], uri: {prefix: /pub}}]
    route: [{destination: {host: backend.example.com}}]
  - name: internal-only
    match: [{gateways: [istio-system/internal], uri: {prefix: /int}}]
    route: [{destination: {host: backend.example.com}}]
  - name: mesh-only
    match: [{gateways: [mesh]}]
    route: [{destination: {host: backend.example.com}}]
  - name: everywhere
    route: [{destination: {host: backend.example.com}}]
`,
        'istio-system',
      ),
    );
    expect(vhostSummary(httpPortConfig(m, 80))).toEqual([['a.example.com:80', ['a.example.com'], ['public-only', 'everywhere']]]);
    expect(vhostSummary(httpPortConfig(m, 8080))).toEqual([['a.example.com:8080', ['a.example.com'], ['internal-only', 'everywhere']]]);
  });

  it('the domain is the more specific of the server host and the VirtualService host', async () => {
    const m = await model(
      meshConfig(),
      BACKEND,
      gateway('gw', server(80, 'HTTP', '["*.example.com", "exact.other.com", "*.wild.org"]')),
      httpVs('narrow', '[a.example.com, "*.other.com"]', '[istio-system/gw]'),
      httpVs('wide', '["*.wild.org"]', '[istio-system/gw]'),
      httpVs('nested', '["*.deep.example.com"]', '[istio-system/gw]'),
      httpVs('unrelated', '[x.unrelated.net]', '[istio-system/gw]'),
    );
    expect(vhostSummary(httpPortConfig(m, 80))).toEqual([
      ['a.example.com:80', ['a.example.com'], ['narrow']],
      ['exact.other.com:80', ['exact.other.com'], ['narrow']],
      ['*.wild.org:80', ['*.wild.org'], ['wide']],
      ['*.deep.example.com:80', ['*.deep.example.com'], ['nested']],
    ]);
  });

  it('short VirtualService hosts become FQDNs in its namespace; the route sends to outbound|port||fqdn', async () => {
    const m = await model(
      meshConfig(),
      serviceEntry('reviews.prod.svc.cluster.local', '[{number: 9080, name: http, protocol: HTTP}]'),
      gateway('gw', server(80, 'HTTP', '["*"]')),
      httpVs('reviews', '[reviews]', '[istio-system/gw]', { namespace: 'prod', dest: 'reviews' }),
    );
    const [vh] = httpPortConfig(m, 80).virtualHosts;
    expect(vh!.domains).toEqual(['reviews.prod.svc.cluster.local']);
    expect(clustersOf(vh!.routes[0]!)).toEqual(['outbound|9080||reviews.prod.svc.cluster.local']);
  });

  it('VirtualServices serving the same name share its virtual host, their routes in order, without warnings', async () => {
    const r = await load(
      meshConfig(),
      BACKEND,
      gateway('gw', server(80, 'HTTP', '["*"]')),
      httpVs('first', '[a.example.com]', '[istio-system/gw]'),
      httpVs('second', '[a.example.com, b.example.com]', '[istio-system/gw]'),
      httpVs('third', '[a.example.com]', '[istio-system/gw]'),
    );
    expect(vhostSummary(httpPortConfig(r.model!, 80))).toEqual([
      ['a.example.com:80', ['a.example.com'], ['first', 'second', 'third']],
      ['b.example.com:80', ['b.example.com'], ['second']],
    ]);
    expect(warnings(r)).toEqual([]);
  });

  // Istio appends the routes of every binding to the name's virtual host.
  it('a VirtualService bound to two Gateways sharing a port serves the rules of both on one virtual host', async () => {
    const r = await load(
      meshConfig(),
      BACKEND,
      gateway('public', server(80, 'HTTP', '["*"]')),
      gateway('internal', server(80, 'HTTP', '["*"]')),
      virtualService(
        'vs',
        `  hosts: [a.example.com]
  gateways: [istio-system/public, istio-system/internal]
  http:
  - name: public-only
    match: [{gateways: [istio-system/public], uri: {prefix: /pub}}]
    route: [{destination: {host: backend.example.com}}]
  - name: internal-only
    match: [{gateways: [istio-system/internal], uri: {prefix: /int}}]
    route: [{destination: {host: backend.example.com}}]
`,
        'istio-system',
      ),
    );
    const rc = httpPortConfig(r.model!, 80);
    expect(rc.virtualHosts.map((v) => v.domains)).toEqual([['a.example.com']]);
    expect(rc.virtualHosts[0]!.routes.map((x) => x.name)).toEqual(expect.arrayContaining(['public-only', 'internal-only']));
    expect(warnings(r)).toEqual([]);
  });

  it('a VirtualService matching two servers of its Gateway on one port is not a conflict with itself', async () => {
    const r = await load(
      meshConfig(),
      BACKEND,
      gateway('gw', server(80, 'HTTP', '[a.example.com]') + server(80, 'HTTP', '["*.example.com"]')),
      httpVs('vs', '[a.example.com]', '[istio-system/gw]'),
    );
    expect(vhostSummary(httpPortConfig(r.model!, 80))).toEqual([['a.example.com:80', ['a.example.com'], ['vs']]]);
    expect(warnings(r)).toEqual([]);
  });

  it('match.port limits HTTP rules to that server port; a VirtualService with no rule for a port gets no virtual host there', async () => {
    const m = await model(
      meshConfig(),
      BACKEND,
      gateway('gw', server(80, 'HTTP', '["*"]') + server(8080, 'HTTP', '["*"]') + server(9090, 'HTTP', '["*"]')),
      virtualService(
        'vs',
        `  hosts: [a.example.com]
  gateways: [istio-system/gw]
  http:
  - name: on-80
    match: [{port: 80}]
    route: [{destination: {host: backend.example.com}}]
  - name: on-8080
    match: [{port: 8080, uri: {prefix: /x}}]
    route: [{destination: {host: backend.example.com}}]
`,
      ),
    );
    expect(vhostSummary(httpPortConfig(m, 80))).toEqual([['a.example.com:80', ['a.example.com'], ['on-80']]]);
    expect(vhostSummary(httpPortConfig(m, 8080))).toEqual([['a.example.com:8080', ['a.example.com'], ['on-8080']]]);
    expect(vhostSummary(httpPortConfig(m, 9090))).toEqual(BLACKHOLE(9090));
  });

  it('a destination without a port takes the server port when the service has several ports', async () => {
    const m = await model(
      meshConfig(),
      serviceEntry('multi.example.com', '[{number: 80, name: http, protocol: HTTP}, {number: 8080, name: http-alt, protocol: HTTP}]'),
      gateway('gw', server(8080, 'HTTP', '["*"]')),
      virtualService(
        'vs',
        `  hosts: [multi.example.com]
  gateways: [istio-system/gw]
  http:
  - name: to-subset
    match: [{uri: {prefix: /v2}}]
    route: [{destination: {host: multi.example.com, subset: v2, port: {number: 80}}}]
  - name: default
    route: [{destination: {host: multi.example.com}}]
`,
      ),
    );
    const rc = httpPortConfig(m, 8080);
    expect(rc.virtualHosts[0]!.routes.map(clustersOf)).toEqual([['outbound|80|v2|multi.example.com'], ['outbound|8080||multi.example.com']]);
  });
});

describe('httpsRedirect', () => {
  it('answers every request for the server hosts with a 301 to https, whatever VirtualServices are bound', async () => {
    const m = await model(
      meshConfig(),
      BACKEND,
      gateway('gw', server(80, 'HTTP', '["*.example.com", "prod/api.other.com"]', '    tls: {httpsRedirect: true}\n')),
      httpVs('vs', '[a.example.com]', '[istio-system/gw]'),
    );
    const rc = httpPortConfig(m, 80);
    expect(rc.name).toBe('http.80');
    // The name the VirtualService serves through this server redirects too.
    expect(rc.virtualHosts.map((v) => v.domains)).toEqual([['a.example.com'], ['*.example.com'], ['api.other.com']]);
    for (const vh of rc.virtualHosts) {
      expect(vh.routes).toHaveLength(1);
      expect(vh.routes[0]!.match).toEqual({ headers: [], queryParams: [] });
      expect(vh.routes[0]!.action).toEqual({ kind: 'redirect', schemeRedirect: 'https', responseCode: 301 });
    }
  });

  it('redirects only its own server hosts: another HTTP server on the port keeps its VirtualService routes', async () => {
    const m = await model(
      meshConfig(),
      BACKEND,
      gateway('redirect', server(80, 'HTTP', '[secure.example.com]', '    tls: {httpsRedirect: true}\n'), { created: '2024-01-01T00:00:00Z' }),
      gateway('plain', server(80, 'HTTP', '[open.example.com]'), { created: '2024-02-01T00:00:00Z' }),
      httpVs('open', '[open.example.com, secure.example.com]', '[istio-system/plain, istio-system/redirect]'),
    );
    const summary = vhostSummary(httpPortConfig(m, 80));
    expect(summary).toEqual([
      ['secure.example.com:80', ['secure.example.com'], ['https_redirect']],
      ['open.example.com:80', ['open.example.com'], ['open']],
    ]);
  });

  // Istio sets require_tls ALL on the virtual host, which redirects plaintext requests only: on
  // an HTTPS server the connection is TLS already and the VirtualService routes apply.
  it('on a terminated HTTPS server it does not redirect requests that already arrived over TLS', async () => {
    const m = await model(
      meshConfig(),
      BACKEND,
      gateway('gw', server(443, 'HTTPS', '[a.example.com]', `    tls: {httpsRedirect: true, mode: SIMPLE, ${TLS_FILES}}\n`)),
      httpVs('vs', '[a.example.com]', '[istio-system/gw]'),
    );
    const rc = httpConfig(gwServer(m, 443, 'istio-system/gw/0'));
    expect(rc.virtualHosts.flatMap((v) => v.routes.map((r) => r.action.kind))).not.toContain('redirect');
    expect(vhostSummary(rc)).toEqual([['a.example.com:443', ['a.example.com'], ['vs']]]);
  });
});

describe('TLS servers', () => {
  it('HTTPS SIMPLE terminates TLS and routes HTTP with its own route config https.<port>.<server name>', async () => {
    const m = await model(
      meshConfig(),
      BACKEND,
      gateway(
        'gw',
        `  - port: {number: 443, name: https, protocol: HTTPS}
    name: main
    hosts: ["*.example.com"]
    tls: {mode: SIMPLE, ${TLS_FILES}}
  - port: {number: 443, name: https-2, protocol: HTTPS}
    hosts: [other.org]
    tls: {mode: SIMPLE, ${TLS_FILES}}
`,
      ),
      httpVs('vs', '[a.example.com, other.org]', '[istio-system/gw]'),
    );
    const p = gwPort(m, 443);
    expect(p.kind).toBe('tls');
    const main = gwServer(m, 443, 'istio-system/gw/0');
    expect(main.hosts).toEqual(['*.example.com']);
    expect(main.tls).toEqual({ mode: 'SIMPLE', serverCertificate: '/certs/tls.crt', privateKey: '/certs/tls.key', subjectAltNames: [], minProtocolVersion: 'TLSv1.2' });
    expect(httpConfig(main).name).toBe('https.443.istio-system/gw/0');
    expect(vhostSummary(httpConfig(main))).toEqual([['a.example.com:443', ['a.example.com'], ['vs']]]);
    expect(clustersOf(httpConfig(main).virtualHosts[0]!.routes[0]!)).toEqual(['outbound|8080||backend.example.com']);
    // Each HTTPS server has its own route config: the same VirtualService is not a conflict.
    const second = gwServer(m, 443, 'istio-system/gw/1');
    expect(httpConfig(second).name).toBe('https.443.istio-system/gw/1');
    expect(vhostSummary(httpConfig(second))).toEqual([['other.org:443', ['other.org'], ['vs']]]);
  });

  it('an HTTPS server without a bound VirtualService answers 404', async () => {
    const m = await model(meshConfig(), gateway('gw', server(443, 'HTTPS', '["*"]', `    tls: {mode: SIMPLE, ${TLS_FILES}}\n`)));
    expect(vhostSummary(httpConfig(gwServer(m, 443, 'istio-system/gw/0')))).toEqual(BLACKHOLE(443));
  });

  it('TLS with a terminating mode routes the decrypted stream by the VirtualService tcp routes', async () => {
    const m = await model(
      meshConfig(),
      serviceEntry('db.example.com', '[{number: 5432, name: tcp, protocol: TCP}]'),
      gateway('gw', server(5433, 'TLS', '[db.example.com]', `    tls: {mode: SIMPLE, ${TLS_FILES}}\n`)),
      virtualService(
        'db',
        `  hosts: [db.example.com]
  gateways: [istio-system/gw]
  tcp:
  - match: [{port: 5433}]
    route: [{destination: {host: db.example.com, subset: primary}}]
  tls:
  - match: [{sniHosts: [db.example.com]}]
    route: [{destination: {host: db.example.com, subset: unused}}]
`,
      ),
    );
    const s = gwServer(m, 5433, 'istio-system/gw/0');
    expect(s.tls?.mode).toBe('SIMPLE');
    expect(l4(s)).toEqual([{ destinationSubnets: [], destinations: [{ cluster: 'outbound|5432|primary|db.example.com', weight: 1 }] }]);
  });

  it('PASSTHROUGH has no tls and routes by the VirtualService tls routes, with their sniHosts', async () => {
    const m = await model(
      meshConfig(),
      serviceEntry('a.example.com', '[{number: 443, name: tls, protocol: TLS}]'),
      serviceEntry('b.example.com', '[{number: 443, name: tls, protocol: TLS}, {number: 8443, name: tls-alt, protocol: TLS}]'),
      gateway('gw', server(443, 'TLS', '["*.example.com"]', '    tls: {mode: PASSTHROUGH}\n')),
      virtualService(
        'sni',
        `  hosts: [a.example.com, b.example.com]
  gateways: [istio-system/gw]
  tls:
  - match: [{sniHosts: [A.example.com]}]
    route: [{destination: {host: a.example.com}}]
  - match: [{sniHosts: [b.example.com], port: 443}, {sniHosts: [b.example.com], port: 8443}]
    route:
    - {destination: {host: b.example.com, subset: v1}, weight: 80}
    - {destination: {host: b.example.com, subset: v2}, weight: 20}
  tcp:
  - route: [{destination: {host: a.example.com}}]
`,
      ),
    );
    const s = gwServer(m, 443, 'istio-system/gw/0');
    expect(s.tls).toBeUndefined();
    expect(s.hosts).toEqual(['*.example.com']);
    expect(l4(s)).toEqual([
      { destinationSubnets: [], sniHosts: ['a.example.com'], destinations: [{ cluster: 'outbound|443||a.example.com', weight: 1 }] },
      {
        destinationSubnets: [],
        sniHosts: ['b.example.com'],
        destinations: [
          { cluster: 'outbound|443|v1|b.example.com', weight: 80 },
          { cluster: 'outbound|443|v2|b.example.com', weight: 20 },
        ],
      },
    ]);
  });

  it('a TLS server without mode passes through; a serverCertificate there is warned about, not refused', async () => {
    const r = await load(meshConfig(), gateway('gw', server(443, 'TLS', '["*"]', '    tls: {serverCertificate: /certs/tls.crt}\n')));
    expect(r.model).toBeDefined();
    const s = gwServer(r.model!, 443, 'istio-system/gw/0');
    expect(s.tls).toBeUndefined();
    expect(s.routes).toEqual({ kind: 'l4', routes: [] });
    expect(r.lines).toEqual([
      'mesh.yaml:18:30: Gateway/gw: spec.servers[0].tls.serverCertificate: warning: no mode is set, so TLS is passed through (PASSTHROUGH) and this certificate is not used',
    ]);
  });

  it('TLS settings: protocol versions map to Node names, SANs, CA and cipher suites are carried', async () => {
    const m = await model(
      meshConfig(),
      gateway(
        'gw',
        `  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [mutual.example.com]
    tls:
      mode: MUTUAL
      serverCertificate: /certs/tls.crt
      privateKey: /certs/tls.key
      caCertificates: /certs/ca.crt
      subjectAltNames: [spiffe://cluster.local/ns/a/sa/b, client.example.com]
      minProtocolVersion: TLSV1_3
      cipherSuites: [ECDHE-RSA-AES128-GCM-SHA256]
  - port: {number: 443, name: https-2, protocol: HTTPS}
    hosts: [optional.example.com]
    tls: {mode: OPTIONAL_MUTUAL, ${TLS_FILES}, caCertificates: /certs/ca.crt, minProtocolVersion: TLSV1_0, maxProtocolVersion: TLSV1_1}
  - port: {number: 443, name: https-3, protocol: HTTPS}
    hosts: [istio.example.com]
    tls: {mode: ISTIO_MUTUAL, subjectAltNames: [spiffe://cluster.local/ns/x/sa/y]}
`,
      ),
    );
    expect(gwPort(m, 443).servers.map((s) => s.tls)).toEqual([
      {
        mode: 'MUTUAL',
        serverCertificate: '/certs/tls.crt',
        privateKey: '/certs/tls.key',
        caCertificates: '/certs/ca.crt',
        subjectAltNames: ['spiffe://cluster.local/ns/a/sa/b', 'client.example.com'],
        minProtocolVersion: 'TLSv1.3',
        cipherSuites: ['ECDHE-RSA-AES128-GCM-SHA256'],
      },
      {
        mode: 'OPTIONAL_MUTUAL',
        serverCertificate: '/certs/tls.crt',
        privateKey: '/certs/tls.key',
        caCertificates: '/certs/ca.crt',
        subjectAltNames: [],
        minProtocolVersion: 'TLSv1',
        maxProtocolVersion: 'TLSv1.1',
      },
      { mode: 'ISTIO_MUTUAL', subjectAltNames: ['spiffe://cluster.local/ns/x/sa/y'], minProtocolVersion: 'TLSv1.2' },
    ]);
  });
});

describe('refused Gateways', () => {
  const tlsServer = (tls: string, protocol = 'HTTPS'): string => gateway('gw', server(443, protocol, '["*"]', `    tls: {${tls}}\n`));
  // After the MeshConfig (lines 1-7) the Gateway starts on line 8 and the server's tls map is on line 18.

  it.each([
    ['credentialName', `mode: SIMPLE, credentialName: my-secret`, 'credentialName is not supported: Kubernetes secrets (SDS) are not available'],
    ['credentialNames', `mode: SIMPLE, credentialNames: [a, b]`, 'credentialNames is not supported: Kubernetes secrets (SDS) are not available'],
    ['tlsCertificates', `mode: SIMPLE, tlsCertificates: [{serverCertificate: /a.crt, privateKey: /a.key}]`, 'tlsCertificates is not supported yet'],
    ['caCrl', `mode: MUTUAL, ${TLS_FILES}, caCertificates: /ca.crt, caCrl: /crl.pem`, 'caCrl is not supported yet; refusing to skip revocation checks'],
    ['verifyCertificateSpki', `mode: MUTUAL, ${TLS_FILES}, caCertificates: /ca.crt, verifyCertificateSpki: [abc]`, 'verifyCertificateSpki is not supported yet'],
    ['verifyCertificateHash', `mode: MUTUAL, ${TLS_FILES}, caCertificates: /ca.crt, verifyCertificateHash: ["ab:cd"]`, 'verifyCertificateHash is not supported yet'],
  ])('%s is refused', async (field, tls, message) => {
    const errors = await refused(meshConfig(), tlsServer(tls));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(new RegExp(`^mesh\\.yaml:18:\\d+: Gateway/gw: spec\\.servers\\[0\\]\\.tls\\.${field}: `));
    expect(errors[0]).toContain(message);
  });

  it('credentialName is refused with its exact location', async () => {
    expect(await refused(meshConfig(), tlsServer('mode: SIMPLE, credentialName: my-secret'))).toEqual([
      'mesh.yaml:18:41: Gateway/gw: spec.servers[0].tls.credentialName: credentialName is not supported: Kubernetes secrets (SDS) are not available: use serverCertificate, privateKey and caCertificates file paths',
    ]);
  });

  it('AUTO_PASSTHROUGH is refused', async () => {
    expect(await refused(meshConfig(), tlsServer('mode: AUTO_PASSTHROUGH', 'TLS'))).toEqual([
      'mesh.yaml:18:17: Gateway/gw: spec.servers[0].tls.mode: AUTO_PASSTHROUGH is not supported yet',
    ]);
    // On HTTPS, Istio's validation refuses it too.
    expect(await refused(meshConfig(), tlsServer('mode: AUTO_PASSTHROUGH'))).toContain(
      'mesh.yaml:18:17: Gateway/gw: spec.servers[0].tls.mode: AUTO_PASSTHROUGH needs protocol TLS',
    );
  });

  it('HTTPS and TLS servers need TLS settings', async () => {
    for (const protocol of ['HTTPS', 'TLS']) {
      const errors = await refused(meshConfig(), gateway('gw', server(443, protocol, '["*"]')));
      expect(errors).toEqual([`mesh.yaml:16:5: Gateway/gw: spec.servers[0].tls: server must have TLS settings for ${protocol} protocol`]);
    }
  });

  it('SIMPLE needs serverCertificate and privateKey; MUTUAL and OPTIONAL_MUTUAL need caCertificates too', async () => {
    const simple = await refused(meshConfig(), tlsServer('mode: SIMPLE'));
    expect(simple.map((l) => l.replace(/^mesh\.yaml:\d+:\d+: /, ''))).toEqual([
      'Gateway/gw: spec.servers[0].tls: SIMPLE mode requires serverCertificate',
      'Gateway/gw: spec.servers[0].tls: SIMPLE mode requires privateKey',
    ]);
    expect(await refused(meshConfig(), tlsServer('mode: SIMPLE, serverCertificate: /c.crt'))).toEqual([expect.stringContaining('spec.servers[0].tls: SIMPLE mode requires privateKey')]);
    for (const mode of ['MUTUAL', 'OPTIONAL_MUTUAL']) {
      expect(await refused(meshConfig(), tlsServer(`mode: ${mode}, ${TLS_FILES}`))).toEqual([expect.stringContaining(`spec.servers[0].tls: ${mode} mode requires caCertificates`)]);
    }
  });

  it('ISTIO_MUTUAL must not name certificate files', async () => {
    const errors = await refused(meshConfig(), tlsServer('mode: ISTIO_MUTUAL, serverCertificate: /c.crt, caCertificates: /ca.crt'));
    expect(errors.map((l) => l.replace(/^mesh\.yaml:\d+:\d+: /, ''))).toEqual([
      "Gateway/gw: spec.servers[0].tls.serverCertificate: ISTIO_MUTUAL uses the proxy's workload certificate: serverCertificate must not be set",
      "Gateway/gw: spec.servers[0].tls.caCertificates: ISTIO_MUTUAL uses the proxy's workload certificate: caCertificates must not be set",
    ]);
  });

  it('ISTIO_MUTUAL refuses protocol versions and cipher suites (the workload certificate settings apply)', async () => {
    const errors = await refused(meshConfig(), tlsServer('mode: ISTIO_MUTUAL, minProtocolVersion: TLSV1_3, maxProtocolVersion: TLSV1_3, cipherSuites: [AES128-SHA]'));
    expect(errors.map((l) => l.replace(/^mesh\.yaml:18:\d+: /, ''))).toEqual([
      "Gateway/gw: spec.servers[0].tls.minProtocolVersion: minProtocolVersion is not supported yet with ISTIO_MUTUAL (the workload certificate's TLS settings apply: TLS 1.2 and up)",
      "Gateway/gw: spec.servers[0].tls.maxProtocolVersion: maxProtocolVersion is not supported yet with ISTIO_MUTUAL (the workload certificate's TLS settings apply: TLS 1.2 and up)",
      "Gateway/gw: spec.servers[0].tls.cipherSuites: cipherSuites is not supported yet with ISTIO_MUTUAL (the workload certificate's TLS settings apply: TLS 1.2 and up)",
    ]);
  });

  it('TLS_AUTO is no version: it neither sets a bound nor conflicts with the other one', async () => {
    const m = await model(meshConfig(), tlsServer(`mode: SIMPLE, ${TLS_FILES}, minProtocolVersion: TLSV1_3, maxProtocolVersion: TLS_AUTO`));
    expect(gwServer(m, 443, 'istio-system/gw/0').tls).toMatchObject({ minProtocolVersion: 'TLSv1.3' });
    expect(gwServer(m, 443, 'istio-system/gw/0').tls).not.toHaveProperty('maxProtocolVersion');
    const auto = await model(meshConfig(), tlsServer(`mode: SIMPLE, ${TLS_FILES}, minProtocolVersion: TLS_AUTO, maxProtocolVersion: TLSV1_2`));
    expect(gwServer(auto, 443, 'istio-system/gw/0').tls).toMatchObject({ minProtocolVersion: 'TLSv1.2', maxProtocolVersion: 'TLSv1.2' });
  });

  it('a TLS mode on a plaintext server is refused', async () => {
    expect(await refused(meshConfig(), gateway('gw', server(80, 'HTTP', '["*"]', `    tls: {mode: SIMPLE, ${TLS_FILES}}\n`)))).toEqual([
      'mesh.yaml:18:17: Gateway/gw: spec.servers[0].tls.mode: TLS mode SIMPLE needs protocol HTTPS or TLS (port 80 is HTTP)',
    ]);
  });

  it('bind must be an IP address', async () => {
    expect(await refused(meshConfig(), gateway('gw', server(80, 'HTTP', '["*"]', '    bind: unix:///var/run/gw.sock\n')))).toEqual([
      'mesh.yaml:18:11: Gateway/gw: spec.servers[0].bind: "unix:///var/run/gw.sock" is not an IP address (unix domain sockets are not supported)',
    ]);
  });

  it('defaultEndpoint is refused', async () => {
    expect(await refused(meshConfig(), gateway('gw', server(80, 'HTTP', '["*"]', '    defaultEndpoint: 127.0.0.1:8080\n')))).toEqual([
      expect.stringMatching(/^mesh\.yaml:18:22: Gateway\/gw: spec\.servers\[0\]\.defaultEndpoint: defaultEndpoint applies to Sidecar ingress listeners, not Gateway servers$/),
    ]);
  });

  it('port names must be unique among a Gateway\'s servers (Istio)', async () => {
    const servers = `  - port: {number: 80, name: web, protocol: HTTP}
    hosts: [a.example.com]
  - port: {number: 81, name: web, protocol: HTTP}
    hosts: [b.example.com]
`;
    expect(await refused(meshConfig(), gateway('gw', servers))).toEqual([
      'mesh.yaml:18:30: Gateway/gw: spec.servers[1].port.name: port names in servers must be unique: duplicate name web',
    ]);
  });

  it('an unknown protocol is refused, listing the protocols and suggesting a close one', async () => {
    expect(await refused(meshConfig(), gateway('gw', server(80, 'SCTP', '["*"]')))).toEqual([
      'mesh.yaml:16:34: Gateway/gw: spec.servers[0].port.protocol: invalid value "SCTP": expected one of HTTP, HTTPS, GRPC, GRPC-WEB, HTTP2, MONGO, REDIS, MYSQL, TCP, TLS',
    ]);
    expect(await refused(meshConfig(), gateway('gw', server(443, 'HTPS', '["*"]')))).toEqual([
      expect.stringMatching(/^mesh\.yaml:16:\d+: Gateway\/gw: spec\.servers\[0\]\.port\.protocol: invalid value "HTPS": expected one of .* \(did you mean "HTTPS"\?\)$/),
    ]);
  });

  it('maxProtocolVersion below minProtocolVersion is refused', async () => {
    expect(await refused(meshConfig(), tlsServer(`mode: SIMPLE, ${TLS_FILES}, minProtocolVersion: TLSV1_3, maxProtocolVersion: TLSV1_2`))).toEqual([
      expect.stringMatching(/^mesh\.yaml:18:137: Gateway\/gw: spec\.servers\[0\]\.tls\.maxProtocolVersion: maxProtocolVersion must not be below minProtocolVersion$/),
    ]);
    // Only a maximum below the default minimum (TLS 1.2) would refuse every handshake.
    expect(await refused(meshConfig(), tlsServer(`mode: SIMPLE, ${TLS_FILES}, maxProtocolVersion: TLSV1_1`))).toEqual([
      expect.stringContaining('spec.servers[0].tls.maxProtocolVersion: maxProtocolVersion TLSV1_1 is below the default minimum (TLSV1_2): set minProtocolVersion as well'),
    ]);
  });

  it('a Gateway needs servers, and each server needs hosts', async () => {
    const empty = await refused(
      meshConfig(),
      `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  servers: []
`,
    );
    expect(empty).toEqual([expect.stringMatching(/^mesh\.yaml:12:\d+: Gateway\/gw: spec\.servers: /)]);
    const noHosts = await refused(meshConfig(), gateway('gw', '  - port: {number: 80, name: http, protocol: HTTP}\n'));
    expect(noHosts).toEqual([expect.stringMatching(/^mesh\.yaml:\d+:\d+: Gateway\/gw: spec\.servers\[0\]\.hosts: required field is missing$/)]);
    const emptyHosts = await refused(meshConfig(), gateway('gw', server(80, 'HTTP', '[]')));
    expect(emptyHosts).toEqual([expect.stringMatching(/Gateway\/gw: spec\.servers\[0\]\.hosts: /)]);
  });

  it('the refusal applies even when the Gateway does not select this proxy', async () => {
    const errors = await refused(meshConfig(), gateway('gw', server(443, 'HTTPS', '["*"]', '    tls: {mode: SIMPLE, credentialName: s}\n'), { selector: '{istio: egressgateway}' }));
    expect(errors).toEqual([expect.stringContaining('spec.servers[0].tls.credentialName: credentialName is not supported')]);
  });
});
