/**
 * What a route does to a request besides choosing its destination: path and authority
 * rewrites, redirects, direct responses and header operations, end to end through the real
 * proxy, with Envoy's exact results as Istio configures it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, request } from '../helpers/client.js';
import { destinationRule, staticService, virtualService, yamlDocs, type Resource } from '../helpers/istio-docs.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

const WEB = 'web';
const WEB9 = 'web9';

/** A route for paths under `prefix`; without an action of its own it forwards to `web`. */
function prefixRoute(prefix: string, rest: Resource): Resource {
  const hasAction = 'route' in rest || 'redirect' in rest || 'directResponse' in rest;
  return { match: [{ uri: { prefix } }], ...(hasAction ? {} : { route: [{ destination: { host: WEB } }] }), ...rest };
}

describe('rewrites, redirects, direct responses and headers', () => {
  let backend: Upstream;
  let proxy: TestProxy;

  beforeAll(async () => {
    backend = await startUpstream('backend', (req, res) => {
      if (req.url !== '/with-response-headers') return false;
      res.writeHead(200, { 'x-upstream-a': 'ua', 'x-upstream-b': 'ub', 'x-upstream-c': 'uc', 'content-length': '2' });
      res.end('ok');
      return true;
    });
    const endpoints = [
      { ports: { http: backend.port }, labels: { version: 'v1' } },
      { ports: { http: backend.port }, labels: { version: 'v2' } },
    ];
    proxy = await startProxy({
      'mesh.yaml': yamlDocs(
        staticService(WEB, [{ number: 80, name: 'http' }], endpoints),
        staticService(WEB9, [{ number: 9080, name: 'http' }], endpoints),
        destinationRule(WEB, {
          host: WEB,
          subsets: [
            { name: 'v1', labels: { version: 'v1' } },
            { name: 'v2', labels: { version: 'v2' } },
          ],
        }),
        virtualService(WEB, {
          hosts: [WEB],
          http: [
            // === rewrites ===
            prefixRoute('/api/', { rewrite: { uri: '/v2/' } }),
            prefixRoute('/old', { rewrite: { uri: '/new' } }),
            { match: [{ uri: { exact: '/exact-rw' } }], rewrite: { uri: '/replaced' }, route: [{ destination: { host: WEB } }] },
            prefixRoute('/svc/', { rewrite: { uriRegexRewrite: { match: '^/svc/([^/]+)/(.*)$', rewrite: '/\\2/instance/\\1' } } }),
            prefixRoute('/dash', { rewrite: { uriRegexRewrite: { match: '-', rewrite: '_' } } }),
            prefixRoute('/nomatch-regex', { rewrite: { uriRegexRewrite: { match: 'zzz', rewrite: 'y' } } }),
            prefixRoute('/authority', { rewrite: { authority: 'rewritten.example.com' } }),
            prefixRoute('/both', { rewrite: { uri: '/combined', authority: 'both.example.com:8080' } }),
            // === headers ===
            prefixRoute('/headers/request', {
              headers: {
                request: {
                  set: { 'x-set': 'route-set', 'x-both': 'set-by-route' },
                  add: { 'x-add': 'route-add', 'x-new-add': 'only' },
                  remove: ['x-remove-me', 'x-both'],
                },
              },
            }),
            prefixRoute('/headers/authority-set', { headers: { request: { set: { ':authority': 'set-authority.example' } } } }),
            prefixRoute('/headers/host-add', { headers: { request: { add: { host: 'added-host.example' } } } }),
            prefixRoute('/headers/destination', {
              headers: { request: { set: { 'x-route': 'r' }, add: { 'x-order': 'route-add' } }, response: { set: { 'x-route-resp': 'r' } } },
              route: [
                {
                  destination: { host: WEB },
                  headers: {
                    request: { set: { 'x-dest': 'd', 'x-order': 'dest-set' }, add: { 'x-route': 'from-dest' } },
                    response: { set: { 'x-dest-resp': 'd' } },
                  },
                },
              ],
            }),
            prefixRoute('/headers/weighted', {
              headers: { request: { remove: ['x-cluster-only'], set: { 'x-level': 'route' } }, response: { set: { 'x-level-resp': 'route' } } },
              rewrite: { authority: 'route-level.example' },
              route: [
                {
                  destination: { host: WEB, subset: 'v1' },
                  weight: 50,
                  headers: {
                    request: { set: { ':authority': 'v1.example', 'x-cluster-only': 'v1', 'x-level': 'v1', 'x-subset': 'v1' } },
                    response: { set: { 'x-level-resp': 'v1', 'x-subset-resp': 'v1' } },
                  },
                },
                {
                  destination: { host: WEB, subset: 'v2' },
                  weight: 50,
                  headers: {
                    request: { set: { ':authority': 'v2.example', 'x-cluster-only': 'v2', 'x-level': 'v2', 'x-subset': 'v2' } },
                    response: { set: { 'x-level-resp': 'v2', 'x-subset-resp': 'v2' } },
                  },
                },
              ],
            }),
            prefixRoute('/headers/split-authority', {
              route: [
                { destination: { host: WEB, subset: 'v1' }, weight: 50, headers: { request: { set: { ':authority': 'v1.example' } } } },
                { destination: { host: WEB, subset: 'v2' }, weight: 50, headers: { request: { set: { ':authority': 'v2.example' } } } },
              ],
            }),
            prefixRoute('/with-response-headers', {
              headers: { response: { set: { 'x-upstream-a': 'replaced', 'x-added': 'new' }, add: { 'x-upstream-b': 'more' }, remove: ['x-upstream-c'] } },
            }),
            // === redirects ===
            prefixRoute('/r/uri', { redirect: { uri: '/new-place' } }),
            prefixRoute('/r/query', { redirect: { uri: '/q-place?fixed=1' } }),
            prefixRoute('/r/authority', { redirect: { authority: 'elsewhere.example.com' } }),
            prefixRoute('/r/scheme', { redirect: { scheme: 'https' } }),
            prefixRoute('/r/port', { redirect: { port: 8443 } }),
            prefixRoute('/r/default-port', { redirect: { scheme: 'https', derivePort: 'FROM_PROTOCOL_DEFAULT' } }),
            prefixRoute('/r/request-port', { redirect: { scheme: 'https', derivePort: 'FROM_REQUEST_PORT' } }),
            prefixRoute('/r/all', { redirect: { uri: '/all', authority: 'all.example', scheme: 'https', port: 9443, redirectCode: 308 } }),
            prefixRoute('/r/302', { redirect: { uri: '/found', redirectCode: 302 } }),
            prefixRoute('/r/307', { redirect: { uri: '/temp', redirectCode: 307 } }),
            prefixRoute('/r/headers', { redirect: { uri: '/h' }, headers: { response: { set: { 'x-redirect': 'yes' } } } }),
            // === direct responses ===
            prefixRoute('/direct/string', { directResponse: { status: 200, body: { string: 'hello, world' } } }),
            prefixRoute('/direct/bytes', { directResponse: { status: 503, body: { bytes: Buffer.from([0, 1, 2, 0xff, 0x0a]).toString('base64') } } }),
            prefixRoute('/direct/empty', { directResponse: { status: 418 }, headers: { response: { set: { 'x-direct': 'yes' } } } }),
            prefixRoute('/direct/moved', { directResponse: { status: 301 } }),
            prefixRoute('/', {}),
          ],
        }),
        virtualService(WEB9, {
          hosts: [WEB9],
          http: [
            prefixRoute('/r/scheme', { redirect: { scheme: 'https' } }),
            prefixRoute('/r/port80', { redirect: { port: 80 } }),
            prefixRoute('/r/port', { redirect: { port: 8443 } }),
            prefixRoute('/r/default-port', { redirect: { scheme: 'https', derivePort: 'FROM_PROTOCOL_DEFAULT' } }),
            prefixRoute('/r/request-port-http', { redirect: { derivePort: 'FROM_REQUEST_PORT', authority: 'other' } }),
            prefixRoute('/r/request-port', { redirect: { scheme: 'https', derivePort: 'FROM_REQUEST_PORT' } }),
          ],
        }),
      ),
    });
  });

  afterAll(async () => {
    await proxy?.close();
    await backend?.close();
  });

  /** The request the upstream received for a GET through the proxy. */
  async function sent(path: string, headers: Record<string, string> = {}, host = WEB) {
    const before = backend.requests.length;
    const res = await get(proxy.port, host, path, headers);
    expect(res.status).toBe(200);
    expect(backend.requests.length).toBe(before + 1);
    return { res, req: backend.requests.at(-1)! };
  }

  describe('rewrite', () => {
    it('rewrite.uri replaces the matched prefix and keeps the query; x-envoy-original-path carries the original', async () => {
      const { req } = await sent('/api/users?id=1&x=%20y');
      expect(req.url).toBe('/v2/users?id=1&x=%20y');
      expect(req.headers['x-envoy-original-path']).toBe('/api/users?id=1&x=%20y');
    });

    it('the prefix replaced is the raw string prefix', async () => {
      expect((await sent('/old/x')).req.url).toBe('/new/x');
      expect((await sent('/older?a=b')).req.url).toBe('/newer?a=b');
      expect((await sent('/old')).req.url).toBe('/new');
    });

    it('with an exact match the whole path is replaced, the query kept', async () => {
      const { req } = await sent('/exact-rw?q=1');
      expect(req.url).toBe('/replaced?q=1');
      expect(req.headers['x-envoy-original-path']).toBe('/exact-rw?q=1');
    });

    it('uriRegexRewrite substitutes \\N groups in the path only', async () => {
      const { req } = await sent('/svc/foo/bar/baz?x=/svc/a/b');
      expect(req.url).toBe('/bar/baz/instance/foo?x=/svc/a/b');
      expect(req.headers['x-envoy-original-path']).toBe('/svc/foo/bar/baz?x=/svc/a/b');
    });

    it('uriRegexRewrite replaces every match', async () => {
      expect((await sent('/dash-a-b?q=x-y')).req.url).toBe('/dash_a_b?q=x-y');
    });

    it('a configured rewrite that changes nothing still records x-envoy-original-path', async () => {
      const { req } = await sent('/nomatch-regex/a');
      expect(req.url).toBe('/nomatch-regex/a');
      expect(req.headers['x-envoy-original-path']).toBe('/nomatch-regex/a');
    });

    it('no rewrite, no x-envoy-original-path', async () => {
      const { req } = await sent('/plain?x=1');
      expect(req.url).toBe('/plain?x=1');
      expect(req.headers['x-envoy-original-path']).toBeUndefined();
    });

    it('rewrite.authority replaces the Host sent upstream', async () => {
      const { req } = await sent('/authority/x');
      expect(req.url).toBe('/authority/x');
      expect(req.headers['host']).toBe('rewritten.example.com');
      expect(req.rawHeaders.filter((h) => h.toLowerCase() === 'host')).toHaveLength(1);
    });

    it('uri and authority rewrites together', async () => {
      const { req } = await sent('/both/deep?k=v');
      expect(req.url).toBe('/combined/deep?k=v');
      expect(req.headers['host']).toBe('both.example.com:8080');
    });
  });

  describe('redirect', () => {
    async function redirect(path: string, host = WEB): Promise<{ status: number; location: string | undefined }> {
      const before = backend.requests.length;
      const res = await get(proxy.port, host, path);
      expect(backend.requests.length).toBe(before);
      expect(res.body.length).toBe(0);
      expect(res.headers['server']).toBe('envoy');
      return { status: res.status, location: res.headers['location'] as string | undefined };
    }

    it('uri replaces the path, keeping the query; the default code is 301', async () => {
      expect(await redirect('/r/uri')).toEqual({ status: 301, location: 'http://web/new-place' });
      expect(await redirect('/r/uri/deeper?a=1&b=2')).toEqual({ status: 301, location: 'http://web/new-place?a=1&b=2' });
      expect(await redirect('/r/uri', 'web:80')).toEqual({ status: 301, location: 'http://web:80/new-place' });
    });

    it('a uri with a query replaces the query too', async () => {
      expect(await redirect('/r/query?a=1')).toEqual({ status: 301, location: 'http://web/q-place?fixed=1' });
    });

    it('authority replaces the host and keeps the path and query', async () => {
      expect(await redirect('/r/authority/p?x=1')).toEqual({ status: 301, location: 'http://elsewhere.example.com/r/authority/p?x=1' });
    });

    it('scheme: a default port of the old scheme is dropped, any other kept', async () => {
      expect(await redirect('/r/scheme?x=1')).toEqual({ status: 301, location: 'https://web/r/scheme?x=1' });
      expect(await redirect('/r/scheme', 'web:80')).toEqual({ status: 301, location: 'https://web/r/scheme' });
      expect(await redirect('/r/scheme', 'web9:9080')).toEqual({ status: 301, location: 'https://web9:9080/r/scheme' });
    });

    it('port replaces the request port', async () => {
      expect(await redirect('/r/port')).toEqual({ status: 301, location: 'http://web:8443/r/port' });
      expect(await redirect('/r/port/x', 'web9:9080')).toEqual({ status: 301, location: 'http://web9:8443/r/port/x' });
    });

    it('port 80 on http is left out, so the request authority is kept as sent (Istio drops it)', async () => {
      expect(await redirect('/r/port80', 'web9:9080')).toEqual({ status: 301, location: 'http://web9:9080/r/port80' });
      expect(await redirect('/r/port80', 'web9')).toEqual({ status: 301, location: 'http://web9/r/port80' });
    });

    it('derivePort FROM_PROTOCOL_DEFAULT sets no port: only the old scheme default is dropped', async () => {
      expect(await redirect('/r/default-port')).toEqual({ status: 301, location: 'https://web/r/default-port' });
      expect(await redirect('/r/default-port', 'web:80')).toEqual({ status: 301, location: 'https://web/r/default-port' });
      expect(await redirect('/r/default-port', 'web9:9080')).toEqual({ status: 301, location: 'https://web9:9080/r/default-port' });
    });

    it('derivePort FROM_REQUEST_PORT uses the service port the request addressed', async () => {
      expect(await redirect('/r/request-port', 'web9:9080')).toEqual({ status: 301, location: 'https://web9:9080/r/request-port' });
      expect(await redirect('/r/request-port', 'web9')).toEqual({ status: 301, location: 'https://web9:9080/r/request-port' });
      expect(await redirect('/r/request-port')).toEqual({ status: 301, location: 'https://web:80/r/request-port' });
      expect(await redirect('/r/request-port-http', 'web9')).toEqual({ status: 301, location: 'http://other:9080/r/request-port-http' });
    });

    it('everything at once, with code 308', async () => {
      expect(await redirect('/r/all?q=1')).toEqual({ status: 308, location: 'https://all.example:9443/all?q=1' });
    });

    it('redirectCode 302 and 307', async () => {
      expect(await redirect('/r/302')).toEqual({ status: 302, location: 'http://web/found' });
      expect(await redirect('/r/307')).toEqual({ status: 307, location: 'http://web/temp' });
    });

    it('response header operations apply to a redirect', async () => {
      const res = await get(proxy.port, WEB, '/r/headers');
      expect(res.status).toBe(301);
      expect(res.headers['x-redirect']).toBe('yes');
      expect(res.headers['location']).toBe('http://web/h');
    });
  });

  describe('direct response', () => {
    it('string body with its status, as text/plain', async () => {
      const before = backend.requests.length;
      const res = await get(proxy.port, WEB, '/direct/string');
      expect(res.status).toBe(200);
      expect(res.text()).toBe('hello, world');
      expect(res.headers['content-length']).toBe('12');
      expect(res.headers['content-type']).toBe('text/plain');
      expect(res.headers['server']).toBe('envoy');
      expect(backend.requests.length).toBe(before);
    });

    it('bytes body (base64 in config) arrives byte for byte', async () => {
      const res = await get(proxy.port, WEB, '/direct/bytes');
      expect(res.status).toBe(503);
      expect([...res.body]).toEqual([0, 1, 2, 0xff, 0x0a]);
    });

    it('no body: status only, with the route response headers', async () => {
      const res = await get(proxy.port, WEB, '/direct/empty');
      expect(res.status).toBe(418);
      expect(res.body.length).toBe(0);
      expect(res.headers['content-length']).toBe('0');
      expect(res.headers['content-type']).toBeUndefined();
      expect(res.headers['x-direct']).toBe('yes');
    });

    it('a 3xx direct response carries a Location of the request URL (as Envoy adds for 201 and 3xx)', async () => {
      const res = await get(proxy.port, WEB, '/direct/moved?a=1');
      expect(res.status).toBe(301);
      expect(res.headers['location']).toBe('http://web/direct/moved?a=1');
    });
  });

  describe('headers', () => {
    it('request set, add and remove at route level; remove runs before add', async () => {
      const { req } = await sent('/headers/request', { 'x-set': 'client', 'x-add': 'client', 'x-remove-me': '1', 'x-both': 'client' });
      expect(req.headers['x-set']).toBe('route-set');
      expect(req.headers['x-add']).toBe('client,route-add');
      expect(req.headers['x-new-add']).toBe('only');
      expect(req.headers['x-remove-me']).toBeUndefined();
      // Removed (with the client's value) first, then set by the route.
      expect(req.headers['x-both']).toBe('set-by-route');
      expect(req.rawHeaders.filter((h) => h.toLowerCase() === 'x-set')).toHaveLength(1);
    });

    it('response set, add and remove at route level', async () => {
      const res = await get(proxy.port, WEB, '/with-response-headers');
      expect(res.status).toBe(200);
      expect(res.headers['x-upstream-a']).toBe('replaced');
      expect(res.headers['x-upstream-b']).toBe('ub,more');
      expect(res.headers['x-upstream-c']).toBeUndefined();
      expect(res.headers['x-added']).toBe('new');
      expect(res.text()).toBe('ok');
    });

    it('`:authority` in headers.request.set rewrites the Host', async () => {
      const { req } = await sent('/headers/authority-set');
      expect(req.headers['host']).toBe('set-authority.example');
      expect(req.headers[':authority']).toBeUndefined();
    });

    it('`host` in headers.request.add rewrites the Host too (never a second Host line)', async () => {
      const { req } = await sent('/headers/host-add');
      expect(req.headers['host']).toBe('added-host.example');
      expect(req.rawHeaders.filter((h) => h.toLowerCase() === 'host')).toHaveLength(1);
    });

    it('destination-level headers of a single destination apply with the route', async () => {
      const { res, req } = await sent('/headers/destination');
      expect(req.headers['x-dest']).toBe('d');
      expect(req.headers['x-route']).toBe('r,from-dest');
      // Istio's list order is route set, route add, destination set, destination add: the
      // destination's set comes after the route's add and overwrites it.
      expect(req.headers['x-order']).toBe('dest-set');
      expect(res.headers['x-dest-resp']).toBe('d');
      expect(res.headers['x-route-resp']).toBe('r');
    });

    it('weighted destinations: each applies its own headers first, then the route', async () => {
      const seen = new Set<string>();
      for (let i = 0; i < 40; i++) {
        const { res, req } = await sent('/headers/weighted');
        const subset = String(req.headers['x-subset']);
        seen.add(subset);
        expect(['v1', 'v2']).toContain(subset);
        expect(res.headers['x-subset-resp']).toBe(subset);
        // The route runs after the destination: its set and remove win.
        expect(req.headers['x-level']).toBe('route');
        expect(req.headers['x-cluster-only']).toBeUndefined();
        expect(res.headers['x-level-resp']).toBe('route');
        // A route-level authority rewrite wins over a destination's.
        expect(req.headers['host']).toBe('route-level.example');
      }
      expect(seen.size).toBe(2);
    });

    it("weighted destinations: a destination's :authority rewrites the Host for its share", async () => {
      const seen = new Set<string>();
      for (let i = 0; i < 40; i++) seen.add(String((await sent('/headers/split-authority')).req.headers['host']));
      expect([...seen].sort()).toEqual(['v1.example', 'v2.example']);
    });

    it('client headers pass through unchanged on a route without header operations', async () => {
      const res = await request(proxy.port, '/plain', { headers: { host: WEB, 'x-multi': ['a', 'b'], 'x-custom': 'Value With Spaces' } });
      expect(res.status).toBe(200);
      const req = backend.requests.at(-1)!;
      expect(req.headers['x-custom']).toBe('Value With Spaces');
      expect(req.rawHeaders.filter((h) => h === 'a' || h === 'b')).toEqual(['a', 'b']);
    });
  });
});
