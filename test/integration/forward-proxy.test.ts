/**
 * skiff as an HTTP forward proxy for a real client: curl with `-x` and with `http_proxy` sends
 * absolute-form requests, and with `-p` opens CONNECT tunnels. The upstream sees what curl
 * sent, either re-encoded by the proxy (plain proxying) or byte for byte (a tunnel).
 */
import { execFile } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawExchange } from '../helpers/client.js';
import { httpService, meshConfig, virtualService, yamlDocs } from '../helpers/istio-docs.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

const CURL = '/usr/bin/curl';
const MARK = '\n@@curl@@';

interface CurlResult {
  /** curl's exit code (0 on success). */
  readonly exit: number;
  readonly status: number;
  /** The status of the proxy's answer to CONNECT (0 when curl sent none). */
  readonly connectStatus: number;
  readonly body: string;
}

/** Runs curl with `args` and an environment free of proxy settings unless given. */
function curl(args: string[], env: Record<string, string> = {}): Promise<CurlResult> {
  const clean: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !/_proxy$/i.test(k)) clean[k] = v;
  return new Promise((resolve, reject) => {
    execFile(
      CURL,
      ['-s', '-S', '--max-time', '10', '-w', `${MARK}%{http_code} %{http_connect}`, ...args],
      { env: { ...clean, ...env }, timeout: 15_000 },
      (err, stdout, stderr) => {
        const at = stdout.lastIndexOf(MARK);
        if (at === -1) {
          reject(new Error(`curl failed: ${err?.message ?? ''} ${stderr}`));
          return;
        }
        const [status, connect] = stdout.slice(at + MARK.length).split(' ').map(Number) as [number, number];
        const exit = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
        resolve({ exit, status, connectStatus: connect, body: stdout.slice(0, at) });
      },
    );
  });
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('forward proxy (ALLOW_ANY)', () => {
  let reviews: Upstream;
  let ratings: Upstream;
  let outside: Upstream;
  let proxy: TestProxy;
  let proxyUrl: string;

  beforeAll(async () => {
    [reviews, ratings, outside] = await Promise.all([startUpstream('reviews'), startUpstream('ratings'), startUpstream('outside')]);
    proxy = await startProxy({
      'mesh.yaml': yamlDocs(
        httpService('reviews', 9080, [reviews.port]),
        httpService('ratings', 9080, [ratings.port]),
        httpService('dead', 9080, [await freePort()]),
        virtualService('ratings', {
          hosts: ['ratings'],
          http: [
            { match: [{ uri: { prefix: '/to-reviews' } }], route: [{ destination: { host: 'reviews' } }] },
            { route: [{ destination: { host: 'ratings' } }] },
          ],
        }),
      ),
    });
    proxyUrl = `http://127.0.0.1:${proxy.port}`;
  });

  afterAll(async () => {
    await proxy?.close();
    await Promise.all([reviews?.close(), ratings?.close(), outside?.close()]);
  });

  it('curl -x sends absolute-form requests, routed by the URL authority', async () => {
    const res = await curl(['-x', proxyUrl, 'http://reviews:9080/path']);
    expect(res.exit).toBe(0);
    expect(res.status).toBe(200);
    expect(res.connectStatus).toBe(0);
    const seen = JSON.parse(res.body);
    expect(seen.server).toBe('reviews');
    expect(seen.url).toBe('/path');
    expect(seen.headers.host).toBe('reviews:9080');
    // Forwarded by the proxy, not tunneled: it added its headers and dropped the hop-by-hop one.
    expect(seen.headers['x-envoy-attempt-count']).toBe('1');
    expect(seen.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(seen.headers['proxy-connection']).toBeUndefined();
  });

  it('the http_proxy environment variable does the same', async () => {
    const res = await curl(['http://reviews:9080/env'], { http_proxy: proxyUrl });
    expect(res.status).toBe(200);
    const seen = JSON.parse(res.body);
    expect(seen.server).toBe('reviews');
    expect(seen.url).toBe('/env');
    expect(seen.headers['x-envoy-attempt-count']).toBe('1');
  });

  it('an absolute-form URL keeps its query; a name without a port finds the service port', async () => {
    const res = await curl(['-x', proxyUrl, 'http://reviews/items?a=1&b=two%20words']);
    expect(res.status).toBe(200);
    const seen = JSON.parse(res.body);
    expect(seen.server).toBe('reviews');
    expect(seen.url).toBe('/items?a=1&b=two%20words');
    expect(seen.headers.host).toBe('reviews');
  });

  it('VirtualService routes apply to proxied requests', async () => {
    const routed = JSON.parse((await curl(['-x', proxyUrl, 'http://ratings:9080/to-reviews/x'])).body);
    expect(routed.server).toBe('reviews');
    const direct = JSON.parse((await curl(['-x', proxyUrl, 'http://ratings.default:9080/other'])).body);
    expect(direct.server).toBe('ratings');
  });

  it('an address outside the registry is reached directly under ALLOW_ANY', async () => {
    const res = await curl(['-x', proxyUrl, `http://127.0.0.1:${outside.port}/out?q=1`]);
    expect(res.status).toBe(200);
    const seen = JSON.parse(res.body);
    expect(seen.server).toBe('outside');
    expect(seen.url).toBe('/out?q=1');
  });

  it('CONNECT to a service tunnels the bytes to its endpoint', async () => {
    for (const [service, upstream] of [['reviews', reviews], ['ratings', ratings]] as const) {
      const before = upstream.requests.length;
      const res = await curl(['-p', '-x', proxyUrl, `http://${service}:9080/tunneled?x=1`]);
      expect(res.exit).toBe(0);
      expect(res.connectStatus).toBe(200);
      expect(res.status).toBe(200);
      const seen = JSON.parse(res.body);
      expect(seen.server).toBe(service);
      expect(seen.url).toBe('/tunneled?x=1');
      // The request went through the tunnel untouched: no proxy headers, no routing.
      expect(seen.headers['x-envoy-attempt-count']).toBeUndefined();
      expect(seen.headers['x-request-id']).toBeUndefined();
      expect(upstream.requests.length).toBe(before + 1);
    }
  });

  it('CONNECT ignores HTTP routes: a tunnel to ratings reaches ratings', async () => {
    const res = await curl(['-p', '-x', proxyUrl, 'http://ratings:9080/to-reviews']);
    expect(res.connectStatus).toBe(200);
    expect(JSON.parse(res.body).server).toBe('ratings');
  });

  it('CONNECT to an address outside the registry connects to it under ALLOW_ANY', async () => {
    const res = await curl(['-p', '-x', proxyUrl, `http://127.0.0.1:${outside.port}/t`]);
    expect(res.connectStatus).toBe(200);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body).server).toBe('outside');
  });

  it('bytes sent right after the CONNECT head reach the upstream', async () => {
    const { text } = await rawExchange(
      proxy.port,
      'CONNECT reviews:9080 HTTP/1.1\r\nHost: reviews:9080\r\n\r\nGET /early HTTP/1.1\r\nHost: reviews\r\nConnection: close\r\n\r\n',
    );
    expect(text.startsWith('HTTP/1.1 200 ')).toBe(true);
    expect(text).toMatch(/\r\n\r\nHTTP\/1\.1 200 OK\r\n/);
    expect(text).toContain('"url":"/early"');
  });

  it('CONNECT to an endpoint with nothing listening: 503', async () => {
    const res = await curl(['-p', '-x', proxyUrl, 'http://dead:9080/']);
    expect(res.connectStatus).toBe(503);
    expect(res.exit).not.toBe(0);
    const { text } = await rawExchange(proxy.port, 'CONNECT dead:9080 HTTP/1.1\r\nHost: dead:9080\r\n\r\n');
    expect(text).toMatch(/^HTTP\/1\.1 503 /);
    expect(text).toContain(
      'upstream connect error or disconnect/reset before headers. reset reason: remote connection failure, transport failure reason: delayed connect error: 111',
    );
  });
});

describe('forward proxy (REGISTRY_ONLY)', () => {
  let reviews: Upstream;
  let outside: Upstream;
  let proxy: TestProxy;
  let proxyUrl: string;

  beforeAll(async () => {
    [reviews, outside] = await Promise.all([startUpstream('reviews'), startUpstream('outside')]);
    proxy = await startProxy({
      'mesh.yaml': yamlDocs(meshConfig({ outboundTrafficPolicy: { mode: 'REGISTRY_ONLY' } }), httpService('reviews', 9080, [reviews.port])),
    });
    proxyUrl = `http://127.0.0.1:${proxy.port}`;
  });

  afterAll(async () => {
    await proxy?.close();
    await Promise.all([reviews?.close(), outside?.close()]);
  });

  it('CONNECT to an address outside the registry is refused with 502', async () => {
    const res = await curl(['-p', '-x', proxyUrl, `http://127.0.0.1:${outside.port}/`]);
    expect(res.connectStatus).toBe(502);
    expect(res.exit).not.toBe(0);
    expect(outside.requests).toHaveLength(0);
  });

  it('a plain proxied request outside the registry gets 502 too', async () => {
    const res = await curl(['-x', proxyUrl, `http://127.0.0.1:${outside.port}/`]);
    expect(res.status).toBe(502);
    expect(res.body).toBe('');
    expect(outside.requests).toHaveLength(0);
  });

  it('registry services still work, proxied and tunneled', async () => {
    expect(JSON.parse((await curl(['-x', proxyUrl, 'http://reviews:9080/a'])).body).server).toBe('reviews');
    const tunneled = await curl(['-p', '-x', proxyUrl, 'http://reviews:9080/b']);
    expect(tunneled.connectStatus).toBe(200);
    expect(JSON.parse(tunneled.body).server).toBe('reviews');
  });
});
