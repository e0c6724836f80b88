/**
 * Every reply the proxy makes itself, byte for byte as Envoy (istio-proxy) makes it: status,
 * body, and the headers a local reply carries (`server: envoy`, `date`, `content-length`, and
 * `content-type: text/plain` when there is a body).
 */
import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, rawExchange, statusOf, type Response } from '../helpers/client.js';
import { destinationRule, httpService, meshConfig, staticService, virtualService, yamlDocs } from '../helpers/istio-docs.js';
import { closedPort } from '../helpers/ports.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

const RESET = 'upstream connect error or disconnect/reset before headers. reset reason: ';
/** Istio's default retry policy retries connect failures twice; the body says so. */
const RETRIED_RESET = 'upstream connect error or disconnect/reset before headers. retried and the latest reset reason: ';
const IMF_DATE = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$/;

/** A raw TCP "upstream" that does `onData` with each connection's first bytes. */
async function rawServer(onData: (socket: import('node:net').Socket) => void): Promise<{ server: Server; port: number }> {
  const server = createServer((socket) => {
    socket.on('error', () => undefined);
    socket.once('data', () => onData(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port };
}


/** Asserts the headers every local reply carries, and the body. */
function expectLocalReply(res: Response, status: number, body: string): void {
  expect(res.status).toBe(status);
  expect(res.text()).toBe(body);
  expect(res.headers['server']).toBe('envoy');
  expect(res.headers['date']).toMatch(IMF_DATE);
  expect(res.headers['content-length']).toBe(String(Buffer.byteLength(body)));
  expect(res.headers['content-type']).toBe(body === '' ? undefined : 'text/plain');
  expect(res.headers['x-envoy-upstream-service-time']).toBeUndefined();
}

describe('local replies', () => {
  let ok: Upstream;
  let hanging: Upstream;
  const held: Array<() => void> = [];
  let garbage: { server: Server; port: number };
  let closer: { server: Server; port: number };
  let ssh: { server: Server; port: number };
  let proxy: TestProxy;

  beforeAll(async () => {
    ok = await startUpstream('ok');
    hanging = await startUpstream('hanging', (_req, res) => {
      held.push(() => res.end());
      return true;
    });
    garbage = await rawServer((socket) => socket.write('garbage\r\n\r\n'));
    // A server-first protocol that greets and then waits: the proxy must not wait with it.
    ssh = await rawServer((socket) => socket.write('SSH-2.0-OpenSSH_9.2\r\n'));
    closer = await rawServer((socket) => socket.destroy());
    const refusedPort = await closedPort();
    proxy = await startProxy({
      'mesh.yaml': yamlDocs(
        httpService('ok', 80, [ok.port]),
        httpService('tagged', 80, [ok.port]),
        staticService('empty', [{ number: 80, name: 'http' }], []),
        staticService(
          'versions',
          [{ number: 80, name: 'http' }],
          [{ ports: { http: ok.port }, labels: { version: 'v1' } }],
        ),
        destinationRule('versions', {
          host: 'versions',
          subsets: [
            { name: 'v1', labels: { version: 'v1' } },
            { name: 'v9', labels: { version: 'v9' } },
          ],
        }),
        virtualService('versions', {
          hosts: ['versions'],
          http: [
            { match: [{ uri: { prefix: '/v9' } }], route: [{ destination: { host: 'versions', subset: 'v9' } }] },
            { match: [{ uri: { prefix: '/undefined' } }], route: [{ destination: { host: 'versions', subset: 'nope' } }] },
            { match: [{ uri: { prefix: '/unknown-host' } }], route: [{ destination: { host: 'not-in-registry' } }] },
            { match: [{ uri: { prefix: '/v1' } }], route: [{ destination: { host: 'versions', subset: 'v1' } }] },
          ],
        }),
        httpService('refused', 80, [refusedPort]),
        httpService('garbage', 80, [garbage.port]),
        httpService('closer', 80, [closer.port]),
        httpService('ssh', 80, [ssh.port]),
        httpService('slow', 80, [hanging.port]),
        virtualService('slow', { hosts: ['slow'], http: [{ timeout: '0.2s', route: [{ destination: { host: 'slow' } }] }] }),
        // The same failures behind a route with response header operations.
        virtualService('tagged', {
          hosts: ['tagged'],
          http: [
            ['/nc', 'versions', 'nope'],
            ['/uh', 'empty'],
            ['/uf', 'refused'],
            ['/upe', 'garbage'],
            ['/uc', 'closer'],
            ['/ut', 'slow'],
          ].map(([prefix, host, subset]) => ({
            match: [{ uri: { prefix } }],
            ...(prefix === '/ut' ? { timeout: '0.1s' } : {}),
            route: [{ destination: { host, ...(subset !== undefined ? { subset } : {}) }, headers: { response: { set: { 'x-destination': host } } } }],
            headers: { response: { set: { 'x-route': prefix }, add: { 'x-added': 'a' }, remove: ['x-removed'] } },
          })),
        }),
      ),
    });
  });

  afterAll(async () => {
    for (const release of held.splice(0)) release();
    await proxy?.close();
    await Promise.all([ok?.close(), hanging?.close()]);
    for (const s of [garbage, closer, ssh]) if (s !== undefined) await new Promise<void>((r) => s.server.close(() => r()));
  });

  it('404 NR: no route matches (empty body)', async () => {
    expectLocalReply(await get(proxy.port, 'versions', '/nothing'), 404, '');
  });

  it('503 no healthy upstream: a STATIC service without endpoints', async () => {
    expectLocalReply(await get(proxy.port, 'empty', '/'), 503, 'no healthy upstream');
  });

  it('503 no healthy upstream: a subset no endpoint carries the labels of', async () => {
    expectLocalReply(await get(proxy.port, 'versions', '/v9'), 503, 'no healthy upstream');
    // The subset that has an endpoint works.
    expect((await get(proxy.port, 'versions', '/v1')).json().server).toBe('ok');
  });

  it('503 NC (empty body): a route to a subset no DestinationRule defines', async () => {
    const before = ok.requests.length;
    expectLocalReply(await get(proxy.port, 'versions', '/undefined'), 503, '');
    expect(ok.requests.length).toBe(before);
  });

  it('503 NC (empty body): a route to a host outside the registry', async () => {
    expectLocalReply(await get(proxy.port, 'versions', '/unknown-host'), 503, '');
  });

  it('503 UF: connect failure to an endpoint with nothing listening (after the default 2 retries)', async () => {
    const res = await get(proxy.port, 'refused', '/');
    expectLocalReply(res, 503, `${RETRIED_RESET}remote connection failure, transport failure reason: delayed connect error: 111`);
  });

  it('502 UPE: the upstream answers something that is not HTTP', async () => {
    expectLocalReply(await get(proxy.port, 'garbage', '/'), 502, `${RESET}protocol error`);
  });

  it('502 UPE at once: the upstream greets with a non-HTTP line and keeps the connection open', async () => {
    expectLocalReply(await get(proxy.port, 'ssh', '/'), 502, `${RESET}protocol error`);
  });

  it('503 UC: the upstream closes the connection without answering', async () => {
    expectLocalReply(await get(proxy.port, 'closer', '/'), 503, `${RESET}connection termination`);
    // Again on a new connection: the same.
    expectLocalReply(await get(proxy.port, 'closer', '/again'), 503, `${RESET}connection termination`);
  });

  it('504 UT: the route timeout expires before the upstream answers', async () => {
    expectLocalReply(await get(proxy.port, 'slow', '/'), 504, 'upstream request timeout');
    expect(hanging.requests.length).toBeGreaterThan(0);
  });

  it("a route's response header operations apply to the local replies made after routing", async () => {
    const cases: Array<[string, string, number, string]> = [
      ['/nc', 'versions', 503, ''],
      ['/uh', 'empty', 503, 'no healthy upstream'],
      ['/uf', 'refused', 503, `${RETRIED_RESET}remote connection failure, transport failure reason: delayed connect error: 111`],
      ['/upe', 'garbage', 502, `${RESET}protocol error`],
      ['/uc', 'closer', 503, `${RESET}connection termination`],
      ['/ut', 'slow', 504, 'upstream request timeout'],
    ];
    for (const [path, destination, status, body] of cases) {
      const res = await get(proxy.port, 'tagged', path);
      expectLocalReply(res, status, body);
      expect(res.headers['x-route'], path).toBe(path);
      expect(res.headers['x-added'], path).toBe('a');
      expect(res.headers['x-destination'], path).toBe(destination);
    }
    // No route, no route headers.
    const none = await get(proxy.port, 'tagged', '/none');
    expectLocalReply(none, 404, '');
    expect(none.headers['x-route']).toBeUndefined();
  });

  it('a local reply keeps the connection open for the next request', async () => {
    const { text, closed } = await rawExchange(
      proxy.port,
      'GET /nothing HTTP/1.1\r\nHost: versions\r\n\r\nGET / HTTP/1.1\r\nHost: empty\r\n\r\nGET /v1 HTTP/1.1\r\nHost: versions\r\n\r\n',
    );
    expect(closed).toBe(false);
    const statuses = [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
    expect(statuses).toEqual([404, 503, 200]);
    expect(text).not.toMatch(/^connection: close/im);
  });

  it('400 for a malformed request, with the reason phrase as body, then close', async () => {
    const { text, closed } = await rawExchange(proxy.port, 'GET / HTTP/1.1\r\nHost: ok\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n');
    expect(statusOf(text)).toBe(400);
    expect(closed).toBe(true);
    const [head, body] = text.split('\r\n\r\n') as [string, string];
    expect(body).toBe('Bad Request');
    expect(head).toMatch(/^content-length: 11$/im);
    expect(head).toMatch(/^content-type: text\/plain$/im);
    expect(head).toMatch(/^server: envoy$/im);
    expect(head).toMatch(/^connection: close$/im);
    expect(head.match(/^date: (.*)$/im)?.[1]).toMatch(IMF_DATE);
  });

  it('400 for a request line that is not HTTP', async () => {
    const { text, closed } = await rawExchange(proxy.port, 'HELLO THERE\r\n\r\n');
    expect(statusOf(text)).toBe(400);
    expect(text.endsWith('\r\n\r\nBad Request')).toBe(true);
    expect(closed).toBe(true);
  });

  it('426 with an empty body for HTTP/1.0 (Istio does not enable it)', async () => {
    const { text } = await rawExchange(proxy.port, 'GET / HTTP/1.0\r\nHost: ok\r\n\r\n');
    expect(statusOf(text)).toBe(426);
    expect(text).toMatch(/^content-length: 0$/im);
    expect(text.endsWith('\r\n\r\n')).toBe(true);
    expect(ok.requests.every((r) => r.httpVersion === '1.1')).toBe(true);
  });
});

describe('local replies under REGISTRY_ONLY', () => {
  let ok: Upstream;
  let outside: Upstream;
  let proxy: TestProxy;

  beforeAll(async () => {
    [ok, outside] = await Promise.all([startUpstream('ok'), startUpstream('outside')]);
    proxy = await startProxy({
      'mesh.yaml': yamlDocs(meshConfig({ outboundTrafficPolicy: { mode: 'REGISTRY_ONLY' } }), httpService('ok', 9080, [ok.port])),
    });
  });

  afterAll(async () => {
    await proxy?.close();
    await Promise.all([ok?.close(), outside?.close()]);
  });

  it('502 with an empty body for a host outside the registry', async () => {
    expectLocalReply(await get(proxy.port, `127.0.0.1:${outside.port}`, '/'), 502, '');
    expectLocalReply(await get(proxy.port, 'example.com', '/'), 502, '');
    // A name of a service in another namespace is not this service.
    expectLocalReply(await get(proxy.port, 'ok.other:9080', '/'), 502, '');
    expect(outside.requests).toHaveLength(0);
    expect(ok.requests).toHaveLength(0);
  });

  it('502 for a registry host on a port the service does not have', async () => {
    expectLocalReply(await get(proxy.port, 'ok:9999', '/'), 502, '');
  });

  it('registry hosts are still served', async () => {
    const res = await get(proxy.port, 'ok', '/fine');
    expect(res.status).toBe(200);
    expect(res.json().server).toBe('ok');
  });
});
