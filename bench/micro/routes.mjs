/**
 * Route lookup and match (budget P6: "route match at 1000 hosts ≤ 1 µs"), and the one-shot
 * "config load+compile for N services" timing (P6: ≤ 1 s).
 *
 * Route tables are built straight from the model (RouteConfig[]) the way the Istio translation
 * lays them out: one route config for port 9080, one virtual host per service with the name forms
 * Istio lists (FQDN, name.ns.svc, name.ns, the short name in the client namespace, the cluster IP),
 * each with a header-match route, an exact path, a regex path, a prefix and the default route,
 * then the `*` catch-all. Requests are viewed as src/http/router/request-view.ts builds them.
 */
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { RouteTables } from '../../dist/compile/route-table.js';
import { compileSnapshot } from '../../dist/compile/snapshot.js';
import { loadFromSources } from '../../dist/config/load.js';
import { HeaderMap } from '../../dist/http/headers.js';
import { RequestView, splitAuthority } from '../../dist/http/router/request-view.js';
import { enableLinearRegexFallback } from '../../dist/core/re2.js';
import { check, flat, oneShotRow, suite } from './harness.mjs';

const PORT = 9080;
const CLIENT_NS = 'ns-0';
const NO_MUTATION = { remove: [], add: [] };

const pad = (i) => String(i).padStart(4, '0');
const fqdn = (i) => flat(`svc-${pad(i)}.ns-${i % 10}.svc.cluster.local`);

function forward(cluster) {
  return { kind: 'forward', clusters: [{ cluster, weight: 100, requestHeaders: NO_MUTATION, responseHeaders: NO_MUTATION }], timeoutMs: 0 };
}

function route(name, match, cluster) {
  return { name, match: { headers: [], queryParams: [], ...match }, action: forward(cluster), requestHeaders: NO_MUTATION, responseHeaders: NO_MUTATION };
}

function virtualHost(i) {
  const host = fqdn(i);
  const ns = `ns-${i % 10}`;
  const name = `svc-${pad(i)}`;
  const domains = [host, `${name}.${ns}.svc`, `${name}.${ns}`];
  if (ns === CLIENT_NS) domains.push(name);
  domains.push(`10.96.${i >> 8}.${i & 255}`);
  const c = (subset) => `outbound|${PORT}|${subset}|${host}`;
  return {
    name: `${host}:${PORT}`,
    domains,
    routes: [
      route('jason', { headers: [{ name: 'end-user', match: { kind: 'exact', value: 'jason' }, invert: false, treatMissingAsEmpty: false }] }, c('v2')),
      route('health', { path: { kind: 'exact', value: '/healthz' } }, c('v1')),
      route('items', { path: { kind: 'regex', value: '/api/v[0-9]+/items/[0-9]+' } }, c('v3')),
      route('api', { path: { kind: 'prefix', value: '/api/' } }, c('v1')),
      route('default', { path: { kind: 'prefix', value: '/' } }, c('v1')),
    ],
  };
}

function catchAll() {
  return { name: 'allow_any', domains: ['*'], routes: [route('allow_any', {}, 'PassthroughCluster')] };
}

/** `n` services on one port (plus `wildcards` `*.ext-k.example.com` virtual hosts), then `*`. */
export function buildTables(n, wildcards = 0) {
  const vhosts = [];
  for (let i = 0; i < n; i++) vhosts.push(virtualHost(i));
  for (let k = 0; k < wildcards; k++) {
    vhosts.push({ name: `*.ext-${k}.example.com:${PORT}`, domains: [`*.ext-${k}.example.com`], routes: [route('ext', {}, `outbound|${PORT}||ext-${k}.example.com`)] });
  }
  vhosts.push(catchAll());
  return new RouteTables([{ name: String(PORT), virtualHosts: vhosts }], { name: 'fallback', virtualHosts: [catchAll()] });
}

/** Request headers as the codec delivers them (lowercase names, wire order): curl/wrk-like. */
function requestHeaders(authority) {
  return new HeaderMap(
    ['host', 'user-agent', 'accept', 'accept-encoding', 'x-request-id', 'authorization'],
    [authority, 'curl/8.5.0', '*/*', 'gzip', '9f2c3a56-1b7e-4c1d-8a0e-5b2f7d9c4e11', 'Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc'],
  );
}

/** What RequestView reads from a DownstreamStream. */
function stream(authority, path) {
  return { method: 'GET', authority: flat(authority), scheme: 'http', headers: requestHeaders(flat(authority)), path: flat(path) };
}

const PATH = '/api/v1/items/42?page=2';
const plural = (n) => (n === 1 ? `${n} host` : `${n} hosts`);

function addRouteTasks(s, label, tables, host, expectedRoute) {
  const authority = `${host}:${PORT}`;
  const view = new RequestView(stream(authority, PATH));
  const first = tables.resolve(host, PORT);
  const picked = first.vhost?.select(view);
  check(picked?.name === expectedRoute, `${label}: ${host} selected ${picked?.name}, expected ${expectedRoute}`);
  s.add(label, () => {
    const r = tables.resolve(host, PORT);
    return r.vhost.select(view).name.length + r.port;
  });
}

// --- config load + compile (one-shot) -----------------------------------------------------------

/** One file per service: ServiceEntry + DestinationRule + VirtualService, as a config folder holds. */
export function serviceSources(n) {
  const sources = [];
  for (let i = 0; i < n; i++) {
    const host = fqdn(i);
    const ns = `ns-${i % 10}`;
    const name = `svc-${pad(i)}`;
    const ip = (k) => `10.${(i >> 8) & 255}.${i & 255}.${k + 1}`;
    const text = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ${name}, namespace: ${ns}}
spec:
  hosts: [${host}]
  addresses: [10.96.${i >> 8}.${i & 255}]
  location: MESH_INTERNAL
  ports:
  - {number: ${PORT}, name: http, protocol: HTTP}
  resolution: STATIC
  endpoints:
  - {address: ${ip(0)}, labels: {app: ${name}, version: v1}}
  - {address: ${ip(1)}, labels: {app: ${name}, version: v2}}
  - {address: ${ip(2)}, labels: {app: ${name}, version: v3}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ${name}, namespace: ${ns}}
spec:
  host: ${host}
  trafficPolicy:
    loadBalancer: {simple: LEAST_REQUEST}
    connectionPool:
      http: {idleTimeout: 30s, maxRequestsPerConnection: 1000}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ${name}, namespace: ${ns}}
spec:
  hosts: [${host}]
  http:
  - name: jason
    match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: ${host}, subset: v2}}]
  - name: health
    match: [{uri: {exact: /healthz}}]
    route: [{destination: {host: ${host}, subset: v1}}]
  - name: items
    match: [{uri: {regex: "/api/v[0-9]+/items/[0-9]+"}}]
    route: [{destination: {host: ${host}, subset: v3}}]
    timeout: 5s
  - name: default
    route:
    - {destination: {host: ${host}, subset: v1}, weight: 90}
    - {destination: {host: ${host}, subset: v2}, weight: 10}
`;
    sources.push({ name: `mesh/${name}.yaml`, absolutePath: `/bench/mesh/${name}.yaml`, text });
  }
  return sources;
}

function loadAndCompile(sources) {
  const t0 = performance.now();
  const loaded = loadFromSources(sources);
  const t1 = performance.now();
  const errors = loaded.diagnostics.filter((d) => d.severity === 'error');
  check(loaded.model !== undefined, `config load failed: ${errors.slice(0, 3).map((d) => `${d.file}: ${d.field}: ${d.message}`).join('; ')}`);
  const snapshot = compileSnapshot(loaded.model, 1);
  const t2 = performance.now();
  return { snapshot, loadMs: t1 - t0, compileMs: t2 - t1, totalMs: t2 - t0, warnings: loaded.diagnostics.length };
}

/**
 * Where load+compile time goes, stage by stage, as loadFromSources runs them (YAML documents,
 * resource recognition and validation, Istio → model translation, snapshot compile). Reaches
 * into internal modules, so it is diagnostic only: undefined if they have moved.
 */
async function stageTimes(sources) {
  try {
    const [{ parseDocuments }, { recogniseResources }, { translate }] = await Promise.all([
      import('../../dist/config/documents.js'),
      import('../../dist/config/istio/resources.js'),
      import('../../dist/config/istio/translate.js'),
    ]);
    let t = performance.now();
    const lap = () => {
      const now = performance.now();
      const d = now - t;
      t = now;
      return Math.round(d);
    };
    const documents = [];
    for (const f of sources) documents.push(...parseDocuments(f).documents);
    const yaml = lap();
    const recognised = recogniseResources(documents);
    const recognise = lap();
    const translation = translate(recognised.resources);
    const translateMs = lap();
    compileSnapshot(translation.model, 1);
    const compile = lap();
    return { yaml, recognise, translate: translateMs, compile };
  } catch {
    return undefined;
  }
}

/** `gc()` without --expose-gc, for the retained-heap figure. */
function getGc() {
  try {
    setFlagsFromString('--expose-gc');
    return runInNewContext('gc');
  } catch {
    return undefined;
  }
}

async function configRows({ quick }, n) {
  const sources = serviceSources(n);
  const gc = getGc();
  gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  const cold = loadAndCompile(sources);
  gc?.();
  const retainedMb = gc === undefined ? undefined : (process.memoryUsage().heapUsed - heapBefore) / (1024 * 1024);
  const warm = [];
  for (let k = 0; k < (quick ? 1 : 3); k++) warm.push(loadAndCompile(sources));
  const stages = quick ? undefined : await stageTimes(sources);
  const rows = [
    oneShotRow('config', `load+compile ${n} services (SE+DR+VS), first run`, [cold.totalMs], {
      loadMs: cold.loadMs,
      compileMs: cold.compileMs,
      ...(retainedMb === undefined ? {} : { retainedHeapMb: retainedMb }),
    }),
    oneShotRow('config', `load+compile ${n} services (SE+DR+VS), warm`, warm.map((w) => w.totalMs), {
      loadMs: warm.reduce((s, w) => s + w.loadMs, 0) / warm.length,
      compileMs: warm.reduce((s, w) => s + w.compileMs, 0) / warm.length,
      ...(stages === undefined ? {} : { stagesMs: stages }),
    }),
  ];
  return { rows, snapshot: cold.snapshot };
}

// --- all route benchmarks ------------------------------------------------------------------------

export async function runRouteBenchmarks({ quick }) {
  // As the proxy does at start, before any route regex is compiled (lifecycle/proxy.ts).
  enableLinearRegexFallback();
  // One-shot first, so "first run" is as cold as the process allows.
  const config = await configRows({ quick }, 1000);

  const s = suite('route', { quick });
  const unknown = flat('unknown.example.net');
  for (const n of [1, 100, 1000]) {
    const tables = buildTables(n);
    addRouteTasks(s, `resolve+select ${plural(n)}, last host`, tables, fqdn(n - 1), 'items');
    addRouteTasks(s, `resolve+select ${plural(n)}, unknown host → *`, tables, unknown, 'allow_any');
  }

  const big = buildTables(1000);
  const lastHost = fqdn(999);

  // Host header without a port: resolve() first tries port 80, then the port the name is served on.
  {
    const view = new RequestView(stream(lastHost, PATH));
    check(big.resolve(lastHost, undefined).vhost?.select(view)?.name === 'items', 'no-port resolve');
    s.add('resolve+select 1000 hosts, last host, Host without port', () => {
      const r = big.resolve(lastHost, undefined);
      return r.vhost.select(view).name.length + r.port;
    });
  }

  // The router's whole per-request routing step: split the authority (a fresh host string, so
  // the Map lookup hashes it as it would a parsed header), build the view, resolve, select.
  {
    const st = stream(`${lastHost}:${PORT}`, PATH);
    s.add('router step 1000 hosts (splitAuthority+RequestView+resolve+select)', () => {
      const { host, port } = splitAuthority(st.authority);
      const view = new RequestView(st);
      const r = big.resolve(host, port);
      return r.vhost.select(view).name.length + r.port;
    });
  }

  // Wildcard domains are a linear list: an unknown host walks all of them before `*`.
  addRouteTasks(s, 'resolve+select 1000 hosts + 100 wildcard domains, unknown host → *', buildTables(1000, 100), unknown, 'allow_any');

  // The same lookup on the snapshot compiled from 1000 translated SE+DR+VS.
  {
    const tables = config.snapshot.routes;
    const view = new RequestView(stream(`${lastHost}:${PORT}`, PATH));
    const r = tables.resolve(lastHost, PORT);
    check(r.vhost?.select(view)?.name === 'items', `loaded config: selected ${r.vhost?.select(view)?.name}`);
    s.add('resolve+select, snapshot from 1000 translated services, last host', () => {
      const r = tables.resolve(lastHost, PORT);
      return r.vhost.select(view).name.length + r.port;
    });
  }

  const rows = await s.run();
  return [...config.rows, ...rows];
}
