/**
 * Retries and timeouts against upstreams that fail on command: which outcomes each retryOn
 * condition retries, the attempt count header, host avoidance, body replay, per-try and route
 * timeouts, and what the client gets when retries run out.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { get, request } from '../../helpers/client.js';
import { httpService, virtualService, yamlDocs, destinationRule } from '../../helpers/istio-docs.js';
import { startScriptedUpstream, type ScriptedUpstream } from '../../helpers/misbehaving.js';
import { startProxy, type TestProxy } from '../../helpers/proxy.js';
import { closedPort } from '../../helpers/ports.js';

const RETRIED = 'upstream connect error or disconnect/reset before headers. retried and the latest reset reason: ';
const RESET = 'upstream connect error or disconnect/reset before headers. reset reason: ';

/** A VirtualService for `host` with one route and the given retry policy (and route fields). */
function retrying(host: string, retries: Record<string, unknown> | undefined, extra: Record<string, unknown> = {}) {
  return virtualService(host, { hosts: [host], http: [{ route: [{ destination: { host } }], ...(retries ? { retries } : {}), ...extra }] });
}

describe('retries', () => {
  let a: ScriptedUpstream;
  let b: ScriptedUpstream;
  let proxy: TestProxy;

  beforeAll(async () => {
    a = await startScriptedUpstream('a');
    b = await startScriptedUpstream('b');
    const refused = await closedPort();
    proxy = await startProxy({
      'mesh.yaml': yamlDocs(
        httpService('half-down', 80, [refused, a.port]),
        destinationRule('half-down', { host: 'half-down', trafficPolicy: { loadBalancer: { simple: 'ROUND_ROBIN' } } }),
        httpService('stalled', 80, [a.port]),
        retrying('stalled', { attempts: 2, perTryTimeout: '0.1s', retryOn: '5xx,reset' }, { timeout: '0.4s' }),
        httpService('default-policy', 80, [a.port]),
        httpService('five-xx', 80, [a.port]),
        retrying('five-xx', { attempts: 2, retryOn: '5xx' }),
        httpService('gateway', 80, [a.port]),
        retrying('gateway', { attempts: 2, retryOn: 'gateway-error' }),
        httpService('codes', 80, [a.port]),
        retrying('codes', { attempts: 2, retryOn: '418,409' }),
        httpService('conflict', 80, [a.port]),
        retrying('conflict', { attempts: 1, retryOn: 'retriable-4xx' }),
        httpService('resets', 80, [a.port]),
        retrying('resets', { attempts: 2, retryOn: 'reset' }),
        httpService('grpc', 80, [a.port]),
        retrying('grpc', { attempts: 2, retryOn: 'unavailable' }),
        httpService('none', 80, [a.port]),
        retrying('none', { attempts: 0 }),
        httpService('per-try', 80, [a.port]),
        retrying('per-try', { attempts: 2, perTryTimeout: '0.15s', retryOn: '5xx' }),
        httpService('covered', 80, [a.port]),
        retrying('covered', { attempts: 10, perTryTimeout: '0.2s', retryOn: '5xx' }, { timeout: '0.5s' }),
        httpService('two-hosts', 80, [a.port, b.port]),
        retrying('two-hosts', { attempts: 1, retryOn: '5xx' }),
        destinationRule('two-hosts', { host: 'two-hosts', trafficPolicy: { loadBalancer: { simple: 'ROUND_ROBIN' } } }),
      ),
    });
  });

  afterAll(async () => {
    await proxy?.close();
    await Promise.all([a?.close(), b?.close()]);
  });

  beforeEach(() => {
    for (const u of [a, b]) {
      u.script([]);
      u.fallback = 'ok';
      u.requests.length = 0;
    }
  });

  const lastFlags = (): string[] => proxy.records.at(-1)?.responseFlags ?? [];
  const attemptCounts = (u: ScriptedUpstream): unknown[] => u.requests.map((r) => r.headers['x-envoy-attempt-count']);

  it('retries 503 under 5xx until a success, counting attempts in x-envoy-attempt-count', async () => {
    a.script([503, 503]);
    const res = await get(proxy.port, 'five-xx');
    expect(res.status).toBe(200);
    expect(res.text()).toBe('ok from a');
    expect(attemptCounts(a)).toEqual(['1', '2', '3']);
    expect(lastFlags()).toEqual([]);
  });

  it('returns the last upstream response with URX once the attempts run out', async () => {
    a.fallback = { status: 503, body: 'still down' };
    const res = await get(proxy.port, 'five-xx');
    expect(res.status).toBe(503);
    expect(res.text()).toBe('still down');
    expect(res.headers['x-server']).toBe('a');
    expect(a.requests).toHaveLength(3);
    expect(lastFlags()).toEqual(['URX']);
  });

  it('gateway-error retries 502, 503 and 504 but not 500', async () => {
    a.script([502, 504]);
    expect((await get(proxy.port, 'gateway')).status).toBe(200);
    expect(a.requests).toHaveLength(3);
    a.requests.length = 0;
    a.script([500]);
    expect((await get(proxy.port, 'gateway')).status).toBe(500);
    expect(a.requests).toHaveLength(1);
  });

  it('bare status codes in retryOn are retriable-status-codes; other statuses are not retried', async () => {
    a.script([418, 409]);
    expect((await get(proxy.port, 'codes')).status).toBe(200);
    expect(a.requests).toHaveLength(3);
    a.requests.length = 0;
    a.script([503]);
    expect((await get(proxy.port, 'codes')).status).toBe(503);
    expect(a.requests).toHaveLength(1);
  });

  it('retriable-4xx retries 409 only', async () => {
    a.script([409]);
    expect((await get(proxy.port, 'conflict')).status).toBe(200);
    a.requests.length = 0;
    a.script([404]);
    expect((await get(proxy.port, 'conflict')).status).toBe(404);
    expect(a.requests).toHaveLength(1);
  });

  it('a 503 that carries x-envoy-overloaded is not retried', async () => {
    a.script([{ status: 503, headers: { 'x-envoy-overloaded': 'true' } }]);
    expect((await get(proxy.port, 'five-xx')).status).toBe(503);
    expect(a.requests).toHaveLength(1);
  });

  it('reset retries a connection reset before the response head', async () => {
    a.script(['reset', 'reset']);
    expect((await get(proxy.port, 'resets')).status).toBe(200);
    expect(attemptCounts(a).at(-1)).toBe('3');
    expect(new Set(attemptCounts(a))).toEqual(new Set(['1', '2', '3']));
  });

  it("Istio's default policy retries an upstream 503 twice", async () => {
    a.script([503, 503]);
    expect((await get(proxy.port, 'default-policy')).status).toBe(200);
    expect(attemptCounts(a)).toEqual(['1', '2', '3']);
    a.requests.length = 0;
    a.fallback = 503;
    const res = await get(proxy.port, 'default-policy');
    expect(res.status).toBe(503);
    expect(a.requests).toHaveLength(3);
    expect(lastFlags()).toEqual(['URX']);
  });

  it('without a reset condition a reset before headers is answered 503 UC at once', async () => {
    a.fallback = 'reset';
    const res = await get(proxy.port, 'default-policy');
    expect(res.status).toBe(503);
    expect(res.text()).toBe(`${RESET}connection termination`);
    expect(new Set(attemptCounts(a))).toEqual(new Set(['1']));
    expect(lastFlags()).toEqual(['UC']);
  });

  it('resets after retries run out answer with "retried and the latest reset reason" and UC plus URX', async () => {
    a.fallback = 'reset';
    const res = await get(proxy.port, 'resets');
    expect(res.status).toBe(503);
    expect(res.text()).toBe(`${RETRIED}connection termination`);
    // Three attempts. (A reset on a reused keep-alive connection before any response byte is
    // also replayed once on a fresh connection, under the same attempt number.)
    expect(new Set(attemptCounts(a))).toEqual(new Set(['1', '2', '3']));
    expect(lastFlags().sort()).toEqual(['UC', 'URX']);
  });

  it('never retries once response bytes have gone downstream', async () => {
    a.script(['reset-after-head']);
    await expect(get(proxy.port, 'resets')).rejects.toThrow();
    expect(a.requests).toHaveLength(1);
    expect(lastFlags()).toContain('UC');
  });

  it('gRPC names retry on grpc-status in the response headers', async () => {
    a.script([{ status: 200, headers: { 'grpc-status': '14' } }]);
    const res = await get(proxy.port, 'grpc');
    expect(res.status).toBe(200);
    expect(res.headers['grpc-status']).toBeUndefined();
    expect(a.requests).toHaveLength(2);
    a.requests.length = 0;
    a.script([{ status: 200, headers: { 'grpc-status': '3' } }]);
    expect((await get(proxy.port, 'grpc')).headers['grpc-status']).toBe('3');
    expect(a.requests).toHaveLength(1);
  });

  it('attempts: 0 disables retries, even the default connect-failure ones', async () => {
    a.script([503]);
    expect((await get(proxy.port, 'none')).status).toBe(503);
    expect(a.requests).toHaveLength(1);
    expect(lastFlags()).toEqual([]);
  });

  it('the request body is replayed on every attempt', async () => {
    a.script([503, 503]);
    const body = Buffer.alloc(10_000, 'x');
    const res = await request(proxy.port, '/echo', { method: 'POST', headers: { host: 'five-xx' }, body });
    expect(res.status).toBe(200);
    expect(res.body.equals(body)).toBe(true);
    expect(a.requests.map((r) => r.bodyLength)).toEqual([10_000, 10_000, 10_000]);
  });

  it('a body over the 64 KiB replay buffer is not retried', async () => {
    a.script([503]);
    const body = Buffer.alloc(200_000, 'y');
    const res = await request(proxy.port, '/echo', { method: 'POST', headers: { host: 'five-xx' }, body });
    expect(res.status).toBe(503);
    expect(a.requests).toHaveLength(1);
    expect(a.requests[0]!.bodyLength).toBe(200_000);
  });

  it("the default policy retries a refused connection on another host: the client never sees it", async () => {
    for (let i = 0; i < 10; i++) {
      const res = await get(proxy.port, 'half-down');
      expect(res.status).toBe(200);
      expect(res.text()).toBe('ok from a');
      expect(proxy.records.at(-1)?.responseFlags).toBeNull();
    }
    expect(a.requests).toHaveLength(10);
  });

  it('a body that stalls halfway is cut by the route timeout, not the per-try timeout, and not retried', async () => {
    a.script(['stall']);
    const started = performance.now();
    await expect(get(proxy.port, 'stalled')).rejects.toThrow();
    // The per-try timeout (0.1s) stopped at the response head; the route timeout (0.4s) reset the stream.
    expect(performance.now() - started).toBeGreaterThanOrEqual(350);
    expect(a.requests).toHaveLength(1);
    expect(lastFlags()).toEqual(['UT']);
  });

  it('a retry goes to a host not tried yet', async () => {
    a.fallback = 503;
    for (let i = 0; i < 10; i++) {
      const res = await get(proxy.port, 'two-hosts');
      expect(res.status).toBe(200);
      expect(res.text()).toBe('ok from b');
    }
    // Round robin alternates first picks; each first pick of `a` was retried on `b`.
    expect(a.requests.length).toBeGreaterThan(0);
    expect(b.requests.length).toBe(10);
  });

  it('perTryTimeout abandons a slow attempt and retries it', async () => {
    a.script(['hang']);
    const res = await get(proxy.port, 'per-try');
    expect(res.status).toBe(200);
    expect(attemptCounts(a)).toEqual(['1', '2']);
  });

  it('when every attempt times out the client gets 504 UT', async () => {
    a.fallback = 'hang';
    const res = await get(proxy.port, 'per-try');
    expect(res.status).toBe(504);
    expect(res.text()).toBe('upstream request timeout');
    expect(a.requests).toHaveLength(3);
    expect(lastFlags()).toContain('UT');
  });

  it('the route timeout covers every retry', async () => {
    a.fallback = 'hang';
    const started = performance.now();
    const res = await get(proxy.port, 'covered');
    expect(res.status).toBe(504);
    expect(res.text()).toBe('upstream request timeout');
    // 10 retries of 0.2s each would take 2.2s; the 0.5s route timeout cut them short.
    expect(a.requests.length).toBeLessThanOrEqual(3);
    expect(performance.now() - started).toBeLessThan(2000);
    expect(proxy.records.at(-1)?.responseCodeDetails).toBe('upstream_response_timeout');
  });
});
