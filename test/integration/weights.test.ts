/**
 * Weighted routes and subsets end to end. Each weighted pick is an independent draw, so the
 * count a destination gets over n requests is binomial(n, w / Σw); the assertions allow five
 * standard deviations, which a correct implementation exceeds about once in 1.7 million runs,
 * while a wrong split (say 70/30 for 80/20) lands far outside.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get } from '../helpers/client.js';
import { destinationRule, staticService, virtualService, yamlDocs } from '../helpers/istio-docs.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

/** Sends n GETs (20 at a time) and counts the answering server of each. */
async function distribution(port: number, host: string, n: number, headers: Record<string, string> = {}, path = '/'): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (let sent = 0; sent < n; ) {
    const batch = Math.min(20, n - sent);
    const responses = await Promise.all(Array.from({ length: batch }, () => get(port, host, path, headers)));
    for (const r of responses) {
      expect(r.status).toBe(200);
      const server = r.json().server as string;
      counts.set(server, (counts.get(server) ?? 0) + 1);
    }
    sent += batch;
  }
  return counts;
}

/** Asserts `count` is within five standard deviations of binomial(n, p). */
function expectBinomial(count: number, n: number, p: number): void {
  const mean = n * p;
  const sigma = Math.sqrt(n * p * (1 - p));
  expect(Math.abs(count - mean), `count ${count}, expected ${mean} ± ${(5 * sigma).toFixed(1)}`).toBeLessThanOrEqual(5 * sigma);
}

describe('weighted routes and subsets', () => {
  let v1a: Upstream;
  let v1b: Upstream;
  let v2: Upstream;
  let v3: Upstream;
  let proxy: TestProxy;

  beforeAll(async () => {
    [v1a, v1b, v2, v3] = await Promise.all([startUpstream('v1a'), startUpstream('v1b'), startUpstream('v2'), startUpstream('v3')]);
    const split = (value: string, route: Array<[string, number]>): Record<string, unknown> => ({
      match: [{ headers: { 'x-split': { exact: value } } }],
      route: route.map(([subset, weight]) => ({ destination: { host: 'reviews', subset }, weight })),
    });
    proxy = await startProxy({
      'mesh.yaml': yamlDocs(
        staticService(
          'reviews',
          [{ number: 9080, name: 'http' }],
          [
            { ports: { http: v1a.port }, labels: { version: 'v1', zone: 'a' } },
            { ports: { http: v1b.port }, labels: { version: 'v1', zone: 'b' } },
            { ports: { http: v2.port }, labels: { version: 'v2', zone: 'a' } },
            { ports: { http: v3.port }, labels: { version: 'v3', zone: 'b' } },
          ],
        ),
        destinationRule('reviews', {
          host: 'reviews',
          subsets: [
            { name: 'v1', labels: { version: 'v1' } },
            { name: 'v1b', labels: { version: 'v1', zone: 'b' } },
            { name: 'zone-a', labels: { zone: 'a' } },
            { name: 'v2', labels: { version: 'v2' } },
            { name: 'v3', labels: { version: 'v3' } },
          ],
        }),
        virtualService('reviews', {
          hosts: ['reviews'],
          http: [
            split('80-20', [
              ['v1b', 80],
              ['v2', 20],
            ]),
            split('three', [
              ['v1b', 50],
              ['v2', 30],
              ['v3', 20],
            ]),
            split('relative', [
              ['v2', 1],
              ['v3', 3],
            ]),
            split('zero', [
              ['v1b', 0],
              ['v2', 90],
              ['v3', 10],
            ]),
            split('single-zero', [['v3', 0]]),
            { match: [{ uri: { prefix: '/v1' } }], route: [{ destination: { host: 'reviews', subset: 'v1' } }] },
            { match: [{ uri: { prefix: '/zone-a' } }], route: [{ destination: { host: 'reviews', subset: 'zone-a' } }] },
            { route: [{ destination: { host: 'reviews', subset: 'v1b' } }] },
          ],
        }),
      ),
    });
  });

  afterAll(async () => {
    await proxy?.close();
    await Promise.all([v1a, v1b, v2, v3].map((u) => u?.close()));
  });

  it('80/20 over 1000 requests', async () => {
    const n = 1000;
    const counts = await distribution(proxy.port, 'reviews:9080', n, { 'x-split': '80-20' });
    expect([...counts.keys()].sort()).toEqual(['v1b', 'v2']);
    expectBinomial(counts.get('v1b')!, n, 0.8);
    expect(counts.get('v1b')! + counts.get('v2')!).toBe(n);
  });

  it('50/30/20 over 1500 requests', async () => {
    const n = 1500;
    const counts = await distribution(proxy.port, 'reviews:9080', n, { 'x-split': 'three' });
    expect([...counts.keys()].sort()).toEqual(['v1b', 'v2', 'v3']);
    expectBinomial(counts.get('v1b')!, n, 0.5);
    expectBinomial(counts.get('v2')!, n, 0.3);
    expectBinomial(counts.get('v3')!, n, 0.2);
  });

  it('weights are relative: 1 and 3 split 25/75', async () => {
    const n = 1000;
    const counts = await distribution(proxy.port, 'reviews', n, { 'x-split': 'relative' });
    expect([...counts.keys()].sort()).toEqual(['v2', 'v3']);
    expectBinomial(counts.get('v3')!, n, 0.75);
  });

  it('a destination with weight 0 gets no traffic', async () => {
    const n = 1000;
    const counts = await distribution(proxy.port, 'reviews', n, { 'x-split': 'zero' });
    expect(counts.get('v1b')).toBeUndefined();
    expect(v1b.requests.filter((r) => r.headers['x-split'] === 'zero')).toHaveLength(0);
    expectBinomial(counts.get('v2')!, n, 0.9);
  });

  it('a single destination gets all traffic whatever its weight', async () => {
    const counts = await distribution(proxy.port, 'reviews', 40, { 'x-split': 'single-zero' });
    expect(counts).toEqual(new Map([['v3', 40]]));
  });

  it('a subset selects the endpoints carrying all of its labels', async () => {
    // 200 requests over two endpoints: one of them is missed by all with probability 2^-199.
    const v1 = await distribution(proxy.port, 'reviews', 200, {}, '/v1');
    expect([...v1.keys()].sort()).toEqual(['v1a', 'v1b']);
    const zoneA = await distribution(proxy.port, 'reviews', 200, {}, '/zone-a');
    expect([...zoneA.keys()].sort()).toEqual(['v1a', 'v2']);
    const v1b = await distribution(proxy.port, 'reviews', 50);
    expect(v1b).toEqual(new Map([['v1b', 50]]));
  });
});
