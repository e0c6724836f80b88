/**
 * Istio's rewritten application probes: ISTIO_KUBE_APP_PROBERS parsed into probes, and probes
 * run against real servers on port 0.
 */
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAppProbers, runProbe, type AppProbe } from '../../src/admin/app-probes.js';
import { closedPort } from '../helpers/ports.js';

/** The JSON the injector writes for a container `app` with an httpGet liveness probe. */
const ISTIO_HTTP_PROBERS = JSON.stringify({
  '/app-health/app/livez': {
    httpGet: { path: '/healthz', port: 8080, scheme: 'HTTP', httpHeaders: [{ name: 'X-A', value: 'b' }] },
    timeoutSeconds: 2,
  },
});

describe('parseAppProbers', () => {
  it("accepts Istio's httpGet form, keyed by the /app-health/ path", () => {
    const probes = parseAppProbers(ISTIO_HTTP_PROBERS);
    expect([...probes.keys()]).toEqual(['/app-health/app/livez']);
    expect(probes.get('/app-health/app/livez')).toEqual({
      kind: 'http',
      host: undefined,
      port: 8080,
      path: '/healthz',
      https: false,
      headers: [['X-A', 'b']],
      timeoutMs: 2000,
    });
  });

  it('accepts tcpSocket probes and several containers and kinds at once', () => {
    const probes = parseAppProbers(
      JSON.stringify({
        '/app-health/app/readyz': { tcpSocket: { port: 3306 }, timeoutSeconds: 3 },
        '/app-health/app/startupz': { tcpSocket: { host: '10.0.0.7', port: 3306 } },
        '/app-health/web/livez': { httpGet: { path: '/live', port: 9000, scheme: 'HTTPS', host: 'web.local' } },
      }),
    );
    expect(probes.get('/app-health/app/readyz')).toEqual({ kind: 'tcp', host: undefined, port: 3306, timeoutMs: 3000 });
    expect(probes.get('/app-health/app/startupz')).toEqual({ kind: 'tcp', host: '10.0.0.7', port: 3306, timeoutMs: 1000 });
    expect(probes.get('/app-health/web/livez')).toMatchObject({ kind: 'http', host: 'web.local', port: 9000, path: '/live', https: true });
  });

  it("uses Kubernetes' defaults: timeoutSeconds 1, path /, no headers; a path gains its leading slash", () => {
    const probes = parseAppProbers(
      JSON.stringify({
        '/app-health/a/livez': { httpGet: { port: 8080 } },
        '/app-health/a/readyz': { httpGet: { port: 8080, path: 'ready' }, timeoutSeconds: 0 },
      }),
    );
    expect(probes.get('/app-health/a/livez')).toEqual({ kind: 'http', host: undefined, port: 8080, path: '/', https: false, headers: [], timeoutMs: 1000 });
    expect(probes.get('/app-health/a/readyz')).toMatchObject({ path: '/ready', timeoutMs: 1000 });
  });

  it('accepts an empty object (no probes rewritten)', () => {
    expect(parseAppProbers('{}').size).toBe(0);
  });

  it('refuses a key that is not an /app-health/ path, naming it', () => {
    expect(() => parseAppProbers(JSON.stringify({ '/healthz': { httpGet: { port: 8080 } } }))).toThrow(/"\/healthz" is not an \/app-health\/ path/);
  });

  it('refuses a probe without a port, naming the path and the port field', () => {
    const text = JSON.stringify({ '/app-health/app/livez': { httpGet: { path: '/healthz' } } });
    expect(() => parseAppProbers(text)).toThrow('ISTIO_KUBE_APP_PROBERS["/app-health/app/livez"].httpGet.port: expected a port number');
  });

  it('refuses an entry that is not an object, and header names that are not tokens, naming the field', () => {
    expect(() => parseAppProbers(JSON.stringify({ '/app-health/a/livez': null }))).toThrow('ISTIO_KUBE_APP_PROBERS["/app-health/a/livez"]: expected a probe object');
    for (const header of [{ value: 'b' }, { name: 'bad name', value: 'b' }, null]) {
      const text = JSON.stringify({ '/app-health/a/livez': { httpGet: { port: 80, httpHeaders: [header] } } });
      expect(() => parseAppProbers(text)).toThrow('ISTIO_KUBE_APP_PROBERS["/app-health/a/livez"].httpGet.httpHeaders[0].name: expected a header name');
    }
    expect(() => parseAppProbers('{not json')).toThrow(/^ISTIO_KUBE_APP_PROBERS: not JSON/);
    for (const port of [true, [80], ' 80 ']) {
      expect(() => parseAppProbers(JSON.stringify({ '/app-health/a/readyz': { tcpSocket: { port } } }))).toThrow('tcpSocket.port: expected a port number');
    }
  });

  it.each([0, 65536, -1, 80.5, 'http'])('refuses port %j', (port) => {
    const text = JSON.stringify({ '/app-health/app/readyz': { tcpSocket: { port } } });
    expect(() => parseAppProbers(text)).toThrow(`ISTIO_KUBE_APP_PROBERS["/app-health/app/readyz"].tcpSocket.port: expected a port number, got ${JSON.stringify(port)}`);
  });

  it('refuses exec probes (and any other kind), naming the path', () => {
    const exec = JSON.stringify({ '/app-health/app/livez': { exec: { command: ['cat', '/tmp/healthy'] } } });
    expect(() => parseAppProbers(exec)).toThrow('ISTIO_KUBE_APP_PROBERS["/app-health/app/livez"]: only httpGet and tcpSocket probes are supported');
    const grpc = JSON.stringify({ '/app-health/app/readyz': { grpc: { port: 9090 } } });
    expect(() => parseAppProbers(grpc)).toThrow('ISTIO_KUBE_APP_PROBERS["/app-health/app/readyz"]: only httpGet and tcpSocket probes are supported');
  });

  it('refuses JSON that is not an object keyed by paths', () => {
    for (const text of ['[]', 'null', '"x"', '3']) expect(() => parseAppProbers(text), text).toThrow(/expected a JSON object keyed by \/app-health\/ paths/);
    expect(() => parseAppProbers('{not json')).toThrow();
  });
});

describe('runProbe against real servers', () => {
  let server: Server;
  let port: number;
  /** What the server received, newest last. */
  const seen: Array<{ url: string; headers: IncomingHttpHeaders }> = [];
  /** Responses held open (never answered) until the end. */
  const held: ServerResponse[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      seen.push({ url: req.url ?? '', headers: req.headers });
      const m = /^\/status\/(\d{3})$/.exec(req.url ?? '');
      if (req.url === '/hang') {
        held.push(res);
        return;
      }
      if (m !== null) {
        res.writeHead(Number(m[1]), m[1]!.startsWith('3') ? { location: '/elsewhere' } : {});
        res.end('status body');
        return;
      }
      res.writeHead(200);
      res.end('ok');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    for (const res of held) res.destroy();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const httpProbe = (path: string, extra: Partial<Extract<AppProbe, { kind: 'http' }>> = {}): AppProbe => ({
    kind: 'http',
    host: undefined,
    port,
    path,
    https: false,
    headers: [],
    timeoutMs: 2000,
    ...extra,
  });

  it('sends the configured headers (parsed from the Istio form) with a kube-probe user agent', async () => {
    const json = JSON.stringify({
      '/app-health/app/livez': {
        httpGet: { path: '/healthz', port, scheme: 'HTTP', httpHeaders: [{ name: 'X-A', value: 'b' }, { name: 'X-Custom-Header', value: 'Awesome' }] },
        timeoutSeconds: 2,
      },
    });
    const probe = parseAppProbers(json).get('/app-health/app/livez')!;
    const before = seen.length;
    expect(await runProbe(probe, '127.0.0.1')).toEqual({ status: 200, body: '' });
    expect(seen.length).toBe(before + 1);
    const got = seen[seen.length - 1]!;
    expect(got.url).toBe('/healthz');
    expect(got.headers['x-a']).toBe('b');
    expect(got.headers['x-custom-header']).toBe('Awesome');
    expect(got.headers['user-agent']).toMatch(/^kube-probe\//);
  });

  it('lets a configured Host header replace the default one', async () => {
    await runProbe(httpProbe('/host', { headers: [['Host', 'app.example']] }), '127.0.0.1');
    expect(seen[seen.length - 1]!.headers.host).toBe('app.example');
  });

  it('counts 2xx and 3xx as success, as the kubelet does', async () => {
    for (const code of [200, 204, 301, 302]) expect(await runProbe(httpProbe(`/status/${code}`), '127.0.0.1'), String(code)).toEqual({ status: 200, body: '' });
  });

  it("answers the application's own status for 4xx and 5xx", async () => {
    for (const code of [404, 500, 503]) {
      const result = await runProbe(httpProbe(`/status/${code}`), '127.0.0.1');
      expect(result.status, String(code)).toBe(code);
      expect(result.body).toContain(String(code));
    }
  });

  it('answers 500 when the application cannot be reached or does not answer in time', async () => {
    const dead = await closedPort();
    const refused = await runProbe(httpProbe('/healthz', { port: dead }), '127.0.0.1');
    expect(refused.status).toBe(500);
    expect(refused.body).toContain(`127.0.0.1:${dead}/healthz`);
    const started = Date.now();
    const slow = await runProbe(httpProbe('/hang', { timeoutMs: 150 }), '127.0.0.1');
    expect(slow.status).toBe(500);
    expect(slow.body).toMatch(/timed out/);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('goes to the default host unless the probe names one', async () => {
    // 192.0.2.1 (TEST-NET-1) answers nothing: only the probe's own host can make this pass.
    expect((await runProbe(httpProbe('/named', { host: '127.0.0.1' }), '192.0.2.1')).status).toBe(200);
    expect(seen[seen.length - 1]!.url).toBe('/named');
  });

  it('tcp: 200 once a connection opens, 500 on a closed port', async () => {
    expect(await runProbe({ kind: 'tcp', host: undefined, port, timeoutMs: 1000 }, '127.0.0.1')).toEqual({ status: 200, body: '' });
    const dead = await closedPort();
    const closed = await runProbe({ kind: 'tcp', host: undefined, port: dead, timeoutMs: 1000 }, '127.0.0.1');
    expect(closed.status).toBe(500);
    expect(closed.body).toContain(`127.0.0.1:${dead}`);
  });
});
