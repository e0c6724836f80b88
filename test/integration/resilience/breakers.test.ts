/**
 * Circuit breaking (DestinationRule connectionPool) and outlier detection, against real
 * upstreams that answer slowly or fail on command.
 */
import { Agent } from 'node:http';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { get, request, type Response } from '../../helpers/client.js';
import { destinationRule, httpService, virtualService, yamlDocs } from '../../helpers/istio-docs.js';
import { startScriptedUpstream, type ScriptedUpstream } from '../../helpers/misbehaving.js';
import { startProxy, type TestProxy } from '../../helpers/proxy.js';

const OVERFLOW_BODY = 'upstream connect error or disconnect/reset before headers. reset reason: overflow';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** `clients` concurrent keep-alive clients, each sending `each` requests one after another. */
async function concurrentClients(port: number, host: string, clients: number, each: number): Promise<Response[]> {
  const all: Response[] = [];
  await Promise.all(
    Array.from({ length: clients }, async () => {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      for (let i = 0; i < each; i++) all.push(await request(port, '/', { headers: { host }, agent }));
      agent.destroy();
    }),
  );
  return all;
}

describe('circuit breakers', () => {
  let slow: ScriptedUpstream;
  let serial: ScriptedUpstream;
  let failing: ScriptedUpstream;
  let proxy: TestProxy;

  beforeAll(async () => {
    slow = await startScriptedUpstream('slow', { status: 200, delayMs: 30 });
    serial = await startScriptedUpstream('serial', { status: 200, delayMs: 10 });
    failing = await startScriptedUpstream('failing', { status: 503, delayMs: 20 });
    const pool = (host: string, connectionPool: Record<string, unknown>) => destinationRule(host, { host, trafficPolicy: { connectionPool } });
    proxy = await startProxy({
      'mesh.yaml': yamlDocs(
        // Istio's circuit-breaking task.
        httpService('httpbin', 80, [slow.port]),
        pool('httpbin', { tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 1, maxRequestsPerConnection: 1 } }),
        httpService('queued', 80, [serial.port]),
        pool('queued', { tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 100 } }),
        httpService('max-requests', 80, [slow.port]),
        pool('max-requests', { http: { http2MaxRequests: 1 } }),
        httpService('one-per-connection', 80, [slow.port]),
        pool('one-per-connection', { http: { maxRequestsPerConnection: 1 } }),
        httpService('budget', 80, [failing.port]),
        pool('budget', { http: { maxRetries: 1 } }),
        virtualService('budget', { hosts: ['budget'], http: [{ route: [{ destination: { host: 'budget' } }], retries: { attempts: 5, retryOn: '5xx' } }] }),
      ),
    });
  });

  afterAll(async () => {
    await proxy?.close();
    await Promise.all([slow?.close(), serial?.close(), failing?.close()]);
  });

  beforeEach(() => {
    slow.requests.length = 0;
    failing.requests.length = 0;
    slow.connectionPorts.clear();
  });

  it("Istio's task: maxConnections 1 and 1 pending request, 3 concurrent clients: a share of 503 UO", async () => {
    const before = proxy.records.length;
    const all = await concurrentClients(proxy.port, 'httpbin', 3, 15);
    const overflowed = all.filter((r) => r.status === 503);
    const passed = all.filter((r) => r.status === 200);
    expect(overflowed.length + passed.length).toBe(45);
    expect(overflowed.length).toBeGreaterThan(0);
    expect(passed.length).toBeGreaterThan(0);
    for (const r of overflowed) {
      expect(r.text()).toBe(OVERFLOW_BODY);
      expect(r.headers['x-envoy-overloaded']).toBe('true');
      expect(r.headers['server']).toBe('envoy');
    }
    const flags = proxy.records.slice(before).filter((i) => i.responseCode === 503).map((i) => i.responseFlags);
    for (const f of flags) expect(f).toEqual(['UO']);
    // Overflow is never retried, even under the default retry policy, and never reaches the upstream.
    expect(slow.requests.length).toBe(passed.length);
    expect(slow.peakConcurrency).toBe(1);
  });

  it('over maxConnections, HTTP/1.1 requests queue as pending and are served one connection at a time', async () => {
    const all = await concurrentClients(proxy.port, 'queued', 5, 4);
    expect(all.map((r) => r.status)).toEqual(Array(20).fill(200));
    expect(serial.requests).toHaveLength(20);
    expect(serial.connectionPorts.size).toBe(1);
    expect(serial.peakConcurrency).toBe(1);
  });

  it('http2MaxRequests bounds the requests in flight for the cluster', async () => {
    const all = await Promise.all([1, 2, 3, 4].map(() => get(proxy.port, 'max-requests')));
    const statuses = all.map((r) => r.status).sort();
    expect(statuses).toContain(200);
    expect(statuses).toContain(503);
    for (const r of all.filter((x) => x.status === 503)) expect(r.headers['x-envoy-overloaded']).toBe('true');
  });

  it('maxRequestsPerConnection 1 opens a connection per request', async () => {
    for (let i = 0; i < 3; i++) expect((await get(proxy.port, 'one-per-connection')).status).toBe(200);
    expect(slow.connectionPorts.size).toBe(3);
  });

  it('maxRetries holds under load: retries beyond the budget are refused (UO), no retry storm', async () => {
    const before = proxy.records.length;
    const all = await Promise.all(Array.from({ length: 12 }, () => get(proxy.port, 'budget')));
    expect(all.every((r) => r.status === 503)).toBe(true);
    const records = proxy.records.slice(before);
    const overflowed = records.filter((i) => i.responseFlags?.includes('UO'));
    expect(overflowed.length).toBeGreaterThan(0);
    // Without the budget, 12 requests × 6 attempts = 72 upstream requests.
    expect(failing.requests.length).toBeLessThan(72);
    expect(failing.requests.length).toBeGreaterThanOrEqual(12);
    // Only one retry was in flight at a time: the first attempts plus at most one retry each round.
    expect(failing.peakConcurrency).toBeLessThanOrEqual(13);
  });
});

describe('outlier detection', () => {
  let good: ScriptedUpstream;
  let bad: ScriptedUpstream;
  let lone: ScriptedUpstream;
  let proxy: TestProxy;
  let adminPort: number;

  beforeAll(async () => {
    good = await startScriptedUpstream('good');
    bad = await startScriptedUpstream('bad', 503);
    lone = await startScriptedUpstream('lone', 503);
    const od = (host: string, outlierDetection: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
      destinationRule(host, { host, trafficPolicy: { loadBalancer: { simple: 'ROUND_ROBIN' }, outlierDetection, ...extra } });
    const noRetries = (host: string) => virtualService(host, { hosts: [host], http: [{ route: [{ destination: { host } }], retries: { attempts: 0 } }] });
    proxy = await startProxy({
      'mesh.yaml': yamlDocs(
        httpService('pair', 80, [good.port, bad.port]),
        od('pair', { consecutive5xxErrors: 2, interval: '0.1s', baseEjectionTime: '0.6s', maxEjectionPercent: 100 }),
        noRetries('pair'),
        httpService('gateway-pair', 80, [good.port, bad.port]),
        od('gateway-pair', { consecutive5xxErrors: 0, consecutiveGatewayErrors: 2, interval: '0.1s', baseEjectionTime: '30s', maxEjectionPercent: 100 }),
        noRetries('gateway-pair'),
        httpService('alone', 80, [lone.port]),
        od('alone', { consecutive5xxErrors: 1, interval: '0.1s', baseEjectionTime: '30s', maxEjectionPercent: 100 }),
        noRetries('alone'),
        httpService('panicky', 80, [lone.port]),
        od('panicky', { consecutive5xxErrors: 1, interval: '0.1s', baseEjectionTime: '30s', maxEjectionPercent: 100, minHealthPercent: 50 }),
        noRetries('panicky'),
        httpService('capped', 80, [bad.port, lone.port, good.port]),
        od('capped', { consecutive5xxErrors: 1, interval: '1s', baseEjectionTime: '30s', maxEjectionPercent: 34 }),
        noRetries('capped'),
      ),
    });
    adminPort = proxy.proxy.ports.admin;
  });

  afterAll(async () => {
    await proxy?.close();
    await Promise.all([good?.close(), bad?.close(), lone?.close()]);
  });

  const ejected = async (clusterHost: string): Promise<string[]> => {
    const res = await get(adminPort, 'admin', '/clusters');
    return res
      .text()
      .split('\n')
      .filter((l) => l.startsWith(`outbound|80||${clusterHost}.`) && l.endsWith('::health_flags::/failed_outlier_check'))
      .map((l) => l.split('::')[1]!);
  };

  it('ejects a host after consecutive 5xx, sends traffic to the rest, and restores it after the ejection time', async () => {
    bad.fallback = 503;
    for (let i = 0; i < 6; i++) await get(proxy.port, 'pair');
    expect(await ejected('pair')).toEqual([`127.0.0.1:${bad.port}`]);
    const badBefore = bad.requests.length;
    const during = await Promise.all(Array.from({ length: 10 }, () => get(proxy.port, 'pair')));
    expect(during.every((r) => r.status === 200)).toBe(true);
    expect(bad.requests.length).toBe(badBefore);
    // The host recovers; once its ejection time is over it is back in rotation.
    bad.fallback = 'ok';
    for (let i = 0; i < 40 && (await ejected('pair')).length > 0; i++) await sleep(50);
    expect(await ejected('pair')).toEqual([]);
    for (let i = 0; i < 4; i++) await get(proxy.port, 'pair');
    expect(bad.requests.length).toBeGreaterThan(badBefore);
  });

  it('consecutiveGatewayErrors counts 502/503/504 only', async () => {
    bad.fallback = 500;
    for (let i = 0; i < 8; i++) await get(proxy.port, 'gateway-pair');
    expect(await ejected('gateway-pair')).toEqual([]);
    bad.fallback = 502;
    for (let i = 0; i < 6; i++) await get(proxy.port, 'gateway-pair');
    expect(await ejected('gateway-pair')).toEqual([`127.0.0.1:${bad.port}`]);
  });

  it('with every host ejected and minHealthPercent 0: 503 UH "no healthy upstream"', async () => {
    expect((await get(proxy.port, 'alone')).status).toBe(503);
    const res = await get(proxy.port, 'alone');
    expect(res.status).toBe(503);
    expect(res.text()).toBe('no healthy upstream');
    expect(proxy.records.at(-1)?.responseFlags).toEqual(['UH']);
  });

  it('below minHealthPercent the cluster panics and balances over every host, ejected or not', async () => {
    const before = lone.requests.length;
    expect((await get(proxy.port, 'panicky')).status).toBe(503);
    const res = await get(proxy.port, 'panicky');
    expect(await ejected('panicky')).toEqual([`127.0.0.1:${lone.port}`]);
    expect(res.text()).toBe('503 from lone');
    expect(lone.requests.length).toBe(before + 2);
  });

  it('maxEjectionPercent caps the ejected share (one host may always go)', async () => {
    bad.fallback = 503;
    for (let i = 0; i < 9; i++) await get(proxy.port, 'capped');
    expect(await ejected('capped')).toHaveLength(1);
  });
});
