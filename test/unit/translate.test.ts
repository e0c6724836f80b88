/**
 * Istio YAML → the internal model, checked against istiod's sidecar semantics: cluster names,
 * host resolution, virtual host domains, DestinationRule merging, load balancing, route
 * translation and the catch-all virtual host.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { formatDiagnostic } from '../../src/config/diagnostics.js';
import { loadConfig } from '../../src/config/load.js';
import type { Cluster, ForwardAction, Model, Route, RouteConfig, VirtualHost } from '../../src/model/index.js';

const dirs: string[] = [];

afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

interface Loaded {
  readonly model: Model | undefined;
  /** Diagnostics as printed, file names relative to the config folder. */
  readonly lines: string[];
}

/** Writes the documents to one file in a temp folder and loads the folder. */
async function load(...docs: string[]): Promise<Loaded> {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-translate-'));
  dirs.push(dir);
  await writeFile(join(dir, 'mesh.yaml'), docs.join('---\n'));
  const result = await loadConfig(dir);
  return { model: result.model, lines: result.diagnostics.map((d) => formatDiagnostic(d).replace(`${dir}/`, '')) };
}

/** Loads and requires a valid model. */
async function model(...docs: string[]): Promise<Model> {
  const r = await load(...docs);
  if (r.model === undefined) throw new Error(`config is invalid:\n${r.lines.join('\n')}`);
  return r.model;
}

function cluster(m: Model, name: string): Cluster {
  const c = m.clusters.find((x) => x.name === name);
  if (c === undefined) throw new Error(`no cluster ${name}; have ${m.clusters.map((x) => x.name).join(', ')}`);
  return c;
}

function routeConfig(m: Model, port: number): RouteConfig {
  const rc = m.routeConfigs.find((r) => r.name === String(port));
  if (rc === undefined) throw new Error(`no route config ${port}; have ${m.routeConfigs.map((r) => r.name).join(', ')}`);
  return rc;
}

function vhost(m: Model, port: number, domain: string): VirtualHost {
  const vh = routeConfig(m, port).virtualHosts.find((v) => v.domains.includes(domain));
  if (vh === undefined) throw new Error(`no virtual host for ${domain} on ${port}`);
  return vh;
}

function forward(r: Route): ForwardAction {
  if (r.action.kind !== 'forward') throw new Error(`route ${r.name} is ${r.action.kind}, not forward`);
  return r.action;
}

/** The cluster names a route sends to, with weights. */
function targets(r: Route): Array<[string, number]> {
  return forward(r).clusters.map((c) => [c.cluster, c.weight]);
}

const NO_HEADERS = { remove: [], add: [] };
const setH = (name: string, value: string) => ({ name, value, append: false });
const addH = (name: string, value: string) => ({ name, value, append: true });

interface SeOptions {
  namespace?: string;
  ports?: string;
  resolution?: string;
  endpoints?: string;
  addresses?: string;
  name?: string;
}

function serviceEntry(host: string, o: SeOptions = {}): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: ${o.name ?? host.replace(/[^a-z0-9-]/g, '-')}${o.namespace ? `\n  namespace: ${o.namespace}` : ''}
spec:
  hosts: ["${host}"]${o.addresses ? `\n  addresses: ${o.addresses}` : ''}
  ports: ${o.ports ?? '[{number: 9080, name: http, protocol: HTTP}]'}
  resolution: ${o.resolution ?? 'STATIC'}
${o.endpoints ?? '  endpoints: [{address: 10.0.0.1}]'}
`;
}

function virtualService(name: string, spec: string, namespace?: string): string {
  return `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ${name}${namespace ? `\n  namespace: ${namespace}` : ''}
spec:
${spec}`;
}

function destinationRule(name: string, spec: string, namespace?: string): string {
  return `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: ${name}${namespace ? `\n  namespace: ${namespace}` : ''}
spec:
${spec}`;
}

const REVIEWS = serviceEntry('reviews', {
  ports: `
  - {number: 9080, name: http, protocol: HTTP}
  - {number: 9443, name: tcp, protocol: TCP}`,
  endpoints: `  endpoints:
  - {address: 10.0.0.1, labels: {version: v1}}
  - {address: 10.0.0.2, labels: {version: v2}, ports: {http: 19080}, weight: 0}
  - {address: 10.0.0.3, labels: {version: v3}, weight: 3}`,
});

const REVIEWS_SUBSETS = destinationRule(
  'reviews',
  `  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
`,
);

describe('clusters', () => {
  it('one cluster per service port and subset, named outbound|port|subset|fqdn, plus Passthrough, BlackHole and InboundPassthrough', async () => {
    const m = await model(REVIEWS, REVIEWS_SUBSETS);
    expect(m.clusters.map((c) => c.name)).toEqual([
      'outbound|9080||reviews.default.svc.cluster.local',
      'outbound|9080|v1|reviews.default.svc.cluster.local',
      'outbound|9080|v2|reviews.default.svc.cluster.local',
      'outbound|9080|v3|reviews.default.svc.cluster.local',
      'outbound|9443||reviews.default.svc.cluster.local',
      'outbound|9443|v1|reviews.default.svc.cluster.local',
      'outbound|9443|v2|reviews.default.svc.cluster.local',
      'outbound|9443|v3|reviews.default.svc.cluster.local',
      'PassthroughCluster',
      'BlackHoleCluster',
      'InboundPassthroughCluster',
    ]);
    // Inbound traffic reaches the application from 127.0.0.6, which the capture rules never redirect.
    expect(cluster(m, 'InboundPassthroughCluster')).toMatchObject({ discovery: 'ORIGINAL_DST', sourceAddress: { ipv4: '127.0.0.6', ipv6: '::6' } });
    expect(cluster(m, 'PassthroughCluster')).toMatchObject({ discovery: 'ORIGINAL_DST', endpoints: [] });
    expect(cluster(m, 'BlackHoleCluster')).toMatchObject({ discovery: 'STATIC', endpoints: [] });
    expect(cluster(m, 'outbound|9080|v2|reviews.default.svc.cluster.local').service).toEqual({
      host: 'reviews.default.svc.cluster.local',
      namespace: 'default',
      port: 9080,
      subset: 'v2',
    });
  });

  it('subset endpoints are the ones whose labels match; named ports map to the endpoint port; weight 0 means 1', async () => {
    const m = await model(REVIEWS, REVIEWS_SUBSETS);
    const addrs = (name: string): Array<[string, number, number]> => cluster(m, name).endpoints.map((e) => [e.address, e.port, e.weight]);
    expect(addrs('outbound|9080||reviews.default.svc.cluster.local')).toEqual([
      ['10.0.0.1', 9080, 1],
      ['10.0.0.2', 19080, 1],
      ['10.0.0.3', 9080, 3],
    ]);
    expect(addrs('outbound|9080|v1|reviews.default.svc.cluster.local')).toEqual([['10.0.0.1', 9080, 1]]);
    expect(addrs('outbound|9080|v2|reviews.default.svc.cluster.local')).toEqual([['10.0.0.2', 19080, 1]]);
    // The TCP port is named "tcp"; endpoint 10.0.0.2 only remaps "http".
    expect(addrs('outbound|9443|v2|reviews.default.svc.cluster.local')).toEqual([['10.0.0.2', 9443, 1]]);
    expect(cluster(m, 'outbound|9080|v2|reviews.default.svc.cluster.local').endpoints[0]!.labels).toEqual({ version: 'v2' });
  });

  it('a subset selecting on several labels needs all of them; an unmatched subset has no endpoints', async () => {
    const m = await model(
      serviceEntry('api.example.com', {
        endpoints: `  endpoints:
  - {address: 10.0.0.1, labels: {version: v1, zone: a}}
  - {address: 10.0.0.2, labels: {version: v1, zone: b}}`,
      }),
      destinationRule(
        'api',
        `  host: api.example.com
  subsets:
  - {name: v1a, labels: {version: v1, zone: a}}
  - {name: v9, labels: {version: v9}}
  - {name: all}
`,
      ),
    );
    expect(cluster(m, 'outbound|9080|v1a|api.example.com').endpoints.map((e) => e.address)).toEqual(['10.0.0.1']);
    expect(cluster(m, 'outbound|9080|v9|api.example.com').endpoints).toEqual([]);
    expect(cluster(m, 'outbound|9080|all|api.example.com').endpoints.map((e) => e.address)).toEqual(['10.0.0.1', '10.0.0.2']);
  });

  it('targetPort is used when an endpoint does not name the port', async () => {
    const m = await model(serviceEntry('t.example.com', { ports: '[{number: 80, name: http, protocol: HTTP, targetPort: 8080}]' }));
    expect(cluster(m, 'outbound|80||t.example.com').endpoints[0]).toMatchObject({ address: '10.0.0.1', port: 8080 });
  });

  it('DNS resolution without endpoints resolves the host as written; a subset without labels selects it', async () => {
    const m = await model(
      serviceEntry('httpbin.org', { resolution: 'DNS', endpoints: '', ports: '[{number: 443, name: https, protocol: HTTPS, targetPort: 8443}]' }),
      serviceEntry('ratings', { resolution: 'DNS', endpoints: '', namespace: 'prod' }),
      destinationRule('httpbin', '  host: httpbin.org\n  subsets: [{name: any}, {name: v1, labels: {version: v1}}]\n'),
    );
    expect(cluster(m, 'outbound|443||httpbin.org')).toMatchObject({
      discovery: 'STRICT_DNS',
      endpoints: [{ address: 'httpbin.org', port: 8443, weight: 1, labels: {} }],
    });
    expect(cluster(m, 'outbound|443|any|httpbin.org').endpoints).toEqual([{ address: 'httpbin.org', port: 8443, weight: 1, labels: {} }]);
    expect(cluster(m, 'outbound|443|v1|httpbin.org').endpoints).toEqual([]);
    // A short host resolves in DNS as written, while the cluster is named by its FQDN.
    expect(cluster(m, 'outbound|9080||ratings.prod.svc.cluster.local').endpoints).toEqual([{ address: 'ratings', port: 9080, weight: 1, labels: {} }]);
  });

  it('DNS with endpoints resolves the endpoint names; DNS_ROUND_ROBIN is STRICT_DNS too', async () => {
    const m = await model(
      serviceEntry('a.example.com', { resolution: 'DNS', endpoints: '  endpoints: [{address: a1.internal}, {address: a2.internal}]' }),
      serviceEntry('b.example.com', { resolution: 'DNS_ROUND_ROBIN', endpoints: '' }),
    );
    expect(cluster(m, 'outbound|9080||a.example.com')).toMatchObject({ discovery: 'STRICT_DNS' });
    expect(cluster(m, 'outbound|9080||a.example.com').endpoints.map((e) => e.address)).toEqual(['a1.internal', 'a2.internal']);
    expect(cluster(m, 'outbound|9080||b.example.com')).toMatchObject({ discovery: 'STRICT_DNS', endpoints: [{ address: 'b.example.com' }] });
  });

  it('resolution NONE (the default) forwards to the original destination', async () => {
    const m = await model(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext}
spec:
  hosts: [ext.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
`);
    expect(cluster(m, 'outbound|80||ext.example.com')).toMatchObject({ discovery: 'ORIGINAL_DST', endpoints: [] });
  });

  it('connect timeout and DNS refresh rate come from the mesh unless the DestinationRule sets them', async () => {
    const m = await model(
      `apiVersion: skiff.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec: {connectTimeout: 2s, dnsRefreshRate: 30s}
`,
      serviceEntry('a.example.com'),
      serviceEntry('b.example.com'),
      destinationRule('b', '  host: b.example.com\n  trafficPolicy: {connectionPool: {tcp: {connectTimeout: 250ms}, http: {idleTimeout: 30s, maxRequestsPerConnection: 1}}}\n'),
    );
    expect(cluster(m, 'outbound|9080||a.example.com')).toMatchObject({ connectTimeoutMs: 2000, dnsRefreshRateMs: 30_000, idleTimeoutMs: 3_600_000, maxRequestsPerConnection: 0 });
    expect(cluster(m, 'outbound|9080||b.example.com')).toMatchObject({ connectTimeoutMs: 250, idleTimeoutMs: 30_000, maxRequestsPerConnection: 1 });
    expect(m.mesh).toMatchObject({ connectTimeoutMs: 2000, dnsRefreshRateMs: 30_000 });
  });
});

describe('load balancing', () => {
  async function lbOf(loadBalancer: string | undefined): Promise<Cluster> {
    const policy = loadBalancer === undefined ? '' : `  trafficPolicy:\n    loadBalancer: ${loadBalancer}\n`;
    const m = await model(serviceEntry('lb.example.com'), destinationRule('lb', `  host: lb.example.com\n${policy}`));
    return cluster(m, 'outbound|9080||lb.example.com');
  }

  it('defaults to LEAST_REQUEST with two choices, also with no DestinationRule', async () => {
    expect((await lbOf(undefined)).lb).toEqual({ kind: 'LEAST_REQUEST', choiceCount: 2 });
    const m = await model(serviceEntry('plain.example.com'));
    expect(cluster(m, 'outbound|9080||plain.example.com').lb).toEqual({ kind: 'LEAST_REQUEST', choiceCount: 2 });
  });

  it.each([
    ['{simple: LEAST_REQUEST}', { kind: 'LEAST_REQUEST', choiceCount: 2 }],
    ['{simple: LEAST_CONN}', { kind: 'LEAST_REQUEST', choiceCount: 2 }],
    ['{simple: UNSPECIFIED}', { kind: 'LEAST_REQUEST', choiceCount: 2 }],
    ['{simple: ROUND_ROBIN}', { kind: 'ROUND_ROBIN' }],
    ['{simple: RANDOM}', { kind: 'RANDOM' }],
  ])('%s', async (lb, expected) => {
    const c = await lbOf(lb);
    expect(c.lb).toEqual(expected);
    expect(c.discovery).toBe('STATIC');
    expect(c.hashPolicy).toBeUndefined();
  });

  it('PASSTHROUGH forwards to the original destination', async () => {
    expect((await lbOf('{simple: PASSTHROUGH}')).discovery).toBe('ORIGINAL_DST');
  });

  it('consistentHash is RING_HASH with a 1024 minimum ring by default, hashing on the key given', async () => {
    const c = await lbOf('{consistentHash: {httpHeaderName: x-user}}');
    expect(c.lb).toEqual({ kind: 'RING_HASH', minimumRingSize: 1024, maximumRingSize: 8_388_608 });
    expect(c.hashPolicy).toEqual({ kind: 'header', name: 'x-user' });
  });

  it('ringHash.minimumRingSize and the deprecated minimumRingSize', async () => {
    expect((await lbOf('{consistentHash: {useSourceIp: true, ringHash: {minimumRingSize: 4096}}}')).lb).toMatchObject({ kind: 'RING_HASH', minimumRingSize: 4096 });
    expect((await lbOf('{consistentHash: {useSourceIp: true, minimumRingSize: 64}}')).lb).toMatchObject({ kind: 'RING_HASH', minimumRingSize: 64 });
  });

  it('maglev is MAGLEV with a 65537 table by default', async () => {
    expect((await lbOf('{consistentHash: {useSourceIp: true, maglev: {}}}')).lb).toEqual({ kind: 'MAGLEV', tableSize: 65537 });
    expect((await lbOf('{consistentHash: {useSourceIp: true, maglev: {tableSize: 251}}}')).lb).toEqual({ kind: 'MAGLEV', tableSize: 251 });
  });

  it('hash keys: cookie (with path and ttl), source IP, query parameter', async () => {
    expect((await lbOf('{consistentHash: {httpCookie: {name: session, path: /, ttl: 60s}}}')).hashPolicy).toEqual({
      kind: 'cookie',
      name: 'session',
      path: '/',
      ttlMs: 60_000,
    });
    expect((await lbOf('{consistentHash: {httpCookie: {name: session}}}')).hashPolicy).toEqual({ kind: 'cookie', name: 'session' });
    expect((await lbOf('{consistentHash: {useSourceIp: true}}')).hashPolicy).toEqual({ kind: 'sourceIp' });
    expect((await lbOf('{consistentHash: {httpQueryParameterName: user}}')).hashPolicy).toEqual({ kind: 'queryParam', name: 'user' });
  });

  it('consistentHash needs exactly one key; simple and consistentHash are exclusive; maglev sizes are prime', async () => {
    const bad = async (lb: string): Promise<string[]> =>
      (await load(serviceEntry('lb.example.com'), destinationRule('lb', `  host: lb.example.com\n  trafficPolicy:\n    loadBalancer: ${lb}\n`))).lines;
    expect(await bad('{consistentHash: {maglev: {}}}')).toEqual([
      'mesh.yaml:18:36: DestinationRule/lb: spec.trafficPolicy.loadBalancer.consistentHash: one of httpHeaderName, httpCookie, useSourceIp, httpQueryParameterName must be set',
    ]);
    expect(await bad('{simple: RANDOM, consistentHash: {useSourceIp: true}}')).toEqual([
      'mesh.yaml:18:36: DestinationRule/lb: spec.trafficPolicy.loadBalancer.consistentHash: only one of simple, consistentHash may be set',
    ]);
    expect(await bad('{consistentHash: {useSourceIp: true, maglev: {tableSize: 1000}}}')).toEqual([
      'mesh.yaml:18:76: DestinationRule/lb: spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize: 1000 is not a prime number (maglev table sizes must be prime)',
    ]);
  });
});

describe('DestinationRule merging (Istio MergeSubsetTrafficPolicy)', () => {
  const DR = destinationRule(
    'reviews',
    `  host: reviews
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    connectionPool:
      tcp: {connectTimeout: 3s}
      http: {idleTimeout: 30s, maxRequestsPerConnection: 5}
    portLevelSettings:
    - port: {number: 9443}
      loadBalancer: {simple: RANDOM}
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      loadBalancer: {consistentHash: {httpHeaderName: x-user}}
  - name: v3
    labels: {version: v3}
    trafficPolicy:
      connectionPool: {tcp: {connectTimeout: 1s}}
      portLevelSettings:
      - port: {number: 9443}
        loadBalancer: {simple: ROUND_ROBIN}
`,
  );

  const view = (c: Cluster): object => ({ lb: c.lb.kind, connect: c.connectTimeoutMs, idle: c.idleTimeoutMs, perConn: c.maxRequestsPerConnection });

  it('the top-level policy applies to every port without a port-level entry', async () => {
    const m = await model(REVIEWS, DR);
    expect(view(cluster(m, 'outbound|9080||reviews.default.svc.cluster.local'))).toEqual({ lb: 'ROUND_ROBIN', connect: 3000, idle: 30_000, perConn: 5 });
    expect(view(cluster(m, 'outbound|9080|v1|reviews.default.svc.cluster.local'))).toEqual({ lb: 'ROUND_ROBIN', connect: 3000, idle: 30_000, perConn: 5 });
  });

  it('a matching port-level entry replaces all four blocks: what it omits gets defaults, not the top level', async () => {
    const m = await model(REVIEWS, DR);
    expect(view(cluster(m, 'outbound|9443||reviews.default.svc.cluster.local'))).toEqual({ lb: 'RANDOM', connect: 10_000, idle: 3_600_000, perConn: 0 });
    expect(view(cluster(m, 'outbound|9443|v1|reviews.default.svc.cluster.local'))).toEqual({ lb: 'RANDOM', connect: 10_000, idle: 3_600_000, perConn: 0 });
  });

  it('a subset block replaces the parent block of the same kind; the other blocks are inherited', async () => {
    const m = await model(REVIEWS, DR);
    const v2 = cluster(m, 'outbound|9080|v2|reviews.default.svc.cluster.local');
    expect(view(v2)).toEqual({ lb: 'RING_HASH', connect: 3000, idle: 30_000, perConn: 5 });
    expect(v2.hashPolicy).toEqual({ kind: 'header', name: 'x-user' });
    // On the port-level port the parent is the port-level entry: connection pool defaults.
    expect(view(cluster(m, 'outbound|9443|v2|reviews.default.svc.cluster.local'))).toEqual({ lb: 'RING_HASH', connect: 10_000, idle: 3_600_000, perConn: 0 });
    // The subset's connectionPool replaces the whole block (http settings are not merged in).
    expect(view(cluster(m, 'outbound|9080|v3|reviews.default.svc.cluster.local'))).toEqual({ lb: 'ROUND_ROBIN', connect: 1000, idle: 3_600_000, perConn: 0 });
  });

  it('a subset port-level entry replaces all four blocks, even the ones it leaves unset', async () => {
    const m = await model(REVIEWS, DR);
    expect(view(cluster(m, 'outbound|9443|v3|reviews.default.svc.cluster.local'))).toEqual({ lb: 'ROUND_ROBIN', connect: 10_000, idle: 3_600_000, perConn: 0 });
  });

  it('with no top-level policy, a subset policy stands alone', async () => {
    const m = await model(
      REVIEWS,
      destinationRule('reviews', '  host: reviews\n  subsets:\n  - {name: v1, labels: {version: v1}, trafficPolicy: {loadBalancer: {simple: RANDOM}}}\n'),
    );
    expect(cluster(m, 'outbound|9080|v1|reviews.default.svc.cluster.local').lb.kind).toBe('RANDOM');
    expect(cluster(m, 'outbound|9080||reviews.default.svc.cluster.local').lb.kind).toBe('LEAST_REQUEST');
  });

  it('rules for one host in one namespace are merged: subsets combined, the first trafficPolicy wins', async () => {
    const r = await load(
      REVIEWS,
      destinationRule('a', '  host: reviews\n  subsets: [{name: v1, labels: {version: v1}}]\n'),
      destinationRule('b', '  host: reviews.default.svc.cluster.local\n  trafficPolicy: {loadBalancer: {simple: RANDOM}}\n  subsets: [{name: v1, labels: {version: v3}}, {name: v2, labels: {version: v2}}]\n'),
      destinationRule('c', '  host: reviews\n  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}\n'),
    );
    const m = r.model!;
    expect(cluster(m, 'outbound|9080||reviews.default.svc.cluster.local').lb.kind).toBe('RANDOM');
    expect(cluster(m, 'outbound|9080|v1|reviews.default.svc.cluster.local').endpoints.map((e) => e.address)).toEqual(['10.0.0.1']);
    expect(cluster(m, 'outbound|9080|v2|reviews.default.svc.cluster.local').endpoints.map((e) => e.address)).toEqual(['10.0.0.2']);
    expect(r.lines).toEqual([
      'mesh.yaml:31:20: DestinationRule/b: spec.subsets[0].name: warning: subset "v1" is already defined for this host by DestinationRule/a; this one is ignored',
      'mesh.yaml:39:18: DestinationRule/c: spec.trafficPolicy: warning: DestinationRule/b already sets the trafficPolicy for this host; this one is ignored (rules for one host are merged: subsets are combined, the first trafficPolicy wins)',
    ]);
  });

  it('namespace precedence: the proxy namespace, then the service namespace, then the root namespace', async () => {
    const svc = serviceEntry('ratings', { namespace: 'prod' });
    const rule = (name: string, ns: string, lb: string, extra = ''): string =>
      destinationRule(name, `  host: ratings.prod.svc.cluster.local\n  trafficPolicy: {loadBalancer: {simple: ${lb}}}\n${extra}`, ns);
    const lbFor = async (...drs: string[]): Promise<string> => cluster(await model(svc, ...drs), 'outbound|9080||ratings.prod.svc.cluster.local').lb.kind;
    expect(await lbFor(rule('root', 'istio-system', 'RANDOM'), rule('svc', 'prod', 'ROUND_ROBIN'), rule('client', 'default', 'PASSTHROUGH'))).toBe('ROUND_ROBIN');
    expect(await lbFor(rule('root', 'istio-system', 'RANDOM'), rule('svc', 'prod', 'ROUND_ROBIN'))).toBe('ROUND_ROBIN');
    expect(await lbFor(rule('root', 'istio-system', 'RANDOM'))).toBe('RANDOM');
    // A rule in an unrelated namespace does not apply; a rule not exported to the proxy's namespace neither.
    expect(await lbFor(rule('other', 'other', 'RANDOM'))).toBe('LEAST_REQUEST');
    expect(await lbFor(rule('private', 'prod', 'RANDOM', '  exportTo: ["."]\n'))).toBe('LEAST_REQUEST');
    expect(await lbFor(rule('to-default', 'prod', 'RANDOM', '  exportTo: [default]\n'))).toBe('RANDOM');
  });

  it('the proxy namespace rule applies even when the service namespace has one (PASSTHROUGH proves which)', async () => {
    const m = await model(
      serviceEntry('ratings', { namespace: 'prod' }),
      destinationRule('svc', '  host: ratings.prod.svc.cluster.local\n  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}\n', 'prod'),
      destinationRule('client', '  host: ratings.prod.svc.cluster.local\n  trafficPolicy: {loadBalancer: {simple: PASSTHROUGH}}\n', 'default'),
    );
    expect(cluster(m, 'outbound|9080||ratings.prod.svc.cluster.local').discovery).toBe('ORIGINAL_DST');
  });

  it('the most specific host wins: exact over wildcard, longer wildcard over shorter', async () => {
    const m = await model(
      serviceEntry('a.b.example.com'),
      serviceEntry('c.b.example.com'),
      serviceEntry('d.example.com'),
      destinationRule('all', '  host: "*.example.com"\n  trafficPolicy: {loadBalancer: {simple: RANDOM}}\n'),
      destinationRule('b', '  host: "*.b.example.com"\n  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}\n'),
      destinationRule('exact', '  host: a.b.example.com\n  trafficPolicy: {loadBalancer: {simple: PASSTHROUGH}}\n'),
    );
    expect(cluster(m, 'outbound|9080||a.b.example.com').discovery).toBe('ORIGINAL_DST');
    expect(cluster(m, 'outbound|9080||c.b.example.com').lb.kind).toBe('ROUND_ROBIN');
    expect(cluster(m, 'outbound|9080||d.example.com').lb.kind).toBe('RANDOM');
  });

  it('warns about rules that have no effect', async () => {
    const r = await load(
      serviceEntry('ratings', { namespace: 'prod' }),
      destinationRule('nothing', '  host: nothing.example.com\n'),
      destinationRule('elsewhere', '  host: ratings.prod.svc.cluster.local\n', 'other'),
      destinationRule('selected', '  host: ratings.prod.svc.cluster.local\n  workloadSelector: {matchLabels: {app: web}}\n'),
    );
    expect(r.model).toBeDefined();
    expect(r.lines).toEqual([
      'mesh.yaml:17:9: DestinationRule/nothing: spec.host: warning: no service in the registry matches nothing.example.com; this rule has no effect',
      "mesh.yaml:25:9: DestinationRule/elsewhere: spec.host: warning: a DestinationRule applies to ratings.prod.svc.cluster.local only from the proxy's namespace (default), or exported to it from the service's namespace (prod) or the root namespace (istio-system); this rule has no effect",
      'mesh.yaml:33:21: DestinationRule/selected: spec.workloadSelector: warning: workloadSelector does not select this proxy (it has no workload labels); this rule is ignored',
    ]);
  });

  it('TLS origination: files are accepted; credentialName and MUTUAL without a client certificate and key are errors, wherever set', async () => {
    const ok = await load(
      REVIEWS,
      destinationRule(
        'reviews',
        `  host: reviews
  trafficPolicy:
    tls: {mode: SIMPLE}
    portLevelSettings:
    - port: {number: 9443}
      tls: {mode: MUTUAL, clientCertificate: /c.pem, privateKey: /k.pem}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
  - name: v2
    labels: {version: v2}
    trafficPolicy: {tls: {mode: DISABLE}}
`,
      ),
    );
    expect(ok.lines).toEqual([]);
    expect(ok.model).toBeDefined();
    const r = await load(
      REVIEWS,
      destinationRule(
        'reviews',
        `  host: reviews
  trafficPolicy:
    tls: {mode: SIMPLE, credentialName: reviews-tls}
    portLevelSettings:
    - port: {number: 9443}
      tls: {mode: MUTUAL, caCertificates: /ca.pem}
`,
      ),
    );
    expect(r.model).toBeUndefined();
    expect(r.lines).toEqual([
      'mesh.yaml:23:41: DestinationRule/reviews: spec.trafficPolicy.tls.credentialName: TLS origination (SIMPLE) with credentialName is not supported (it needs SDS); use clientCertificate, privateKey and caCertificates file paths',
      'mesh.yaml:26:12: DestinationRule/reviews: spec.trafficPolicy.portLevelSettings[0].tls: MUTUAL TLS requires clientCertificate',
      'mesh.yaml:26:12: DestinationRule/reviews: spec.trafficPolicy.portLevelSettings[0].tls: MUTUAL TLS requires privateKey',
    ]);
  });
});

describe('hosts and virtual host domains', () => {
  it('short names resolve in the resource namespace; domains list the FQDN, name.ns.svc, name.ns and (same namespace) name', async () => {
    const m = await model(
      serviceEntry('reviews'),
      serviceEntry('ratings', { namespace: 'prod', ports: '[{number: 8080, name: http, protocol: HTTP}]' }),
      virtualService('ratings', '  hosts: [ratings]\n  http:\n  - route: [{destination: {host: ratings}}]\n', 'prod'),
    );
    expect(vhost(m, 9080, 'reviews').domains).toEqual(['reviews.default.svc.cluster.local', 'reviews.default.svc', 'reviews.default', 'reviews']);
    const ratings = vhost(m, 8080, 'ratings.prod');
    expect(ratings.domains).toEqual(['ratings.prod.svc.cluster.local', 'ratings.prod.svc', 'ratings.prod']);
    expect(targets(ratings.routes[0]!)).toEqual([['outbound|8080||ratings.prod.svc.cluster.local', 1]]);
    expect(cluster(m, 'outbound|8080||ratings.prod.svc.cluster.local')).toBeDefined();
  });

  it('ServiceEntry addresses are domains too (CIDR ranges are not); non-Kubernetes hosts are only themselves', async () => {
    const m = await model(serviceEntry('api.example.com', { addresses: '[240.0.0.1, 10.9.0.0/16]' }));
    expect(vhost(m, 9080, 'api.example.com').domains).toEqual(['api.example.com', '240.0.0.1']);
    expect(m.tcpServices).toEqual([
      {
        hostname: 'api.example.com',
        domains: ['api.example.com', '240.0.0.1'],
        addresses: ['240.0.0.1'],
        subnets: ['10.9.0.0/16'],
        port: 9080,
        protocol: 'HTTP',
        cluster: 'outbound|9080||api.example.com',
        routes: [],
      },
    ]);
  });

  it('hosts are lowercased', async () => {
    const m = await model(serviceEntry('API.Example.com', { name: 'api' }));
    expect(cluster(m, 'outbound|9080||api.example.com')).toBeDefined();
    expect(vhost(m, 9080, 'api.example.com').name).toBe('api.example.com:9080');
  });

  it('a service without a VirtualService gets a default route; every route config ends with the catch-all', async () => {
    const m = await model(REVIEWS);
    const rc = routeConfig(m, 9080);
    expect(rc.virtualHosts.map((v) => v.name)).toEqual(['reviews.default.svc.cluster.local:9080', 'allow_any']);
    expect(rc.virtualHosts[0]!.routes).toEqual([
      {
        name: 'default',
        match: { headers: [], queryParams: [] },
        action: {
          kind: 'forward',
          clusters: [{ cluster: 'outbound|9080||reviews.default.svc.cluster.local', weight: 1, requestHeaders: NO_HEADERS, responseHeaders: NO_HEADERS }],
          timeoutMs: 0,
          // The mesh default retry policy (Istio's DefaultPolicy: 503 is the retriable status).
          retryPolicy: {
            numRetries: 2,
            retryOn: ['connect-failure', 'refused-stream', 'unavailable', 'cancelled', 'retriable-status-codes'],
            retriableStatusCodes: [503],
            backoffBaseMs: 25,
            backoffMaxMs: 250,
            avoidPreviousHosts: true,
            hostSelectionRetryMaxAttempts: 5,
          },
        },
        requestHeaders: NO_HEADERS,
        responseHeaders: NO_HEADERS,
      },
    ]);
    // TCP ports have no HTTP route config.
    expect(m.routeConfigs.map((r) => r.name)).toEqual(['9080']);
  });
});

describe('catch-all virtual host', () => {
  it('ALLOW_ANY (the default): allow_any forwards to PassthroughCluster', async () => {
    const m = await model(REVIEWS);
    const expected = {
      name: 'allow_any',
      domains: ['*'],
      routes: [
        {
          name: 'allow_any',
          match: { headers: [], queryParams: [] },
          action: { kind: 'forward', clusters: [{ cluster: 'PassthroughCluster', weight: 1, requestHeaders: NO_HEADERS, responseHeaders: NO_HEADERS }], timeoutMs: 0 },
          requestHeaders: NO_HEADERS,
          responseHeaders: NO_HEADERS,
        },
      ],
    };
    expect(routeConfig(m, 9080).virtualHosts.at(-1)).toEqual(expected);
    expect(m.fallbackRouteConfig).toEqual({ name: 'fallback', virtualHosts: [expected] });
    expect(m.mesh.outboundTrafficPolicy).toBe('ALLOW_ANY');
  });

  it('REGISTRY_ONLY: block_all answers 502 directly', async () => {
    const m = await model(
      `apiVersion: skiff.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
`,
      REVIEWS,
    );
    const blockAll = {
      name: 'block_all',
      domains: ['*'],
      routes: [{ name: 'block_all', match: { headers: [], queryParams: [] }, action: { kind: 'direct', status: 502 }, requestHeaders: NO_HEADERS, responseHeaders: NO_HEADERS }],
    };
    expect(routeConfig(m, 9080).virtualHosts.at(-1)).toEqual(blockAll);
    expect(m.fallbackRouteConfig.virtualHosts).toEqual([blockAll]);
  });
});

describe('VirtualService routes', () => {
  const MULTI = serviceEntry('multi.example.com', {
    ports: '\n  - {number: 8080, name: http-a, protocol: HTTP}\n  - {number: 8081, name: http-b, protocol: HTTP}',
  });
  const SINGLE = serviceEntry('single.example.com', { ports: '[{number: 7070, name: http, protocol: HTTP}]' });

  it('match.port limits a rule to that port', async () => {
    const m = await model(
      MULTI,
      virtualService(
        'multi',
        `  hosts: [multi.example.com]
  http:
  - name: b-only
    match: [{port: 8081, uri: {prefix: /b}}]
    route: [{destination: {host: multi.example.com}}]
  - name: rest
    route: [{destination: {host: multi.example.com}}]
`,
      ),
    );
    expect(vhost(m, 8080, 'multi.example.com').routes.map((r) => r.name)).toEqual(['rest']);
    expect(vhost(m, 8081, 'multi.example.com').routes.map((r) => r.name)).toEqual(['b-only', 'rest']);
  });

  it('rules stop at the first catch-all (no match, or prefix / with no conditions)', async () => {
    const m = await model(
      SINGLE,
      virtualService(
        'single',
        `  hosts: [single.example.com]
  http:
  - name: api
    match: [{uri: {prefix: /api}}, {uri: {prefix: /}}, {uri: {prefix: /never}}]
    route: [{destination: {host: single.example.com}}]
  - name: unreachable
    route: [{destination: {host: single.example.com}}]
`,
      ),
      virtualService(
        'other',
        `  hosts: [other.example.com]
  http:
  - name: header
    match: [{uri: {prefix: /}, headers: {x-a: {exact: "1"}}}]
    route: [{destination: {host: single.example.com}}]
  - name: all
    route: [{destination: {host: single.example.com}}]
  - name: after-all
    route: [{destination: {host: single.example.com}}]
`,
      ),
    );
    const routes = vhost(m, 7070, 'single.example.com').routes;
    expect(routes.map((r) => [r.name, r.match.path])).toEqual([
      ['api', { kind: 'prefix', value: '/api', ignoreCase: false }],
      ['api', { kind: 'prefix', value: '/', ignoreCase: false }],
    ]);
    expect(vhost(m, 80, 'other.example.com').routes.map((r) => r.name)).toEqual(['header', 'all']);
  });

  it('a VirtualService for a host outside the registry lands on port 80', async () => {
    const r = await load(
      SINGLE,
      virtualService('ext', '  hosts: [api.external.io]\n  http:\n  - timeout: 3s\n    route: [{destination: {host: api.external.io}}]\n'),
    );
    const m = r.model!;
    expect(m.routeConfigs.map((rc) => rc.name)).toEqual(['80', '7070']);
    const vh = vhost(m, 80, 'api.external.io');
    expect(vh.name).toBe('api.external.io:80');
    expect(vh.domains).toEqual(['api.external.io']);
    expect(targets(vh.routes[0]!)).toEqual([['outbound|80||api.external.io', 1]]);
    expect(forward(vh.routes[0]!).timeoutMs).toBe(3000);
    expect(r.lines).toEqual([
      'mesh.yaml:19:34: VirtualService/ext: spec.http[0].route[0].destination.host: warning: host api.external.io is not in the service registry (no ServiceEntry declares it): requests routed here get 503 NC',
    ]);
  });

  it('destination port: explicit, else the service\'s only port, else the listener port', async () => {
    const r = await load(
      MULTI,
      SINGLE,
      virtualService(
        'multi',
        `  hosts: [multi.example.com]
  http:
  - name: explicit
    match: [{uri: {prefix: /e}}]
    route: [{destination: {host: multi.example.com, port: {number: 8081}}}]
  - name: only
    match: [{uri: {prefix: /o}}]
    route: [{destination: {host: single.example.com}}]
  - name: listener
    route: [{destination: {host: multi.example.com}}]
`,
      ),
    );
    const on = (port: number): Array<[string, string]> => vhost(r.model!, port, 'multi.example.com').routes.map((x) => [x.name, targets(x)[0]![0]]);
    expect(on(8080)).toEqual([
      ['explicit', 'outbound|8081||multi.example.com'],
      ['only', 'outbound|7070||single.example.com'],
      ['listener', 'outbound|8080||multi.example.com'],
    ]);
    expect(on(8081)).toEqual([
      ['explicit', 'outbound|8081||multi.example.com'],
      ['only', 'outbound|7070||single.example.com'],
      ['listener', 'outbound|8081||multi.example.com'],
    ]);
    expect(r.lines).toEqual([]);
  });

  it('a destination port the service does not have is a warning (503 NC)', async () => {
    const r = await load(SINGLE, virtualService('bad-port', '  hosts: [single.example.com]\n  http:\n  - route: [{destination: {host: single.example.com, port: {number: 9999}}}]\n'));
    expect(r.lines).toEqual([
      'mesh.yaml:18:27: VirtualService/bad-port: spec.http[0].route[0].destination: warning: service single.example.com has no port 9999: requests routed here get 503 NC',
    ]);
  });

  it('route names: the rule name, or rule.match when the match is named', async () => {
    const m = await model(
      SINGLE,
      virtualService(
        'names',
        `  hosts: [single.example.com]
  http:
  - name: canary
    match: [{name: beta, headers: {x-beta: {exact: "1"}}}, {headers: {x-alpha: {exact: "1"}}}, {name: "", headers: {x-c: {exact: "1"}}}]
    route: [{destination: {host: single.example.com}}]
  - match: [{name: anon, headers: {x-d: {exact: "1"}}}]
    route: [{destination: {host: single.example.com}}]
  - route: [{destination: {host: single.example.com}}]
`,
      ),
    );
    expect(vhost(m, 7070, 'single.example.com').routes.map((r) => r.name)).toEqual(['canary.beta', 'canary', 'canary', '.anon', '']);
  });

  it('route timeout is 0 (disabled) unless set', async () => {
    const m = await model(
      SINGLE,
      virtualService('t', '  hosts: [single.example.com]\n  http:\n  - match: [{uri: {prefix: /slow}}]\n    timeout: 1.5s\n    route: [{destination: {host: single.example.com}}]\n  - route: [{destination: {host: single.example.com}}]\n'),
    );
    expect(vhost(m, 7070, 'single.example.com').routes.map((r) => forward(r).timeoutMs)).toEqual([1500, 0]);
  });

  it('a single destination: its header operations merge into the route\'s; :authority becomes a host rewrite', async () => {
    const m = await model(
      SINGLE,
      virtualService(
        'h',
        `  hosts: [single.example.com]
  http:
  - headers:
      request:
        set: {":authority": rewritten.example.com, x-route: r}
        add: {x-add: a}
        remove: [x-drop]
      response:
        set: {x-resp: r}
    route:
    - destination: {host: single.example.com}
      headers:
        request: {set: {x-dest: d}, remove: [x-drop2]}
        response: {add: {x-dresp: d}}
`,
      ),
    );
    const route = vhost(m, 7070, 'single.example.com').routes[0]!;
    // Istio's order: route set, route add, then the destination's set and add.
    expect(route.requestHeaders).toEqual({ remove: ['x-drop', 'x-drop2'], add: [setH('x-route', 'r'), addH('x-add', 'a'), setH('x-dest', 'd')] });
    expect(route.responseHeaders).toEqual({ remove: [], add: [setH('x-resp', 'r'), addH('x-dresp', 'd')] });
    expect(forward(route)).toMatchObject({ hostRewrite: 'rewritten.example.com' });
    expect(forward(route).clusters[0]).toMatchObject({ requestHeaders: NO_HEADERS, responseHeaders: NO_HEADERS });
  });

  it('weighted destinations keep their own headers and host rewrite; zero weights are dropped', async () => {
    const m = await model(
      MULTI,
      SINGLE,
      virtualService(
        'w',
        `  hosts: [single.example.com]
  http:
  - headers: {request: {set: {x-route: r}}}
    route:
    - destination: {host: single.example.com}
      weight: 75
      headers: {request: {set: {x-dest: a, host: a.example.com}}}
    - destination: {host: multi.example.com, port: {number: 8080}}
      weight: 25
    - destination: {host: multi.example.com, port: {number: 8081}}
      weight: 0
`,
      ),
    );
    const route = vhost(m, 7070, 'single.example.com').routes[0]!;
    expect(route.requestHeaders).toEqual({ remove: [], add: [setH('x-route', 'r')] });
    expect(forward(route).clusters).toEqual([
      { cluster: 'outbound|7070||single.example.com', weight: 75, requestHeaders: { remove: [], add: [setH('x-dest', 'a')] }, responseHeaders: NO_HEADERS, hostRewrite: 'a.example.com' },
      { cluster: 'outbound|8080||multi.example.com', weight: 25, requestHeaders: NO_HEADERS, responseHeaders: NO_HEADERS },
    ]);
    expect(forward(route).hostRewrite).toBeUndefined();
  });

  it('rewrite.authority wins over an :authority header; rewrites of the path', async () => {
    const m = await model(
      SINGLE,
      virtualService(
        'rw',
        `  hosts: [single.example.com]
  http:
  - match: [{uri: {prefix: /v1}}]
    rewrite: {uri: /v2, authority: new.example.com}
    headers: {request: {set: {":authority": ignored.example.com}}}
    route: [{destination: {host: single.example.com}}]
  - match: [{uri: {regex: "/users/([0-9]+)"}}]
    rewrite: {uriRegexRewrite: {match: "/users/([0-9]+)", rewrite: "/u/\\\\1"}}
    route: [{destination: {host: single.example.com}}]
`,
      ),
    );
    const [a, b] = vhost(m, 7070, 'single.example.com').routes;
    expect(forward(a!)).toMatchObject({ prefixRewrite: '/v2', hostRewrite: 'new.example.com' });
    expect(forward(b!)).toMatchObject({ regexRewrite: { pattern: '/users/([0-9]+)', substitution: '/u/\\1' } });
    expect(forward(b!).prefixRewrite).toBeUndefined();
  });

  it('redirects and direct responses', async () => {
    const m = await model(
      SINGLE,
      virtualService(
        'r',
        `  hosts: [single.example.com]
  http:
  - match: [{uri: {exact: /old}}]
    redirect: {uri: /new, authority: b.example.com, redirectCode: 308}
  - match: [{uri: {exact: /moved}}]
    redirect: {scheme: https, derivePort: FROM_PROTOCOL_DEFAULT}
  - match: [{uri: {exact: /health}}]
    directResponse: {status: 200, body: {string: ok}}
  - directResponse: {status: 503}
`,
      ),
    );
    const routes = vhost(m, 7070, 'single.example.com').routes;
    expect(routes[0]!.action).toEqual({ kind: 'redirect', pathRedirect: '/new', hostRedirect: 'b.example.com', responseCode: 308 });
    expect(routes[1]!.action).toEqual({ kind: 'redirect', schemeRedirect: 'https', derivePort: 'FROM_PROTOCOL_DEFAULT', responseCode: 301 });
    expect(routes[2]!.action).toEqual({ kind: 'direct', status: 200, body: Buffer.from('ok') });
    expect(routes[3]!.action).toEqual({ kind: 'direct', status: 503 });
  });

  it('matches: uri, ignoreUriCase, headers sorted then :method/:authority/:scheme, withoutHeaders inverted, query params', async () => {
    const m = await model(
      SINGLE,
      virtualService(
        'm',
        `  hosts: [single.example.com]
  http:
  - match:
    - uri: {prefix: /API}
      ignoreUriCase: true
      method: {exact: GET}
      authority: {prefix: single}
      scheme: {exact: http}
      headers:
        x-z: {regex: "v[0-9]+"}
        x-a: {}
      withoutHeaders:
        x-m: {exact: bad}
        x-p: {}
      queryParams:
        debug: {exact: "1"}
        trace: {}
    route: [{destination: {host: single.example.com}}]
`,
      ),
    );
    expect(vhost(m, 7070, 'single.example.com').routes[0]!.match).toEqual({
      path: { kind: 'prefix', value: '/API', ignoreCase: true },
      headers: [
        { name: 'x-a', invert: false, treatMissingAsEmpty: false },
        { name: 'x-m', match: { kind: 'exact', value: 'bad', ignoreCase: false }, invert: true, treatMissingAsEmpty: true },
        { name: 'x-p', invert: true, treatMissingAsEmpty: false },
        { name: 'x-z', match: { kind: 'regex', value: 'v[0-9]+' }, invert: false, treatMissingAsEmpty: false },
        { name: ':method', match: { kind: 'exact', value: 'GET', ignoreCase: false }, invert: false, treatMissingAsEmpty: false },
        { name: ':authority', match: { kind: 'prefix', value: 'single', ignoreCase: false }, invert: false, treatMissingAsEmpty: false },
        { name: ':scheme', match: { kind: 'exact', value: 'http', ignoreCase: false }, invert: false, treatMissingAsEmpty: false },
      ],
      queryParams: [{ name: 'debug', match: { kind: 'exact', value: '1', ignoreCase: false } }, { name: 'trace' }],
    });
  });

  it('only VirtualServices bound to the mesh apply; per-match gateways and sourceLabels select sources', async () => {
    const m = await model(
      SINGLE,
      virtualService('gw-only', '  hosts: [single.example.com]\n  gateways: [istio-system/ingress]\n  http:\n  - name: gw\n    route: [{destination: {host: single.example.com}}]\n'),
      virtualService(
        'mesh',
        `  hosts: [single.example.com]
  gateways: [mesh, istio-system/ingress]
  http:
  - name: for-gateway
    match: [{gateways: [istio-system/ingress]}]
    route: [{destination: {host: single.example.com}}]
  - name: for-labelled
    match: [{sourceLabels: {app: web}}]
    route: [{destination: {host: single.example.com}}]
  - name: for-other-ns
    match: [{sourceNamespace: prod}]
    route: [{destination: {host: single.example.com}}]
  - name: for-mesh
    match: [{gateways: [mesh], uri: {prefix: /m}}]
    route: [{destination: {host: single.example.com}}]
  - name: rest
    route: [{destination: {host: single.example.com}}]
`,
      ),
    );
    const vh = vhost(m, 7070, 'single.example.com');
    expect(vh.name).toBe('single.example.com:7070');
    expect(vh.routes.map((r) => r.name)).toEqual(['for-mesh', 'rest']);
  });

  it('subsets no DestinationRule defines are warned about (Envoy answers 503 NC)', async () => {
    const r = await load(REVIEWS, REVIEWS_SUBSETS, virtualService('reviews', '  hosts: [reviews]\n  http:\n  - route: [{destination: {host: reviews, subset: v9}}]\n'));
    expect(r.model).toBeDefined();
    expect(r.lines).toEqual([
      'mesh.yaml:34:51: VirtualService/reviews: spec.http[0].route[0].destination.subset: warning: subset "v9" is not defined by any DestinationRule for reviews.default.svc.cluster.local: requests routed here get 503 NC',
    ]);
  });

  it('the first VirtualService for a host wins on a port; the next one is warned about', async () => {
    const r = await load(
      SINGLE,
      virtualService('first', '  hosts: [single.example.com]\n  http:\n  - name: first\n    route: [{destination: {host: single.example.com}}]\n'),
      virtualService('second', '  hosts: [single.example.com]\n  http:\n  - name: second\n    route: [{destination: {host: single.example.com}}]\n'),
    );
    expect(vhost(r.model!, 7070, 'single.example.com').routes.map((x) => x.name)).toEqual(['first']);
    expect(r.lines).toEqual([
      'mesh.yaml:26:10: VirtualService/second: spec.hosts: warning: some hosts already have a VirtualService on port 7070; the first one wins for them',
    ]);
  });

  it('a wildcard VirtualService host claims the registry services it covers', async () => {
    const m = await model(
      serviceEntry('a.example.com'),
      serviceEntry('b.other.com'),
      virtualService('wild', '  hosts: ["*.example.com"]\n  http:\n  - name: wild\n    route: [{destination: {host: a.example.com}}]\n'),
    );
    expect(vhost(m, 9080, 'a.example.com').routes.map((r) => r.name)).toEqual(['wild']);
    expect(vhost(m, 9080, 'b.other.com').routes.map((r) => r.name)).toEqual(['default']);
  });
});
