/**
 * The route filters: fault injection, CORS and local rate limiting, and request mirroring, each
 * observed from a real client and real upstreams.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { get, request } from '../../helpers/client.js';
import { httpService, meshConfig, virtualService, yamlDocs, type Resource } from '../../helpers/istio-docs.js';
import { startScriptedUpstream, type ScriptedUpstream } from '../../helpers/misbehaving.js';
import { startProxy, type TestProxy } from '../../helpers/proxy.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function rateLimits(rules: unknown[]): Resource {
  return { apiVersion: 'skiff.dev/v1alpha1', kind: 'LocalRateLimit', metadata: { name: 'limits' }, spec: { rules } };
}

/** |observed − expected| within 4.5 standard deviations of a binomial(n, p). */
function expectBinomial(observed: number, n: number, p: number): void {
  const sd = Math.sqrt(n * p * (1 - p));
  expect(Math.abs(observed - n * p)).toBeLessThanOrEqual(4.5 * sd);
}

describe('route filters and mirroring', () => {
  let app: ScriptedUpstream;
  let shadow: ScriptedUpstream;
  let proxy: TestProxy;

  beforeAll(async () => {
    app = await startScriptedUpstream('app');
    shadow = await startScriptedUpstream('shadow', 'hang');
    const route = (host: string, fields: Record<string, unknown>, match?: unknown) =>
      ({ ...(match ? { match } : {}), route: [{ destination: { host } }], ...fields });
    proxy = await startProxy({
      'mesh.yaml': yamlDocs(
        meshConfig({ workloadLabels: { app: 'reviews' } }),
        httpService('app', 80, [app.port]),
        httpService('shadow', 80, [shadow.port]),
        httpService('app-copy', 80, [app.port]),
        virtualService('app', {
          hosts: ['app'],
          http: [
            route('app', { fault: { abort: { httpStatus: 418, percentage: { value: 100 } } } }, [{ headers: { 'end-user': { exact: 'jason' } } }]),
            route('app', { fault: { abort: { httpStatus: 503, percentage: { value: 50 } } } }, [{ uri: { prefix: '/half' } }]),
            route('app', { fault: { abort: { grpcStatus: 'UNAVAILABLE', percentage: { value: 100 } } } }, [{ uri: { prefix: '/grpc' } }]),
            route('app', { fault: { delay: { fixedDelay: '0.2s', percentage: { value: 100 } } } }, [{ uri: { prefix: '/delay' } }]),
            route('app', { fault: { delay: { fixedDelay: '0.2s', percent: 100 } } }, [{ uri: { prefix: '/legacy-delay' } }]),
            route('app', { fault: { abort: { httpStatus: 500 } } }, [{ uri: { prefix: '/no-percentage' } }]),
            route('app', { mirror: { host: 'shadow' } }, [{ uri: { prefix: '/mirror-all' } }]),
            route('app', { mirror: { host: 'app-copy' } }, [{ uri: { prefix: '/mirror-copy' } }]),
            route('app', { mirror: { host: 'shadow' }, mirrorPercentage: { value: 30 } }, [{ uri: { prefix: '/mirror-some' } }]),
            route('app', { mirrors: [{ destination: { host: 'shadow' }, percentage: { value: 0 } }] }, [{ uri: { prefix: '/mirror-none' } }]),
            route(
              'app',
              {
                corsPolicy: {
                  allowOrigins: [{ exact: 'https://a.example' }, { regex: 'https://[a-z]+\\.b\\.example' }],
                  allowMethods: ['GET', 'POST'],
                  allowHeaders: ['x-custom'],
                  exposeHeaders: ['x-exposed'],
                  maxAge: '24h',
                  allowCredentials: true,
                },
              },
              [{ uri: { prefix: '/cors' } }],
            ),
            route('app', { corsPolicy: { allowOrigins: [{ exact: 'https://a.example' }], unmatchedPreflights: 'IGNORE' } }, [{ uri: { prefix: '/strict-cors' } }]),
            { name: 'limited', match: [{ uri: { prefix: '/limited' } }], route: [{ destination: { host: 'app' } }] },
            { name: 'refilled', match: [{ uri: { prefix: '/refilled' } }], route: [{ destination: { host: 'app' } }] },
            route('app', {}),
          ],
        }),
        httpService('ratings', 80, [app.port]),
        httpService('details', 80, [app.port]),
        rateLimits([
          { name: 'limited', match: { route: 'limited' }, tokenBucket: { maxTokens: 3, tokensPerFill: 1, fillInterval: '60s' } },
          { name: 'refilled', match: { route: 'refilled' }, tokenBucket: { maxTokens: 1, tokensPerFill: 1, fillInterval: '0.2s' } },
          { name: 'app', match: { destination: { host: 'app' } }, tokenBucket: { maxTokens: 1_000_000, tokensPerFill: 1_000_000, fillInterval: '1s' } },
          { name: 'app-copy', match: { destination: { host: 'app-copy' } }, tokenBucket: { maxTokens: 1_000_000, tokensPerFill: 1_000_000, fillInterval: '1s' } },
          // The example: ordered rules, first match wins, a mesh-wide default last.
          { name: 'reviews-to-ratings', match: { sourceLabels: { app: 'reviews' }, destination: { host: 'ratings' } }, tokenBucket: { maxTokens: 1, fillInterval: '1s' } },
          { name: 'ratings', match: { destination: { host: 'ratings' } }, tokenBucket: { maxTokens: 100, tokensPerFill: 100, fillInterval: '1s' } },
          { name: 'default', tokenBucket: { maxTokens: 5, tokensPerFill: 5, fillInterval: '60s' } },
        ]),
      ),
    });
  });

  afterAll(async () => {
    await proxy?.close();
    await Promise.all([app?.close(), shadow?.close()]);
  });

  beforeEach(() => {
    app.requests.length = 0;
    shadow.requests.length = 0;
  });

  const last = () => proxy.records.at(-1)!;

  describe('fault injection', () => {
    it('aborts with the configured status and "fault filter abort", flag FI, without calling the upstream', async () => {
      const res = await get(proxy.port, 'app', '/', { 'end-user': 'jason' });
      expect(res.status).toBe(418);
      expect(res.text()).toBe('fault filter abort');
      expect(res.headers['content-type']).toBe('text/plain');
      expect(last().responseFlags).toEqual(['FI']);
      expect(app.requests).toHaveLength(0);
    });

    it('is scoped by the route match: other users are not affected', async () => {
      const res = await get(proxy.port, 'app', '/', { 'end-user': 'alice' });
      expect(res.status).toBe(200);
      expect(app.requests).toHaveLength(1);
    });

    it('aborts about the configured share of requests', async () => {
      const n = 400;
      let aborted = 0;
      for (let i = 0; i < n; i++) if ((await get(proxy.port, 'app', '/half')).status === 503) aborted++;
      expectBinomial(aborted, n, 0.5);
      expect(app.requests).toHaveLength(n - aborted);
    });

    it('a gRPC abort answers a gRPC request with HTTP 200 and grpc-status', async () => {
      const res = await request(proxy.port, '/grpc', { method: 'POST', headers: { host: 'app', 'content-type': 'application/grpc' }, body: '' });
      expect(res.status).toBe(200);
      expect(res.headers['grpc-status']).toBe('14');
      expect(res.headers['grpc-message']).toBe('fault filter abort');
      expect(res.headers['content-type']).toBe('application/grpc');
      expect(app.requests).toHaveLength(0);
    });

    it('delays the request, flag DI, then forwards it (also with the deprecated integer percent)', async () => {
      for (const path of ['/delay', '/legacy-delay']) {
        const started = performance.now();
        const res = await get(proxy.port, 'app', path);
        expect(res.status).toBe(200);
        expect(performance.now() - started).toBeGreaterThanOrEqual(190);
        expect(last().responseFlags).toEqual(['DI']);
      }
      expect(app.requests).toHaveLength(2);
    });

    it('a fault without a percentage injects nothing', async () => {
      for (let i = 0; i < 20; i++) expect((await get(proxy.port, 'app', '/no-percentage')).status).toBe(200);
    });
  });

  describe('mirroring', () => {
    it('copies every request to the mirror with -shadow on the Host; a mirror that never answers does not hold the primary', async () => {
      for (let i = 0; i < 10; i++) {
        const res = await get(proxy.port, 'app', `/mirror-all/${i}`);
        expect(res.status).toBe(200);
        expect(res.text()).toBe('ok from app');
      }
      for (let i = 0; i < 100 && shadow.requests.length < 10; i++) await sleep(10);
      expect(shadow.requests.map((r) => r.url)).toEqual(Array.from({ length: 10 }, (_, i) => `/mirror-all/${i}`));
      for (const r of shadow.requests) expect(r.headers['host']).toBe('app-shadow');
      expect(app.requests.map((r) => r.headers['host'])).toEqual(Array(10).fill('app'));
    });

    it('a connection a mirror used serves the next requests normally', async () => {
      expect((await get(proxy.port, 'app', '/mirror-copy')).status).toBe(200);
      for (let i = 0; i < 100 && app.requests.length < 2; i++) await sleep(10);
      // Envoy adds -shadow to the request's own Host, whichever cluster the mirror goes to.
      expect(app.requests.map((r) => r.headers['host']).sort()).toEqual(['app', 'app-shadow']);
      // The shadow's keep-alive connection to app-copy goes back to the pool and is reused.
      for (let i = 0; i < 3; i++) {
        const res = await get(proxy.port, 'app-copy', '/direct');
        expect(res.status).toBe(200);
        expect(res.text()).toBe('ok from app');
      }
    });

    it('mirrors the request body', async () => {
      const body = Buffer.alloc(5000, 'm');
      const res = await request(proxy.port, '/mirror-all/body', { method: 'POST', headers: { host: 'app' }, body });
      expect(res.status).toBe(200);
      for (let i = 0; i < 100 && shadow.requests.length < 1; i++) await sleep(10);
      expect(shadow.requests[0]!.bodyLength).toBe(5000);
      expect(shadow.requests[0]!.method).toBe('POST');
    });

    it('mirrorPercentage mirrors about that share; 0 mirrors nothing', async () => {
      const n = 200;
      for (let i = 0; i < n; i++) await get(proxy.port, 'app', '/mirror-some');
      for (let i = 0; i < n; i++) await get(proxy.port, 'app', '/mirror-none');
      await sleep(100);
      expectBinomial(shadow.requests.filter((r) => r.url === '/mirror-some').length, n, 0.3);
      expect(shadow.requests.filter((r) => r.url === '/mirror-none')).toHaveLength(0);
    });
  });

  describe('CORS', () => {
    it('answers a preflight from an allowed origin itself', async () => {
      const res = await request(proxy.port, '/cors', {
        method: 'OPTIONS',
        headers: { host: 'app', origin: 'https://x.b.example', 'access-control-request-method': 'POST' },
      });
      expect(res.status).toBe(200);
      expect(res.headers['access-control-allow-origin']).toBe('https://x.b.example');
      expect(res.headers['access-control-allow-credentials']).toBe('true');
      expect(res.headers['access-control-allow-methods']).toBe('GET,POST');
      expect(res.headers['access-control-allow-headers']).toBe('x-custom');
      expect(res.headers['access-control-max-age']).toBe('86400');
      expect(res.text()).toBe('');
      expect(app.requests).toHaveLength(0);
    });

    it('forwards a preflight from another origin by default; IGNORE answers it without CORS headers', async () => {
      const preflight = { host: 'app', origin: 'https://evil.example', 'access-control-request-method': 'GET' };
      const forwarded = await request(proxy.port, '/cors', { method: 'OPTIONS', headers: preflight });
      expect(forwarded.status).toBe(200);
      expect(forwarded.text()).toBe('ok from app');
      expect(forwarded.headers['access-control-allow-origin']).toBeUndefined();
      const ignored = await request(proxy.port, '/strict-cors', { method: 'OPTIONS', headers: preflight });
      expect(ignored.status).toBe(200);
      expect(ignored.text()).toBe('');
      expect(ignored.headers['access-control-allow-origin']).toBeUndefined();
      expect(app.requests).toHaveLength(1);
    });

    it('adds allow-origin, credentials and expose headers to responses for allowed origins only', async () => {
      const allowed = await get(proxy.port, 'app', '/cors', { origin: 'https://a.example' });
      expect(allowed.headers['access-control-allow-origin']).toBe('https://a.example');
      expect(allowed.headers['access-control-allow-credentials']).toBe('true');
      expect(allowed.headers['access-control-expose-headers']).toBe('x-exposed');
      const other = await get(proxy.port, 'app', '/cors', { origin: 'https://c.example' });
      expect(other.status).toBe(200);
      expect(other.headers['access-control-allow-origin']).toBeUndefined();
    });
  });

  describe('local rate limiting', () => {
    it('lets maxTokens requests through, then answers 429 local_rate_limited with x-envoy-ratelimited, flag RL', async () => {
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) statuses.push((await get(proxy.port, 'app', '/limited')).status);
      expect(statuses).toEqual([200, 200, 200, 429, 429]);
      const res = await get(proxy.port, 'app', '/limited');
      expect(res.text()).toBe('local_rate_limited');
      expect(res.headers['x-envoy-ratelimited']).toBe('true');
      expect(last().responseFlags).toEqual(['RL']);
      expect(app.requests).toHaveLength(3);
    });

    it('refills tokensPerFill every fillInterval', async () => {
      // One token per 0.2s: a quick burst runs out (on a loaded machine two requests may straddle
      // a refill, so the burst is a few requests long)…
      const burst = await Promise.all(Array.from({ length: 4 }, () => get(proxy.port, 'app', '/refilled')));
      expect(burst.map((r) => r.status)).toContain(429);
      expect(burst.filter((r) => r.status === 200).length).toBeLessThanOrEqual(2);
      // …and the next interval brings one back.
      await sleep(250);
      expect((await get(proxy.port, 'app', '/refilled')).status).toBe(200);
    });

    it('ordered rules: the first match wins (reviews → ratings 1/s), the mesh-wide default covers the rest', async () => {
      expect((await get(proxy.port, 'ratings')).status).toBe(200);
      expect((await get(proxy.port, 'ratings')).status).toBe(429);
      const details: number[] = [];
      for (let i = 0; i < 6; i++) details.push((await get(proxy.port, 'details')).status);
      expect(details).toEqual([200, 200, 200, 200, 200, 429]);
    });
  });
});
