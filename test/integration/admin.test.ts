/**
 * The admin server (Envoy's 15000) and the readiness server (Istio's 15021), on real sockets.
 */
import type { ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, request } from '../helpers/client.js';
import { serviceEntry, startProxy, type TestProxy } from '../helpers/proxy.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

const DR = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: svc
spec:
  host: svc
  subsets:
  - name: v1
    labels: {version: v1}
`;

const VS = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: svc
spec:
  hosts: [svc]
  http:
  - name: hello
    match:
    - uri: {exact: /hello}
    directResponse:
      status: 200
      body: {string: "hello from skiff"}
  - name: main
    route:
    - destination: {host: svc, subset: v1}
`;

/** A host line of Envoy's /clusters text output: `cluster::host::stat::value`. */
const CLUSTER_LINE = /^([^:]+(?:\|[^:]*)*)::([^:]+:\d+)::(rq_active|cx_active|rq_pending|health_flags)::(\d+|healthy|\/failed_outlier_check)$/;
/** A cluster-wide line: breaker thresholds, overflows, ejected hosts. */
const CLUSTER_STAT_LINE = /^([^:]+(?:\|[^:]*)*)::(default_priority::max_\w+|overflows|outlier::ejected_hosts)::(\d+)$/;

describe('admin and readiness servers', () => {
  let up: Upstream;
  let tp: TestProxy;
  const held: ServerResponse[] = [];
  const admin = (path: string, method = 'GET') => request(tp.proxy.ports.admin, path, { method, headers: { host: '127.0.0.1' } });

  beforeAll(async () => {
    up = await startUpstream('svc-v1', (req, res) => {
      if (req.url !== '/hold') return false;
      held.push(res);
      return true;
    });
    tp = await startProxy({
      'se.yaml': serviceEntry('svc', 80, [{ port: up.port, labels: { version: 'v1' } }]),
      'dr.yaml': DR,
      'vs.yaml': VS,
    });
  });
  afterAll(async () => {
    for (const res of held) if (!res.writableEnded) res.end();
    await tp.close();
    await up.close();
  });

  it('binds three distinct ports', () => {
    const { outbound, admin: adminPort, readiness } = tp.proxy.ports;
    for (const p of [outbound, adminPort, readiness]) expect(p).toBeGreaterThan(0);
    expect(new Set([outbound, adminPort, readiness]).size).toBe(3);
  });

  it('answers GET /healthz/ready on the readiness port with 200 once config is loaded', async () => {
    const res = await get(tp.proxy.ports.readiness, '127.0.0.1', '/healthz/ready');
    expect(res.status).toBe(200);
    expect(res.body.length).toBe(0);
    // Only readiness lives there.
    expect((await get(tp.proxy.ports.readiness, '127.0.0.1', '/ready')).status).toBe(404);
    expect((await get(tp.proxy.ports.readiness, '127.0.0.1', '/config_dump')).status).toBe(404);
  });

  it('answers /ready with 200 LIVE', async () => {
    const res = await admin('/ready');
    expect(res.status).toBe(200);
    expect(res.text()).toBe('LIVE\n');
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
  });

  it('dumps the config on /config_dump in Envoy\'s shape, with the model last', async () => {
    const res = await admin('/config_dump');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/json');
    const configs: Array<Record<string, any>> = res.json().configs; // eslint-disable-line @typescript-eslint/no-explicit-any
    const of = (type: string) => configs.find((c) => c['@type'] === type)!;
    const envoy = 'type.googleapis.com/envoy.admin.v3.';
    expect(configs.map((c) => c['@type'])).toEqual([
      `${envoy}BootstrapConfigDump`, `${envoy}ClustersConfigDump`, `${envoy}ListenersConfigDump`, `${envoy}RoutesConfigDump`, `${envoy}SecretsConfigDump`, 'type.skiff.dev/ModelDump',
    ]);
    const envoyClusters: Array<{ cluster: { name: string; type: string; load_assignment: { endpoints: Array<{ lb_endpoints: Array<{ endpoint: { address: { socket_address: { port_value: number } } } }> }> } } }> =
      of(`${envoy}ClustersConfigDump`).dynamic_active_clusters;
    const v1 = envoyClusters.find((c) => /^outbound\|80\|v1\|svc(\.|$)/.test(c.cluster.name))!;
    expect(v1.cluster.type).toBe('STATIC');
    expect(v1.cluster.load_assignment.endpoints[0]!.lb_endpoints[0]!.endpoint.address.socket_address.port_value).toBe(up.port);
    const routes: Array<{ route_config: { name: string; virtual_hosts: Array<{ domains: string[]; routes: Array<Record<string, any>> }> } }> = of(`${envoy}RoutesConfigDump`).dynamic_route_configs; // eslint-disable-line @typescript-eslint/no-explicit-any
    const envoyVhost = routes.find((r) => r.route_config.name === '80')!.route_config.virtual_hosts.find((v) => v.domains.includes('svc'))!;
    expect(envoyVhost.routes[0]).toMatchObject({ name: 'hello', direct_response: { status: 200, body: { inline_string: 'hello from skiff' } } });
    expect(envoyVhost.routes[1]!['route'].cluster).toBe(v1.cluster.name);
    expect(of(`${envoy}ListenersConfigDump`).dynamic_listeners).toEqual([expect.objectContaining({ name: 'outbound' })]);
    const dump = of('type.skiff.dev/ModelDump');
    expect(dump.version).toBe(tp.proxy.snapshot.version);

    const clusters: Array<{ name: string; discovery: string; endpoints: Array<{ address: string; port: number }> }> = dump.model.clusters;
    const names = clusters.map((c) => c.name);
    expect(names).toContain('PassthroughCluster');
    expect(names).toContain('BlackHoleCluster');
    const main = clusters.find((c) => /^outbound\|80\|\|svc(\.|$)/.test(c.name));
    const subset = clusters.find((c) => /^outbound\|80\|v1\|svc(\.|$)/.test(c.name));
    expect(main, names.join(', ')).toBeDefined();
    expect(subset, names.join(', ')).toBeDefined();
    expect(main!.discovery).toBe('STATIC');
    expect(subset!.endpoints).toEqual([expect.objectContaining({ address: '127.0.0.1', port: up.port })]);

    const routeConfigs: Array<{ name: string; virtualHosts: Array<{ domains: string[]; routes: Array<{ name: string; action: any }> }> }> = // eslint-disable-line @typescript-eslint/no-explicit-any
      dump.model.routeConfigs;
    const rc80 = routeConfigs.find((r) => r.name === '80');
    expect(rc80, JSON.stringify(routeConfigs.map((r) => r.name))).toBeDefined();
    const vhost = rc80!.virtualHosts.find((v) => v.domains.includes('svc'));
    expect(vhost).toBeDefined();
    expect(vhost!.routes.map((r) => r.name)).toEqual(['hello', 'main']);
    // A direct response body is shown as text, not as a serialised Buffer.
    expect(vhost!.routes[0]!.action).toMatchObject({ kind: 'direct', status: 200, body: 'hello from skiff' });
    expect(vhost!.routes[1]!.action.kind).toBe('forward');
    expect(vhost!.routes[1]!.action.clusters.map((c: { cluster: string }) => c.cluster)).toEqual([subset!.name]);
    expect(dump.model.mesh.outboundTrafficPolicy).toBe('ALLOW_ANY');
  });

  it('reports the last reload on /config_status as JSON', async () => {
    const res = await admin('/config_status');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/json');
    const status = res.json();
    expect(status.version).toBe(tp.proxy.snapshot.version);
    expect(status.lastReload.ok).toBe(true);
    expect(status.lastReload.problems).toEqual([]);
    expect(Number.isNaN(Date.parse(status.lastReload.at))).toBe(false);
  });

  it('lists hosts on /clusters as cluster::host::rq_active::N, counting requests in flight', async () => {
    const lines = async (): Promise<string[]> => {
      const res = await admin('/clusters');
      expect(res.status).toBe(200);
      return res.text().trimEnd().split('\n');
    };
    const hostKey = `127.0.0.1:${up.port}`;
    const rqActive = (all: string[], clusterPattern: RegExp): number[] =>
      all
        .map((l) => CLUSTER_LINE.exec(l))
        .filter((m): m is RegExpExecArray => m !== null && clusterPattern.test(m[1]!) && m[2] === hostKey && m[3] === 'rq_active')
        .map((m) => Number(m[4]));
    const subsetCluster = /^outbound\|80\|v1\|svc(\.|$)/;

    const idle = await lines();
    for (const l of idle) expect(CLUSTER_LINE.test(l) || CLUSTER_STAT_LINE.test(l), l).toBe(true);
    expect(idle).toContain(`${idle.find((l) => subsetCluster.test(l))!.split('::')[0]}::default_priority::max_connections::4294967295`);
    expect(rqActive(idle, subsetCluster)).toEqual([0]);
    expect(rqActive(idle, /^outbound\|80\|\|svc(\.|$)/)).toEqual([0]);

    const inFlight = get(tp.port, 'svc', '/hold');
    for (let i = 0; i < 200 && held.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(held).toHaveLength(1);
    expect(rqActive(await lines(), subsetCluster)).toEqual([1]);
    expect((await lines()).some((l) => subsetCluster.test(l.split('::')[0]!) && l.endsWith('::cx_active::1'))).toBe(true);

    held[0]!.writeHead(200, { 'content-type': 'text/plain' });
    held[0]!.end('released');
    const res = await inFlight;
    expect(res.status).toBe(200);
    expect(res.text()).toBe('released');
    expect(rqActive(await lines(), subsetCluster)).toEqual([0]);
  });

  it('answers 404 for an unknown admin path and lists the endpoints on /', async () => {
    const res = await admin('/no_such_endpoint');
    expect(res.status).toBe(404);
    expect(res.text()).toContain('/no_such_endpoint');
    const index = await admin('/');
    expect(index.status).toBe(200);
    expect(index.text().split('\n')).toEqual(expect.arrayContaining(['/ready', '/config_dump', '/config_status', '/clusters']));
  });

  it('ignores a query string when matching admin paths', async () => {
    const res = await admin('/ready?format=text');
    expect(res.status).toBe(200);
    expect(res.text()).toBe('LIVE\n');
  });

  it('serves the data path alongside admin', async () => {
    // Both on the shared keep-alive agent: a direct response must leave the connection usable.
    const direct = await get(tp.port, 'svc', '/hello');
    expect(direct.status).toBe(200);
    expect(direct.text()).toBe('hello from skiff');
    const forwarded = await get(tp.port, 'svc', '/x');
    expect(forwarded.status).toBe(200);
    expect(forwarded.json().server).toBe('svc-v1');
  });
});
