/**
 * skiff configured over ADS: a real gRPC stream to the test ADS server (test/support), real
 * upstream servers, real HTTP requests through the proxy. Covers ACK/NACK, readiness, warming,
 * weight pushes under load, disconnect/reconnect and removal.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/core/logger.js';
import { TypeUrl } from '../../src/config/xds/proto.js';
import { XdsConfigSource } from '../../src/config/xds/xds-source.js';
import { Proxy } from '../../src/lifecycle/proxy.js';
import { createRootCa, issueWorkloadCert } from '../../src/security/ca.js';
import { PushedCredentials } from '../../src/security/cert-store.js';
import { openXdsSource } from '../../src/lifecycle/xds.js';
import type { CaCall } from '../support/istio-ca-service.js';
import { DEFAULT_MESH } from '../../src/model/index.js';
import { AdsServer } from '../support/ads-server.js';
import { get } from '../helpers/client.js';
import { EMPTY_METADATA } from '../helpers/proxy.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { assignment, edsCluster, httpListener, meshEdsCluster, PASSTHROUGH_CLUSTER, routeConfig, virtualOutbound, type TestRoute } from '../helpers/xds-resources.js';

const A = 'outbound|80||a.test';
const B = 'outbound|80||b.test';
const NODE = { id: 'sidecar~127.0.0.1~test-pod.default~default.svc.cluster.local', cluster: 'test.default' };

interface Harness {
  server: AdsServer;
  proxy: Proxy;
  source: XdsConfigSource;
  logs: string[];
  a: Upstream;
  b: Upstream;
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** Serves the two-service mesh: a.test and b.test on port 80, routes as given. */
function serveMesh(server: AdsServer, h: { a: Upstream; b: Upstream }, routes: Readonly<Record<string, readonly TestRoute[]>>): void {
  server.setResources(TypeUrl.cluster, [edsCluster('a.test', 80), edsCluster('b.test', 80), PASSTHROUGH_CLUSTER]);
  server.setResources(TypeUrl.endpoints, [assignment(A, [h.a.port]), assignment(B, [h.b.port])]);
  server.setResources(TypeUrl.listener, [virtualOutbound(), httpListener(80)]);
  server.setResources(TypeUrl.routes, [routeConfig('80', routes)]);
}

async function openSource(server: AdsServer, logs: string[], warmingTimeoutMs?: number): Promise<XdsConfigSource> {
  const log = createLogger({ level: 'debug', sink: (l) => logs.push(l) });
  return new XdsConfigSource({ target: server.target, node: NODE, mesh: DEFAULT_MESH, log, backoff: { baseMs: 50, maxMs: 200 }, ...(warmingTimeoutMs !== undefined ? { warmingTimeoutMs } : {}) });
}

async function start(routes: Readonly<Record<string, readonly TestRoute[]>> = { 'a.test': [{ to: A }], 'b.test': [{ to: B }] }): Promise<Harness> {
  const server = await AdsServer.start();
  cleanups.push(() => server.close());
  const a = await startUpstream('a');
  const b = await startUpstream('b');
  cleanups.push(() => a.close(), () => b.close());
  serveMesh(server, { a, b }, routes);
  const logs: string[] = [];
  const source = await openSource(server, logs);
  const proxy = await Proxy.start({
    configPath: `xds:${server.target}`,
    source,
    logger: createLogger({ level: 'debug', sink: (l) => logs.push(l) }),
    ports: { outbound: 0, admin: 0, readiness: 0 },
    metadata: EMPTY_METADATA,
  });
  cleanups.push(() => proxy.close(true));
  return { server, proxy, source, logs, a, b };
}

/** Polls until `check` passes (bounded), for changes that arrive over the stream. */
async function eventually(check: () => Promise<void> | void, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

const serverOf = async (port: number, host: string): Promise<string> => {
  const r = await get(port, host);
  return r.status === 200 ? (r.json() as { server: string }).server : `status ${r.status}`;
};

describe('xDS: configuration over ADS', () => {
  it('serves the routes, clusters and endpoints it was sent, and ACKs every response', async () => {
    const h = await start();
    const port = h.proxy.ports.outbound;
    expect(await serverOf(port, 'a.test')).toBe('a');
    expect(await serverOf(port, 'b.test')).toBe('b');
    for (const type of [TypeUrl.cluster, TypeUrl.endpoints, TypeUrl.listener, TypeUrl.routes]) {
      const acks = h.server.acks(type);
      expect(acks.length, type).toBeGreaterThan(0);
      const last = h.server.responses.filter((r) => r.typeUrl === type).at(-1)!;
      expect(acks.at(-1)!.versionInfo, type).toBe(last.version);
      expect(acks.at(-1)!.nonce, type).toBe(last.nonce);
    }
    expect(h.server.nacks(TypeUrl.cluster)).toEqual([]);
    // The node went on the stream's first request, with the id as given.
    expect(h.server.requests.find((r) => r.node !== undefined)?.node).toMatchObject({ id: NODE.id });
    // Endpoints and routes were asked for by name.
    expect(h.server.requests.filter((r) => r.typeUrl === TypeUrl.endpoints).at(-1)!.resourceNames).toEqual([A, B]);
    expect(h.server.requests.filter((r) => r.typeUrl === TypeUrl.routes).at(-1)!.resourceNames).toEqual(['80']);
  });

  it('NACKs a response it cannot honour, naming the field, and keeps serving the previous version', async () => {
    const h = await start();
    const port = h.proxy.ports.outbound;
    const accepted = h.server.version(TypeUrl.cluster);
    const broken = { ...edsCluster('a.test', 80), lb_policy: 'LOAD_BALANCING_POLICY_CONFIG', upstream_config: { name: 'custom' } };
    h.server.setResources(TypeUrl.cluster, [broken, edsCluster('b.test', 80), PASSTHROUGH_CLUSTER]);
    const nack = await h.server.waitFor((r) => r.typeUrl === TypeUrl.cluster && r.errorDetail !== undefined);
    expect(nack.versionInfo).toBe(accepted);
    expect(nack.nonce).toBe(h.server.responses.filter((r) => r.typeUrl === TypeUrl.cluster).at(-1)!.nonce);
    expect(nack.errorDetail!.message).toContain(`cluster ${A}`);
    expect(nack.errorDetail!.message).toMatch(/upstream_config|lb_policy/);
    expect(await serverOf(port, 'a.test')).toBe('a');
    expect(h.logs.some((l) => l.includes('NACK'))).toBe(true);
  });

  it('is not ready before the first clusters and listeners, then serves', async () => {
    const server = await AdsServer.start({ answerUnset: false });
    cleanups.push(() => server.close());
    const a = await startUpstream('a');
    const b = await startUpstream('b');
    cleanups.push(() => a.close(), () => b.close());
    const logs: string[] = [];
    const source = await openSource(server, logs);
    let started: Proxy | undefined;
    const starting = Proxy.start({ configPath: 'xds', source, logger: createLogger({ level: 'off' }), ports: { outbound: 0, admin: 0, readiness: 0 }, metadata: EMPTY_METADATA }).then((p) => (started = p));
    // Clusters alone (and their endpoints) are not enough: listeners are needed too.
    server.setResources(TypeUrl.cluster, [edsCluster('a.test', 80), edsCluster('b.test', 80), PASSTHROUGH_CLUSTER]);
    server.setResources(TypeUrl.endpoints, [assignment(A, [a.port]), assignment(B, [b.port])]);
    await server.waitFor((r) => r.typeUrl === TypeUrl.endpoints && r.versionInfo !== '');
    await new Promise((r) => setTimeout(r, 200));
    expect(started).toBeUndefined();
    server.setResources(TypeUrl.listener, [virtualOutbound(), httpListener(80)]);
    server.setResources(TypeUrl.routes, [routeConfig('80', { 'a.test': [{ to: A }] })]);
    const proxy = await starting;
    cleanups.push(() => proxy.close(true));
    expect(await serverOf(proxy.ports.outbound, 'a.test')).toBe('a');
  });

  it('warms a new cluster until its endpoints arrive, then swaps clusters, endpoints and routes at once', async () => {
    const h = await start();
    const port = h.proxy.ports.outbound;
    const c = await startUpstream('c');
    cleanups.push(() => c.close());
    const C = 'outbound|80||c.test';
    // The new cluster and a route to it, but no endpoints yet: nothing changes.
    h.server.setResources(TypeUrl.cluster, [edsCluster('a.test', 80), edsCluster('b.test', 80), edsCluster('c.test', 80), PASSTHROUGH_CLUSTER]);
    h.server.setResources(TypeUrl.routes, [routeConfig('80', { 'a.test': [{ to: A }], 'b.test': [{ to: B }], 'c.test': [{ to: C }] })]);
    await h.server.waitFor((r) => r.typeUrl === TypeUrl.endpoints && r.resourceNames.includes(C));
    await h.server.waitFor((r) => r.typeUrl === TypeUrl.routes && r.versionInfo === h.server.version(TypeUrl.routes));
    const before = h.proxy.snapshot.version;
    // Nothing of the update is applied while c.test's cluster warms: neither the cluster nor the route.
    expect(h.proxy.snapshot.clusters.has(C)).toBe(false);
    expect(h.proxy.snapshot.model.routeConfigs[0]!.virtualHosts.map((v) => v.domains[0])).not.toContain('c.test');
    expect(h.proxy.snapshot.version).toBe(before);
    h.server.setResources(TypeUrl.endpoints, [assignment(A, [h.a.port]), assignment(B, [h.b.port]), assignment(C, [c.port])]);
    await eventually(async () => expect(await serverOf(port, 'c.test')).toBe('c'));
    expect(h.proxy.snapshot.version).toBe(before + 1);
  });

  it('counts endpoints that never come as none after the timeout, once: later updates do not wait again', async () => {
    const server = await AdsServer.start();
    cleanups.push(() => server.close());
    const a = await startUpstream('a');
    cleanups.push(() => a.close());
    const ghost = 'outbound|80||ghost.test';
    server.setResources(TypeUrl.cluster, [edsCluster('a.test', 80), edsCluster('ghost.test', 80), PASSTHROUGH_CLUSTER]);
    server.setResources(TypeUrl.endpoints, [assignment(A, [a.port])]); // none for ghost.test
    server.setResources(TypeUrl.listener, [virtualOutbound(), httpListener(80)]);
    server.setResources(TypeUrl.routes, [routeConfig('80', { 'a.test': [{ to: A }], 'ghost.test': [{ to: ghost }] })]);
    const logs: string[] = [];
    const source = await openSource(server, logs, 1500);
    const proxy = await Proxy.start({ configPath: 'xds', source, logger: createLogger({ level: 'off' }), ports: { outbound: 0, admin: 0, readiness: 0 }, metadata: EMPTY_METADATA });
    cleanups.push(() => proxy.close(true));
    expect(logs.filter((l) => l.includes('no endpoints received for outbound|80||ghost.test'))).toHaveLength(1);
    expect(await serverOf(proxy.ports.outbound, 'a.test')).toBe('a');
    expect((await get(proxy.ports.outbound, 'ghost.test')).status).toBe(503); // no healthy upstream
    // A route change now applies without another 1.5 s wait for ghost.test's endpoints.
    server.setResources(TypeUrl.routes, [routeConfig('80', { 'ghost.test': [{ to: A }] })]);
    await eventually(async () => expect(await serverOf(proxy.ports.outbound, 'ghost.test')).toBe('a'), 1000);
    expect(logs.filter((l) => l.includes('no endpoints received'))).toHaveLength(1);
  });

  it('announces a snapshot built between load() and watch() (a push during startup is not lost)', async () => {
    const server = await AdsServer.start();
    cleanups.push(() => server.close());
    const a = await startUpstream('a');
    const b = await startUpstream('b');
    cleanups.push(() => a.close(), () => b.close());
    serveMesh(server, { a, b }, { 'a.test': [{ to: A }] });
    const source = await openSource(server, []);
    cleanups.push(() => source.close());
    const first = await source.load();
    server.setResources(TypeUrl.routes, [routeConfig('80', { 'a.test': [{ to: B }] })]);
    await server.waitFor((r) => r.typeUrl === TypeUrl.routes && r.versionInfo === server.version(TypeUrl.routes));
    const told = new Promise<string>((resolve) => void source.watch(() => resolve('told')));
    expect(await Promise.race([told, new Promise<string>((r) => setTimeout(() => r('not told'), 2000))])).toBe('told');
    const next = await source.load();
    expect(next.model).not.toBe(first.model);
    expect(next.model!.routeConfigs[0]!.virtualHosts[0]!.routes[0]!.action).toMatchObject({ clusters: [{ cluster: B }] });
  });

  it('shifts weights under load without a failed request', async () => {
    const h = await start({ 'split.test': [{ to: [{ name: A, weight: 100 }, { name: B, weight: 0 }] }] });
    const port = h.proxy.ports.outbound;
    const seen = { a: 0, b: 0, failed: 0 };
    let stop = false;
    const loop = async (): Promise<void> => {
      while (!stop) {
        const s = await serverOf(port, 'split.test').catch((e: Error) => e.message);
        if (s === 'a') seen.a++;
        else if (s === 'b') seen.b++;
        else seen.failed++;
      }
    };
    const loops = Array.from({ length: 8 }, loop);
    const steps = [[75, 25], [50, 50], [25, 75], [0, 100]] as const;
    for (const [wa, wb] of steps) {
      await new Promise((r) => setTimeout(r, 150));
      h.server.setResources(TypeUrl.routes, [routeConfig('80', { 'split.test': [{ to: [{ name: A, weight: wa }, { name: B, weight: wb }] }] })]);
      await h.server.waitFor((r) => r.typeUrl === TypeUrl.routes && r.versionInfo === h.server.version(TypeUrl.routes));
    }
    await new Promise((r) => setTimeout(r, 200));
    const bBefore = seen.b;
    await new Promise((r) => setTimeout(r, 200));
    stop = true;
    await Promise.all(loops);
    expect(seen.failed).toBe(0);
    expect(seen.a).toBeGreaterThan(0);
    expect(seen.b).toBeGreaterThan(bBefore); // at 0/100 only b answers
    const aAtEnd = seen.a;
    expect(await serverOf(port, 'split.test')).toBe('b');
    expect(seen.a).toBe(aAtEnd);
  });

  it('keeps the last config while the stream is down, reconnects, and takes new pushes', async () => {
    const h = await start();
    const port = h.proxy.ports.outbound;
    const streamsBefore = h.server.requests.filter((r) => r.node !== undefined).length;
    h.server.disconnectAll();
    // Served from the last accepted config while disconnected.
    expect(await serverOf(port, 'a.test')).toBe('a');
    await h.server.waitFor(() => h.server.requests.filter((r) => r.node !== undefined).length > streamsBefore);
    // The resubscription carries the versions already accepted.
    const resubscribed = h.server.requests.filter((r) => r.typeUrl === TypeUrl.cluster).at(-1)!;
    expect(resubscribed.versionInfo).not.toBe('');
    h.server.setResources(TypeUrl.routes, [routeConfig('80', { 'a.test': [{ to: B }], 'b.test': [{ to: B }] })]);
    await eventually(async () => expect(await serverOf(port, 'a.test')).toBe('b'));
    expect(h.logs.some((l) => l.includes('reconnecting'))).toBe(true);
  });

  it('takes the workload certificate and root as SDS secrets, rotates them, and NACKs an unusable pair', async () => {
    const server = await AdsServer.start();
    cleanups.push(() => server.close());
    const ca = createRootCa();
    const secrets = (sa: string, root = ca): object[] => {
      const cert = issueWorkloadCert({ ca: root, namespace: 'default', serviceAccount: sa });
      return [
        { '@type': TypeUrl.secret, name: 'default', tls_certificate: { certificate_chain: { inline_string: cert.certChainPem }, private_key: { inline_string: cert.keyPem } } },
        { '@type': TypeUrl.secret, name: 'ROOTCA', validation_context: { trusted_ca: { inline_bytes: Buffer.from(ca.certPem).toString('base64') } } },
      ];
    };
    const credentials = new PushedCredentials();
    const logs: string[] = [];
    const source = new XdsConfigSource({
      target: server.target,
      node: NODE,
      mesh: DEFAULT_MESH,
      log: createLogger({ level: 'debug', sink: (l) => logs.push(l) }),
      onSecrets: (pem) => credentials.update(pem),
    });
    cleanups.push(() => source.close());
    server.setResources(TypeUrl.secret, secrets('reviews'));
    const ack = await server.waitFor((r) => r.typeUrl === TypeUrl.secret && r.versionInfo === server.version(TypeUrl.secret));
    expect(ack.resourceNames).toEqual(['ROOTCA', 'default']);
    expect(credentials.current()?.identity).toBe('spiffe://cluster.local/ns/default/sa/reviews');
    // Rotation: a new certificate replaces the old one for new handshakes.
    server.setResources(TypeUrl.secret, secrets('ratings'));
    await server.waitFor((r) => r.typeUrl === TypeUrl.secret && r.versionInfo === server.version(TypeUrl.secret));
    expect(credentials.current()?.identity).toBe('spiffe://cluster.local/ns/default/sa/ratings');
    // A certificate from another CA does not chain to ROOTCA: NACKed, the previous pair stays.
    const accepted = server.version(TypeUrl.secret);
    server.setResources(TypeUrl.secret, secrets('intruder', createRootCa()).slice(0, 1).concat(secrets('x').slice(1)));
    const nack = await server.waitFor((r) => r.typeUrl === TypeUrl.secret && r.errorDetail !== undefined);
    expect(nack.versionInfo).toBe(accepted);
    expect(nack.errorDetail!.message).toContain('not issued by secret ROOTCA');
    expect(credentials.current()?.identity).toBe('spiffe://cluster.local/ns/default/sa/ratings');
  });

  it('connects to the control plane over mTLS with the workload certificate, and is refused without one', async () => {
    const ca = createRootCa();
    const istiod = issueWorkloadCert({ ca, namespace: 'istio-system', serviceAccount: 'istiod', dnsNames: ['istiod.istio-system.svc'] });
    const workload = issueWorkloadCert({ ca, namespace: 'default', serviceAccount: 'reviews' });
    const server = await AdsServer.start({ tls: { key: istiod.keyPem, cert: istiod.certChainPem, ca: ca.certPem } });
    cleanups.push(() => server.close());
    server.setResources(TypeUrl.cluster, [PASSTHROUGH_CLUSTER]);
    const open = (credentials: (() => grpc.ChannelCredentials) | undefined): XdsConfigSource => {
      const source = new XdsConfigSource({ target: server.target, serverName: 'istiod.istio-system.svc', node: NODE, mesh: DEFAULT_MESH, log: createLogger({ level: 'off' }), backoff: { baseMs: 50, maxMs: 100 }, ...(credentials !== undefined ? { credentials } : {}) });
      cleanups.push(() => source.close());
      return source;
    };
    open(() => grpc.credentials.createSsl(Buffer.from(ca.certPem), Buffer.from(workload.keyPem), Buffer.from(workload.certChainPem)));
    await server.waitFor((r) => r.typeUrl === TypeUrl.cluster && r.versionInfo === server.version(TypeUrl.cluster));
    const before = server.requests.length;
    open(undefined); // plaintext to an mTLS server: never gets a stream
    await new Promise((r) => setTimeout(r, 300));
    expect(server.requests.slice(before).filter((r) => r.node !== undefined)).toEqual([]);
  });

  it("authenticates to istiod with the service-account token over TLS and gets its certificate from Istio's CA", async () => {
    const ca = createRootCa();
    const istiod = issueWorkloadCert({ ca, namespace: 'istio-system', serviceAccount: 'istiod', dnsNames: ['istiod.istio-system.svc'] });
    const calls: CaCall[] = [];
    // A CA that issues 4 s certificates, whatever is asked: skiff renews at half of that.
    const server = await AdsServer.start({ tls: { key: istiod.keyPem, cert: istiod.certChainPem, ca: ca.certPem, clientCertificates: false }, bearerToken: 'sa-token', ca: { root: ca, calls, ttlSeconds: 4 } });
    cleanups.push(() => server.close());
    const a = await startUpstream('a');
    const b = await startUpstream('b');
    cleanups.push(() => a.close(), () => b.close());
    serveMesh(server, { a, b }, { 'a.test': [{ to: A }] });
    // A cluster with Istio mTLS: the proxy is not ready before it has a certificate.
    const M = 'outbound|80||m.test';
    server.setResources(TypeUrl.cluster, [edsCluster('a.test', 80), edsCluster('b.test', 80), meshEdsCluster('m.test', 80, { serviceAccount: 'm' }), PASSTHROUGH_CLUSTER]);
    server.setResources(TypeUrl.endpoints, [assignment(A, [a.port]), assignment(B, [b.port]), assignment(M, [a.port])]);
    const dir = await mkdtemp(join(tmpdir(), 'skiff-token-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'istio-token'), 'sa-token\n');
    await writeFile(join(dir, 'root-cert.pem'), ca.certPem);
    const logs: string[] = [];
    const log = createLogger({ level: 'debug', sink: (l) => logs.push(l) });
    const parts = openXdsSource({
      address: server.target,
      auth: 'MUTUAL_TLS',
      tokenPath: join(dir, 'istio-token'),
      rootCertPath: join(dir, 'root-cert.pem'),
      serverName: 'istiod.istio-system.svc',
      type: 'sidecar',
      mesh: DEFAULT_MESH,
      env: { POD_NAME: 'reviews-1', POD_NAMESPACE: 'shop', SERVICE_ACCOUNT: 'reviews', INSTANCE_IP: '10.0.0.7', ISTIO_META_CLUSTER_ID: 'east' },
      log,
    });
    const proxy = await Proxy.start({ configPath: 'xds', source: parts.source, credentials: parts.credentials!, logger: log, ports: { outbound: 0, admin: 0, readiness: 0 }, metadata: EMPTY_METADATA });
    cleanups.push(() => proxy.close(true));
    // Ready only with the certificate the CA issued for the pod's identity.
    expect(parts.credentials!.current()?.identity).toBe('spiffe://cluster.local/ns/shop/sa/reviews');
    expect(calls).toHaveLength(1);
    expect(calls[0]!.clusterId).toBe('east');
    expect(calls[0]!.ttlSeconds).toBe(86_400);
    expect(await serverOf(proxy.ports.outbound, 'a.test')).toBe('a');
    expect(server.requests.find((r) => r.node !== undefined)?.node).toMatchObject({ id: 'sidecar~10.0.0.7~reviews-1.shop~shop.svc.cluster.local' });
    expect(logs.some((l) => l.includes("workload certificate spiffe://cluster.local/ns/shop/sa/reviews from Istio's CA"))).toBe(true);
    // Renewed from the certificate's own lifetime (not the 24 h asked for): a new key and certificate.
    const first = parts.credentials!.current()!;
    await eventually(() => expect(calls).toHaveLength(2), 5000);
    await eventually(() => expect(parts.credentials!.current()).not.toBe(first));
    expect(calls[1]!.csr).not.toBe(calls[0]!.csr);

    // A wrong token gets neither config nor a certificate.
    await writeFile(join(dir, 'istio-token'), 'stolen\n');
    const before = server.requests.length;
    const denied = openXdsSource({ address: server.target, auth: 'MUTUAL_TLS', tokenPath: join(dir, 'istio-token'), rootCertPath: join(dir, 'root-cert.pem'), serverName: 'istiod.istio-system.svc', type: 'sidecar', mesh: DEFAULT_MESH, env: {}, log: createLogger({ level: 'off' }) });
    cleanups.push(() => denied.source.close?.());
    await new Promise((r) => setTimeout(r, 300));
    expect(server.requests.length).toBe(before);
    expect(calls.length).toBeLessThanOrEqual(3);
    expect(denied.credentials!.current()).toBeNull();
  });

  it('asks no CA over a plaintext control plane: with a token but auth NONE the certificate comes over SDS', async () => {
    const server = await AdsServer.start();
    cleanups.push(() => server.close());
    const dir = await mkdtemp(join(tmpdir(), 'skiff-token-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'istio-token'), 'sa-token\n');
    await writeFile(join(dir, 'root-cert.pem'), createRootCa().certPem);
    const logs: string[] = [];
    const parts = openXdsSource({ address: server.target, auth: 'NONE', tokenPath: join(dir, 'istio-token'), rootCertPath: join(dir, 'root-cert.pem'), type: 'sidecar', mesh: DEFAULT_MESH, env: {}, log: createLogger({ level: 'info', sink: (l) => logs.push(l) }) });
    cleanups.push(() => parts.source.close?.());
    expect(logs.some((l) => l.includes('workload certificate from SDS over xDS'))).toBe(true);
    await server.waitFor((r) => r.typeUrl === TypeUrl.secret);
  });

  it('removes what the server no longer sends', async () => {
    const h = await start();
    const port = h.proxy.ports.outbound;
    h.server.setResources(TypeUrl.routes, [routeConfig('80', { 'a.test': [{ to: A }] })]);
    h.server.setResources(TypeUrl.cluster, [edsCluster('a.test', 80), PASSTHROUGH_CLUSTER]);
    await eventually(() => expect(h.proxy.snapshot.clusters.has(B)).toBe(false));
    // b.test now falls to allow_any (PassthroughCluster to its name, which does not resolve).
    expect(await serverOf(port, 'b.test')).not.toBe('b');
    expect(await serverOf(port, 'a.test')).toBe('a');
    // Endpoints of the removed cluster are no longer subscribed.
    await h.server.waitFor((r) => r.typeUrl === TypeUrl.endpoints && !r.resourceNames.includes(B) && r.resourceNames.includes(A));
    // Removing the listener removes the port's routes.
    h.server.setResources(TypeUrl.listener, [virtualOutbound()]);
    await eventually(() => expect(h.proxy.snapshot.model.routeConfigs).toEqual([]));
  });
});
