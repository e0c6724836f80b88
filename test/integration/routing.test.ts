/**
 * Route matching end to end: Istio VirtualService match fields → compiled matchers → the real
 * proxy choosing a route for real requests. Every route below tags its responses with an
 * `x-route` response header, so a test sees which route won; a request no route takes gets
 * Envoy's 404 NR and never reaches an upstream.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, request, type Response } from '../helpers/client.js';
import { httpService, staticService, virtualService, yamlDocs, type Resource } from '../helpers/istio-docs.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

/** An HTTP route to `host` that marks its responses with `x-route: name`. */
function tagged(name: string, host: string, match?: Resource[]): Resource {
  return {
    name,
    ...(match !== undefined ? { match } : {}),
    route: [{ destination: { host } }],
    headers: { response: { set: { 'x-route': name } } },
  };
}

describe('routing', () => {
  let backend: Upstream;
  let plain: Upstream;
  let outside: Upstream;
  let proxy: TestProxy;

  beforeAll(async () => {
    [backend, plain, outside] = await Promise.all([startUpstream('backend'), startUpstream('plain'), startUpstream('outside')]);
    const services = ['paths', 'hdrs', 'query', 'misc', 'auth-a', 'auth-b'].map((h) => httpService(h, 80, [backend.port]));
    const multiPort = staticService(
      'multi',
      [
        { number: 9080, name: 'http-a' },
        { number: 9090, name: 'http-b' },
      ],
      [{ ports: { 'http-a': backend.port, 'http-b': backend.port } }],
    );
    const config = yamlDocs(
      ...services,
      httpService('*.wild.test', 9080, [plain.port]),
      multiPort,
      httpService('plain', 9080, [plain.port]),
      virtualService('paths', {
        hosts: ['paths'],
        http: [
          tagged('exact', 'paths', [{ uri: { exact: '/exact' } }]),
          tagged('regex', 'paths', [{ uri: { regex: '/re/[0-9]+' } }]),
          tagged('nocase-exact', 'paths', [{ uri: { exact: '/CaseLess' }, ignoreUriCase: true }]),
          tagged('nocase-prefix', 'paths', [{ uri: { prefix: '/Mixed' }, ignoreUriCase: true }]),
          tagged('sensitive', 'paths', [{ uri: { exact: '/Sensitive' } }]),
          tagged('first', 'paths', [{ uri: { prefix: '/first' } }]),
          tagged('second', 'paths', [{ uri: { prefix: '/first/second' } }]),
          tagged('or', 'paths', [{ uri: { exact: '/or-a' } }, { uri: { prefix: '/or-b/' } }]),
          tagged('prefix', 'paths', [{ uri: { prefix: '/prefix' } }]),
        ],
      }),
      virtualService('hdrs', {
        hosts: ['hdrs'],
        http: [
          tagged('h-exact', 'hdrs', [{ uri: { prefix: '/h' }, headers: { 'x-exact': { exact: 'yes' } } }]),
          tagged('h-prefix', 'hdrs', [{ uri: { prefix: '/h' }, headers: { 'x-prefix': { prefix: 'pre' } } }]),
          tagged('h-regex', 'hdrs', [{ uri: { prefix: '/h' }, headers: { 'x-regex': { regex: 'v[0-9]+' } } }]),
          tagged('h-present', 'hdrs', [{ uri: { prefix: '/h' }, headers: { 'x-present': {} } }]),
          tagged('without', 'hdrs', [{ uri: { prefix: '/without' }, withoutHeaders: { 'x-block': { exact: '1' } } }]),
          tagged('without-present', 'hdrs', [{ uri: { prefix: '/absent' }, withoutHeaders: { 'x-here': {} } }]),
          tagged('and', 'hdrs', [{ uri: { prefix: '/and' }, headers: { 'x-a': { exact: '1' }, 'x-b': { exact: '2' } } }]),
          tagged('or-fields', 'hdrs', [{ headers: { 'x-or': { exact: 'yes' } } }, { uri: { exact: '/or' } }]),
          tagged('method', 'hdrs', [{ uri: { prefix: '/method' }, method: { exact: 'POST' } }]),
          tagged('method-regex', 'hdrs', [{ uri: { prefix: '/method' }, method: { regex: 'PUT|PATCH' } }]),
          tagged('scheme-https', 'hdrs', [{ uri: { prefix: '/scheme' }, scheme: { exact: 'https' } }]),
          tagged('scheme-http', 'hdrs', [{ uri: { prefix: '/scheme' }, scheme: { exact: 'http' } }]),
        ],
      }),
      virtualService('query', {
        hosts: ['query'],
        http: [
          tagged('q-exact', 'query', [{ queryParams: { q: { exact: '1' } } }]),
          tagged('q-flag', 'query', [{ queryParams: { flag: { exact: '' } } }]),
          tagged('q-regex', 'query', [{ queryParams: { id: { regex: '\\d+' } } }]),
          tagged('q-present', 'query', [{ queryParams: { present: {} } }]),
          tagged('q-and', 'query', [{ uri: { exact: '/and' }, queryParams: { a: { exact: 'x' }, b: { exact: 'y' } } }]),
        ],
      }),
      virtualService('authority', {
        hosts: ['auth-a', 'auth-b'],
        http: [
          tagged('auth-a', 'auth-a', [{ authority: { exact: 'auth-a' } }]),
          tagged('auth-b', 'auth-b', [{ authority: { regex: 'auth-b(\\.default)?' } }]),
        ],
      }),
      virtualService('multi', {
        hosts: ['multi'],
        http: [
          tagged('port-9080', 'multi', [{ port: 9080 }]),
          tagged('port-9090', 'multi', [{ port: 9090, uri: { prefix: '/only' } }]),
        ],
      }),
    );
    proxy = await startProxy({ 'mesh.yaml': config });
  });

  afterAll(async () => {
    await proxy?.close();
    await Promise.all([backend?.close(), plain?.close(), outside?.close()]);
  });

  /** The route that answered, or `404` when none matched (asserting Envoy's NR reply). */
  async function routeOf(host: string, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<string> {
    const before = backend.requests.length;
    const res = await request(proxy.port, path, { method, headers: { host, ...headers } });
    return routeName(res, before);
  }

  function routeName(res: Response, before: number): string {
    if (res.status === 404) {
      expect(res.body.length).toBe(0);
      expect(backend.requests.length).toBe(before);
      return '404';
    }
    expect(res.status).toBe(200);
    expect(backend.requests.length).toBe(before + 1);
    return String(res.headers['x-route']);
  }

  describe('uri', () => {
    it('exact matches the whole path and nothing else', async () => {
      expect(await routeOf('paths', '/exact')).toBe('exact');
      expect(await routeOf('paths', '/exact?with=query')).toBe('exact');
      expect(await routeOf('paths', '/exact/')).toBe('404');
      expect(await routeOf('paths', '/exactly')).toBe('404');
      expect(await routeOf('paths', '/EXACT')).toBe('404');
    });

    it('prefix is a raw string prefix of the path', async () => {
      expect(await routeOf('paths', '/prefix')).toBe('prefix');
      expect(await routeOf('paths', '/prefixed')).toBe('prefix');
      expect(await routeOf('paths', '/prefix/a/b?c=d')).toBe('prefix');
      expect(await routeOf('paths', '/pre')).toBe('404');
      expect(await routeOf('paths', '/x/prefix')).toBe('404');
    });

    it('regex must match the entire path, query string excluded (RE2 full match)', async () => {
      expect(await routeOf('paths', '/re/123')).toBe('regex');
      expect(await routeOf('paths', '/re/7?id=abc')).toBe('regex');
      expect(await routeOf('paths', '/re/123/x')).toBe('404');
      expect(await routeOf('paths', '/re/abc')).toBe('404');
      expect(await routeOf('paths', '/x/re/1')).toBe('404');
    });

    it('ignoreUriCase makes exact and prefix case-insensitive; the default is case-sensitive', async () => {
      expect(await routeOf('paths', '/caseless')).toBe('nocase-exact');
      expect(await routeOf('paths', '/CASELESS')).toBe('nocase-exact');
      expect(await routeOf('paths', '/mIxEd/anything')).toBe('nocase-prefix');
      expect(await routeOf('paths', '/Sensitive')).toBe('sensitive');
      expect(await routeOf('paths', '/sensitive')).toBe('404');
    });

    it('the first matching route wins, in order', async () => {
      expect(await routeOf('paths', '/first')).toBe('first');
      expect(await routeOf('paths', '/first/second')).toBe('first');
    });

    it('matches in one list are ORed', async () => {
      expect(await routeOf('paths', '/or-a')).toBe('or');
      expect(await routeOf('paths', '/or-b/c')).toBe('or');
      expect(await routeOf('paths', '/or-b')).toBe('404');
    });
  });

  describe('headers', () => {
    it('exact, prefix, regex (full match) and presence', async () => {
      expect(await routeOf('hdrs', '/h', { 'x-exact': 'yes' })).toBe('h-exact');
      expect(await routeOf('hdrs', '/h', { 'x-exact': 'yes!' })).toBe('404');
      expect(await routeOf('hdrs', '/h', { 'x-prefix': 'prefixed' })).toBe('h-prefix');
      expect(await routeOf('hdrs', '/h', { 'x-prefix': 'apre' })).toBe('404');
      expect(await routeOf('hdrs', '/h', { 'x-regex': 'v12' })).toBe('h-regex');
      expect(await routeOf('hdrs', '/h', { 'x-regex': 'v12x' })).toBe('404');
      expect(await routeOf('hdrs', '/h', { 'x-regex': 'xv1' })).toBe('404');
      expect(await routeOf('hdrs', '/h', { 'x-present': '' })).toBe('h-present');
      expect(await routeOf('hdrs', '/h', { 'x-present': 'anything' })).toBe('h-present');
      expect(await routeOf('hdrs', '/h')).toBe('404');
    });

    it('header names match case-insensitively; values case-sensitively', async () => {
      expect(await routeOf('hdrs', '/h', { 'X-Exact': 'yes' })).toBe('h-exact');
      expect(await routeOf('hdrs', '/h', { 'x-exact': 'YES' })).toBe('404');
    });

    it('withoutHeaders matches when the header is absent or has another value', async () => {
      expect(await routeOf('hdrs', '/without')).toBe('without');
      expect(await routeOf('hdrs', '/without', { 'x-block': '2' })).toBe('without');
      expect(await routeOf('hdrs', '/without', { 'x-block': '' })).toBe('without');
      expect(await routeOf('hdrs', '/without', { 'x-block': '1' })).toBe('404');
    });

    it('withoutHeaders with a presence match requires the header to be absent', async () => {
      expect(await routeOf('hdrs', '/absent')).toBe('without-present');
      expect(await routeOf('hdrs', '/absent', { 'x-here': '' })).toBe('404');
      expect(await routeOf('hdrs', '/absent', { 'x-here': 'v' })).toBe('404');
    });

    it('fields within one match are ANDed', async () => {
      expect(await routeOf('hdrs', '/and', { 'x-a': '1', 'x-b': '2' })).toBe('and');
      expect(await routeOf('hdrs', '/and', { 'x-a': '1' })).toBe('404');
      expect(await routeOf('hdrs', '/and', { 'x-b': '2' })).toBe('404');
      expect(await routeOf('hdrs', '/nand', { 'x-a': '1', 'x-b': '2' })).toBe('404');
    });

    it('a match list with different fields: either one takes the route', async () => {
      expect(await routeOf('hdrs', '/anything', { 'x-or': 'yes' })).toBe('or-fields');
      expect(await routeOf('hdrs', '/or')).toBe('or-fields');
      expect(await routeOf('hdrs', '/or2')).toBe('404');
    });

    it('method matches :method (exact and regex)', async () => {
      expect(await routeOf('hdrs', '/method', {}, 'POST')).toBe('method');
      expect(await routeOf('hdrs', '/method', {}, 'PUT')).toBe('method-regex');
      expect(await routeOf('hdrs', '/method', {}, 'PATCH')).toBe('method-regex');
      expect(await routeOf('hdrs', '/method', {}, 'GET')).toBe('404');
      expect(await routeOf('hdrs', '/method', {}, 'DELETE')).toBe('404');
    });

    it('scheme matches :scheme, which is http for plaintext requests', async () => {
      expect(await routeOf('hdrs', '/scheme')).toBe('scheme-http');
    });

    it('authority matches :authority (the Host header)', async () => {
      const before = backend.requests.length;
      expect(await routeOf('auth-a', '/')).toBe('auth-a');
      expect(await routeOf('auth-b', '/')).toBe('auth-b');
      expect(await routeOf('auth-b.default', '/')).toBe('auth-b');
      // auth-a's other names reach the same virtual host but fail the exact authority match.
      expect(await routeOf('auth-a.default', '/')).toBe('404');
      expect(await routeOf('auth-b.default.svc', '/')).toBe('404');
      expect(backend.requests.length).toBe(before + 3);
    });
  });

  describe('query parameters', () => {
    it('exact matches the first value of the parameter', async () => {
      expect(await routeOf('query', '/?q=1')).toBe('q-exact');
      expect(await routeOf('query', '/x?z=0&q=1')).toBe('q-exact');
      expect(await routeOf('query', '/?q=1&q=2')).toBe('q-exact');
      expect(await routeOf('query', '/?q=2&q=1')).toBe('404');
      expect(await routeOf('query', '/?q=10')).toBe('404');
      expect(await routeOf('query', '/?qq=1')).toBe('404');
      expect(await routeOf('query', '/q=1')).toBe('404');
    });

    it('exact "" matches a parameter given without a value', async () => {
      expect(await routeOf('query', '/?flag')).toBe('q-flag');
      expect(await routeOf('query', '/?a=b&flag')).toBe('q-flag');
      expect(await routeOf('query', '/?flag=')).toBe('q-flag');
      expect(await routeOf('query', '/?flag=1')).toBe('404');
    });

    it('regex must match the whole value', async () => {
      expect(await routeOf('query', '/?id=123')).toBe('q-regex');
      expect(await routeOf('query', '/?id=a123')).toBe('404');
      expect(await routeOf('query', '/?id=123a')).toBe('404');
      expect(await routeOf('query', '/?id=')).toBe('404');
    });

    it('an empty match is a presence check', async () => {
      expect(await routeOf('query', '/?present=anything')).toBe('q-present');
      expect(await routeOf('query', '/?present')).toBe('q-present');
      expect(await routeOf('query', '/?presented=1')).toBe('404');
    });

    it('several parameters in one match are ANDed, with the path', async () => {
      expect(await routeOf('query', '/and?b=y&a=x')).toBe('q-and');
      expect(await routeOf('query', '/and?a=x')).toBe('404');
      expect(await routeOf('query', '/other?a=x&b=y')).toBe('404');
    });
  });

  describe('ports and hosts', () => {
    it('match.port limits a route to the service port addressed', async () => {
      expect(await routeOf('multi:9080', '/any')).toBe('port-9080');
      expect(await routeOf('multi:9080', '/only')).toBe('port-9080');
      expect(await routeOf('multi:9090', '/only/x')).toBe('port-9090');
      // On 9090 the port-9080 route does not exist: the path decides.
      expect(await routeOf('multi:9090', '/any')).toBe('404');
    });

    it('a host with no VirtualService goes straight to its service, by any of its names', async () => {
      for (const host of ['plain', 'plain:9080', 'plain.default', 'plain.default:9080', 'plain.default.svc:9080', 'PLAIN.default.svc.cluster.local', 'plain.default.svc.cluster.local:9080']) {
        const res = await get(proxy.port, host, '/some/path?x=1');
        expect(res.status, host).toBe(200);
        expect(res.json().server).toBe('plain');
        expect(res.json().url).toBe('/some/path?x=1');
        expect(res.json().headers.host).toBe(host);
      }
    });

    it('a wildcard service is reached by the names it covers, with or without its port', async () => {
      for (const host of ['a.wild.test', 'b.wild.test:9080', 'deep.er.wild.test']) {
        const res = await get(proxy.port, host, '/w');
        expect(res.status, host).toBe(200);
        expect(res.json().server).toBe('plain');
        expect(res.json().headers.host).toBe(host);
      }
    });

    it('an unknown host under ALLOW_ANY goes to the address it names', async () => {
      const res = await get(proxy.port, `127.0.0.1:${outside.port}`, '/passthrough?q=1', { 'x-test': 'a' });
      expect(res.status).toBe(200);
      expect(res.json().server).toBe('outside');
      expect(res.json().url).toBe('/passthrough?q=1');
      const sent = outside.requests.at(-1)!;
      expect(sent.headers['host']).toBe(`127.0.0.1:${outside.port}`);
      expect(sent.headers['x-test']).toBe('a');
      expect(res.headers['x-route']).toBeUndefined();
    });

    it('no matching route: 404 with an empty body from the proxy, and no upstream call', async () => {
      const before = backend.requests.length;
      const res = await get(proxy.port, 'paths', '/nothing/here');
      expect(res.status).toBe(404);
      expect(res.body.length).toBe(0);
      expect(res.headers['content-length']).toBe('0');
      expect(res.headers['server']).toBe('envoy');
      expect(res.headers['date']).toMatch(/GMT$/);
      expect(res.headers['content-type']).toBeUndefined();
      expect(backend.requests.length).toBe(before);
    });
  });
});
