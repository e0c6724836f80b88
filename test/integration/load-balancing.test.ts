/**
 * Load-balancing policies end to end: a DestinationRule's loadBalancer → the cluster's balancer
 * → which real endpoint answers. Statistical checks allow five standard deviations of the
 * binomial count (about one false failure in 1.7 million runs per check).
 */
import { Agent, request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, request } from '../helpers/client.js';
import { destinationRule, httpService, virtualService, yamlDocs, type Resource } from '../helpers/istio-docs.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

const ENDPOINTS = ['e0', 'e1', 'e2', 'e3'];

/** The consistent-hash key sources, as Istio spells them. */
const HASH_KEYS: ReadonlyArray<[string, Resource]> = [
  ['header', { httpHeaderName: 'x-user' }],
  ['cookie', { httpCookie: { name: 'session', ttl: '60s' } }],
  ['query', { httpQueryParameterName: 'user' }],
  ['source', { useSourceIp: true }],
];
const HASH_ALGORITHMS: ReadonlyArray<[string, Resource]> = [
  ['ring', { ringHash: { minimumRingSize: 1024 } }],
  ['maglev', { maglev: { tableSize: 65537 } }],
];

function expectBinomial(count: number, n: number, p: number): void {
  const sigma = Math.sqrt(n * p * (1 - p));
  expect(Math.abs(count - n * p), `count ${count}, expected ${n * p} ± ${(5 * sigma).toFixed(1)}`).toBeLessThanOrEqual(5 * sigma);
}

/** A GET from a chosen local address (for source-IP hashing); a new connection each time. */
function getFrom(localAddress: string, port: number, host: string): Promise<{ status: number; server: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: '/', localAddress, agent: false, headers: { host } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, server: JSON.parse(Buffer.concat(chunks).toString()).server }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('load balancing', () => {
  const upstreams: Upstream[] = [];
  let slow: Upstream;
  let fast: Upstream;
  /** Responses the slow upstream holds until the test releases them. */
  const held: Array<() => void> = [];
  let onSlowArrival: (() => void) | null = null;
  let proxy: TestProxy;

  beforeAll(async () => {
    upstreams.push(...(await Promise.all(ENDPOINTS.map((name) => startUpstream(name)))));
    slow = await startUpstream('slow', (_req, res) => {
      held.push(() => res.end(JSON.stringify({ server: 'slow' })));
      onSlowArrival?.();
      return true;
    });
    fast = await startUpstream('fast');
    const ports = upstreams.map((u) => u.port);
    const resources: Resource[] = [];
    const balanced = (host: string, loadBalancer: Resource, endpoints = ports): void => {
      resources.push(httpService(host, 80, endpoints), destinationRule(host, { host, trafficPolicy: { loadBalancer } }));
    };
    balanced('rr', { simple: 'ROUND_ROBIN' });
    balanced('random', { simple: 'RANDOM' });
    balanced('least', { simple: 'LEAST_REQUEST' });
    balanced('least-slow', { simple: 'LEAST_REQUEST' }, [slow.port, fast.port]);
    for (const [key, keySpec] of HASH_KEYS) {
      for (const [algorithm, algorithmSpec] of HASH_ALGORITHMS) balanced(`${key}-${algorithm}`, { consistentHash: { ...keySpec, ...algorithmSpec } });
    }
    resources.push(
      httpService('override', 80, ports),
      destinationRule('override', {
        host: 'override',
        trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: 'x-user' } } },
        subsets: [
          { name: 'all', labels: {} },
          { name: 'rotating', labels: {}, trafficPolicy: { loadBalancer: { simple: 'ROUND_ROBIN' } } },
        ],
      }),
      virtualService('override', {
        hosts: ['override'],
        http: [
          { match: [{ uri: { prefix: '/rotating' } }], route: [{ destination: { host: 'override', subset: 'rotating' } }] },
          { route: [{ destination: { host: 'override', subset: 'all' } }] },
        ],
      }),
    );
    proxy = await startProxy({ 'mesh.yaml': yamlDocs(...resources) });
  });

  afterAll(async () => {
    for (const release of held.splice(0)) release();
    await proxy?.close();
    await Promise.all([...upstreams, slow, fast].map((u) => u?.close()));
  });

  async function serversOf(host: string, n: number, headers: Record<string, string> = {}, path = '/'): Promise<string[]> {
    const out: string[] = [];
    for (let i = 0; i < n; i++) {
      const res = await get(proxy.port, host, path, headers);
      expect(res.status).toBe(200);
      out.push(res.json().server);
    }
    return out;
  }

  function countsOf(servers: readonly string[]): Map<string, number> {
    const m = new Map<string, number>();
    for (const s of servers) m.set(s, (m.get(s) ?? 0) + 1);
    return m;
  }

  it('ROUND_ROBIN rotates through every endpoint in a fixed order', async () => {
    const seq = await serversOf('rr', 4 * ENDPOINTS.length);
    expect(new Set(seq.slice(0, ENDPOINTS.length)).size).toBe(ENDPOINTS.length);
    seq.forEach((s, i) => expect(s, `request ${i}`).toBe(seq[i % ENDPOINTS.length]));
  });

  it.each(['random', 'least'])('%s uses every endpoint, about evenly', async (host) => {
    const n = 600;
    const counts = new Map<string, number>();
    for (let i = 0; i < n / 20; i++) {
      // Sequential batches: no request is in flight when the next is balanced.
      for (const s of await serversOf(host, 20)) counts.set(s, (counts.get(s) ?? 0) + 1);
    }
    expect([...counts.keys()].sort()).toEqual(ENDPOINTS);
    for (const name of ENDPOINTS) expectBinomial(counts.get(name)!, n, 1 / ENDPOINTS.length);
  });

  it('LEAST_REQUEST steers new requests away from an endpoint that is still busy', async () => {
    // Requests go one at a time; the slow endpoint keeps every request it gets. Once it holds
    // one, power-of-two-choices picks it only when both draws land on it (1 in 4), where a
    // load-blind policy would pick it every other time.
    const agent = new Agent({ keepAlive: true, maxSockets: 1000 });
    const n = 400;
    const pending: Array<Promise<unknown>> = [];
    let toSlow = 0;
    try {
      for (let i = 0; i < n; i++) {
        const arrived = new Promise<'slow'>((resolve) => (onSlowArrival = () => resolve('slow')));
        const response = request(proxy.port, '/', { headers: { host: 'least-slow' }, agent });
        pending.push(response);
        const where = await Promise.race([response.then(() => 'fast' as const), arrived]);
        if (where === 'slow') toSlow++;
      }
      expect(fast.requests.length).toBe(n - toSlow);
      expect(held.length).toBe(toSlow);
      expect(toSlow).toBeGreaterThan(0);
      expect(toSlow).toBeLessThan(n * 0.375);
    } finally {
      onSlowArrival = null;
      for (const release of held.splice(0)) release();
      await Promise.all(pending);
      agent.destroy();
    }
  });

  describe.each(HASH_ALGORITHMS.map(([a]) => a))('consistent hash (%s)', (algorithm) => {
    it('httpHeaderName: the same key always reaches the same endpoint; keys spread', async () => {
      const host = `header-${algorithm}`;
      const alice = await serversOf(host, 20, { 'x-user': 'alice' });
      expect(new Set(alice).size).toBe(1);
      const spread = new Set<string>();
      for (let k = 0; k < 100; k++) {
        const [first, again] = await serversOf(host, 2, { 'x-user': `user-${k}` });
        expect(again).toBe(first);
        spread.add(first!);
      }
      expect([...spread].sort()).toEqual(ENDPOINTS);
    });

    it('httpHeaderName: a repeated header hashes the same in any order', async () => {
      const host = `header-${algorithm}`;
      for (let k = 0; k < 10; k++) {
        const [a, b] = [`a${k}`, `b${k}`];
        const forward = await request(proxy.port, '/', { headers: { host, 'x-user': [a, b] } });
        const backward = await request(proxy.port, '/', { headers: { host, 'x-user': [b, a] } });
        expect(backward.json().server).toBe(forward.json().server);
      }
    });

    it('httpQueryParameterName: the same value sticks; values spread', async () => {
      const host = `query-${algorithm}`;
      const bob = await serversOf(host, 20, {}, '/items?user=bob&page=2');
      expect(new Set(bob).size).toBe(1);
      const spread = new Set<string>();
      for (let k = 0; k < 100; k++) {
        const [first, again] = await serversOf(host, 2, {}, `/x?user=u${k}`);
        expect(again).toBe(first);
        spread.add(first!);
      }
      expect([...spread].sort()).toEqual(ENDPOINTS);
    });

    it('httpCookie with a ttl: a missing cookie is generated, and sending it back sticks', async () => {
      const host = `cookie-${algorithm}`;
      const first = await get(proxy.port, host, '/');
      expect(first.status).toBe(200);
      const setCookie = first.headers['set-cookie'];
      expect(setCookie).toHaveLength(1);
      const m = /^session="([0-9a-f]+)"; Max-Age=60; HttpOnly$/.exec(setCookie![0]!);
      expect(m, setCookie![0]).not.toBeNull();
      const value = m![1]!;
      // The generated value is what the first request was hashed on.
      const again = await serversOf(host, 20, { cookie: `other=1; session="${value}"` });
      expect(new Set([first.json().server, ...again]).size).toBe(1);
      const unquoted = await serversOf(host, 5, { cookie: `session=${value}` });
      expect(new Set([first.json().server, ...unquoted]).size).toBe(1);
      // Requests on one connection are given the same cookie.
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      const onOne = await Promise.all([0, 1, 2].map(() => request(proxy.port, '/', { headers: { host }, agent })));
      agent.destroy();
      expect(new Set(onOne.map((r) => String(r.headers['set-cookie'])))).toHaveProperty('size', 1);
      expect(new Set(onOne.map((r) => r.json().server))).toHaveProperty('size', 1);
      // A request that carries the cookie gets no new one.
      const withCookie = await get(proxy.port, host, '/', { cookie: `session=${value}` });
      expect(withCookie.headers['set-cookie']).toBeUndefined();
      const spread = new Set<string>();
      for (let k = 0; k < 100; k++) {
        const [a, b] = await serversOf(host, 2, { cookie: `session=s${k}` });
        expect(b).toBe(a);
        spread.add(a!);
      }
      expect([...spread].sort()).toEqual(ENDPOINTS);
    });

    it('useSourceIp: each client address sticks to one endpoint; addresses spread', async () => {
      const host = `source-${algorithm}`;
      const spread = new Set<string>();
      for (let i = 2; i < 102; i++) {
        const from = `127.0.0.${i}`;
        const [a, b] = await Promise.all([getFrom(from, proxy.port, host), getFrom(from, proxy.port, host)]);
        expect(a.status).toBe(200);
        expect(b.server, from).toBe(a.server);
        spread.add(a.server);
      }
      expect([...spread].sort()).toEqual(ENDPOINTS);
      const local = await serversOf(host, 10);
      expect(new Set(local).size).toBe(1);
    });

    it('a request without the hash key is still served (balanced without affinity)', async () => {
      const servers = await serversOf(`header-${algorithm}`, 200);
      // Random choice over four endpoints: all are used (each missed with p = 0.75^200).
      expect([...new Set(servers)].sort()).toEqual(ENDPOINTS);
    });
  });

  it("a subset's trafficPolicy replaces the top-level load balancer", async () => {
    const hashed = await serversOf('override', 20, { 'x-user': 'carol' });
    expect(new Set(hashed).size).toBe(1);
    const rotating = await serversOf('override', 2 * ENDPOINTS.length, { 'x-user': 'carol' }, '/rotating');
    expect(new Set(rotating.slice(0, ENDPOINTS.length)).size).toBe(ENDPOINTS.length);
    rotating.forEach((s, i) => expect(s).toBe(rotating[i % ENDPOINTS.length]));
    expect(countsOf(rotating).size).toBe(ENDPOINTS.length);
  });
});
