/**
 * Real istiod output replayed to skiff over ADS: the clusters, listeners, route configurations
 * and endpoints of Istio sidecar config dumps (shared/xds-data, see SOURCES.md) are served by
 * the test ADS server. skiff must accept all of them (an ACK for every response), and HTTP
 * requests through it must reach the cluster each dump's route configuration names for the
 * request's host and port. The endpoints of the clusters under test are moved to local servers,
 * one per cluster, which answer with their cluster's name.
 */
import { createServer as createHttp2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/core/logger.js';
import { TypeUrl } from '../../src/config/xds/proto.js';
import { XdsConfigSource } from '../../src/config/xds/xds-source.js';
import { Proxy } from '../../src/lifecycle/proxy.js';
import { DEFAULT_MESH } from '../../src/model/index.js';
import { AdsServer, resourceName } from '../support/ads-server.js';
import { get } from '../helpers/client.js';
import { EMPTY_METADATA } from '../helpers/proxy.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { assignment } from '../helpers/xds-resources.js';

const DATA = new URL('../../../shared/xds-data/', import.meta.url).pathname;

interface Expectation {
  readonly host: string;
  readonly port: number;
  readonly cluster: string;
}

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const field = (o: Obj, snake: string): any => o[snake] ?? o[snake.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase())]; // eslint-disable-line @typescript-eslint/no-explicit-any

/**
 * What the dump's port route configurations (named by port, as `0.0.0.0_<port>` listeners use
 * them) say: each service virtual host's first route, when it sends `/` to one EDS cluster.
 */
function expectations(routes: readonly Obj[], edsClusters: ReadonlySet<string>, limit: number): Expectation[] {
  const out: Expectation[] = [];
  for (const rc of routes) {
    const port = Number(rc['name']);
    if (!Number.isInteger(port)) continue;
    for (const vh of field(rc, 'virtual_hosts') as Obj[]) {
      const first = (vh['routes'] as Obj[])[0];
      const cluster = first?.['route']?.['cluster'] as string | undefined;
      const prefix = first?.['match']?.['prefix'];
      // Headless services' clusters (ORIGINAL_DST) go where the request says: not testable here.
      if (cluster === undefined || prefix !== '/' || !edsClusters.has(cluster)) continue;
      const domain = (vh['domains'] as string[]).find((d) => d.includes('.svc.') && !d.includes(':') && !d.includes('*'));
      if (domain !== undefined) out.push({ host: domain, port, cluster });
    }
  }
  return out.slice(0, limit);
}

async function replay(dumpFile: string, options: { readonly limit: number }): Promise<{ server: AdsServer; proxy: Proxy; cases: Expectation[]; upstreams: Upstream[]; logs: string[] }> {
  const dump = await AdsServer.loadConfigDump(`${DATA}${dumpFile}`);
  const eds = new Set((dump.clusters as Obj[]).filter((c) => field(c, 'type') === 'EDS').map(resourceName));
  const cases = expectations(dump.routes as Obj[], eds, options.limit);
  // Clusters istiod marks HTTP/2 (ports declared http2 or grpc) get an h2c server.
  const http2 = new Set((dump.clusters as Obj[]).filter((c) => JSON.stringify(field(c, 'typed_extension_protocol_options') ?? {}).match(/"(explicit_http_config|explicitHttpConfig)":\{"(http2_protocol_options|http2ProtocolOptions)"/)).map(resourceName));
  const upstreams = await Promise.all(cases.map((c) => (http2.has(c.cluster) ? startH2cUpstream(c.cluster) : startUpstream(c.cluster))));
  // The clusters under test get local endpoints; every other cluster keeps the dump's own (never
  // dialled), and EDS clusters the dump has no assignment for get an empty one.
  const local = new Map(cases.map((c, i) => [c.cluster, upstreams[i]!.port]));
  const endpoints = new Map<string, object>((dump.endpoints as Obj[]).map((e) => [resourceName(e), e]));
  for (const c of dump.clusters as Obj[]) {
    const name = resourceName(c);
    const eds = field(c, 'eds_cluster_config');
    if (eds === undefined && field(c, 'type') !== 'EDS') continue;
    const serviceName = (eds === undefined ? undefined : field(eds, 'service_name')) ?? name;
    const port = local.get(name);
    if (port !== undefined) endpoints.set(serviceName, assignment(serviceName, [port]));
    else if (!endpoints.has(serviceName)) endpoints.set(serviceName, { '@type': TypeUrl.endpoints, cluster_name: serviceName });
  }
  const server = await AdsServer.start({ answerUnset: false });
  server.setResources(TypeUrl.cluster, dump.clusters);
  server.setResources(TypeUrl.endpoints, [...endpoints.values()]);
  server.setResources(TypeUrl.listener, dump.listeners);
  server.setResources(TypeUrl.routes, dump.routes);
  const logs: string[] = [];
  const log = createLogger({ level: 'info', sink: (l) => logs.push(l) });
  const source = new XdsConfigSource({ target: server.target, node: { id: 'sidecar~10.0.0.1~replay.default~default.svc.cluster.local' }, mesh: DEFAULT_MESH, log });
  const starting = Proxy.start({ configPath: 'xds', source, logger: log, ports: { outbound: 0, admin: 0, readiness: 0 }, metadata: EMPTY_METADATA });
  // A NACK would leave the proxy waiting: fail with the server's view of the exchange instead.
  const nacked = server.waitFor((r) => r.errorDetail !== undefined, 20_000).then((r) => {
    throw new Error(`skiff NACKed ${r.typeUrl}: ${r.errorDetail!.message.slice(0, 2000)}`);
  });
  const proxy = await Promise.race([starting, nacked]);
  return { server, proxy, cases, upstreams, logs };
}

/** An h2c (HTTP/2 without TLS) server answering `{"server": name}`. */
async function startH2cUpstream(name: string): Promise<Upstream> {
  const server = createHttp2Server((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ server: name })));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return { name, port, server: server as unknown as Upstream['server'], requests: [], close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

describe.each([
  ['DeathStarBench__config_dump.json', 'Istio 1.18 hotel-reservation sidecar, with EDS'],
  ['istio__configdump.json', 'Istio 1.10 bookinfo details-v1 sidecar (camelCase, no EDS in the dump)'],
])('replaying %s (%s)', (file) => {
  let h: Awaited<ReturnType<typeof replay>>;
  beforeAll(async () => {
    h = await replay(file, { limit: 40 });
  }, 30_000);
  afterAll(async () => {
    await h?.proxy.close(true);
    await h?.server.close();
    await Promise.all(h?.upstreams.map((u) => u.close()) ?? []);
  });

  it('accepts every resource type (ACK, no NACK)', async () => {
    for (const type of [TypeUrl.cluster, TypeUrl.endpoints, TypeUrl.listener, TypeUrl.routes]) {
      await h.server.waitFor((r) => r.typeUrl === type && r.versionInfo === h.server.version(type));
      expect(h.server.nacks(type), type).toEqual([]);
    }
  });

  it('routes each service host to the cluster the dump names', async () => {
    expect(h.cases.length).toBeGreaterThan(3);
    for (const c of h.cases) {
      const r = await get(h.proxy.ports.outbound, `${c.host}:${c.port}`);
      expect(r.status, `${c.host}:${c.port}: ${r.text()} ${JSON.stringify(r.headers)}\n${h.logs.slice(-5).join('\n')}`).toBe(200);
      expect((r.json() as { server: string }).server, `${c.host}:${c.port}`).toBe(c.cluster);
    }
  });
});
