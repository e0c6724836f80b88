/**
 * Unit tests of the compiled routing layer (domain tables, route matchers, query parameters,
 * weighted picks, rewrites, redirects) and of the load balancers' picks over real Host objects,
 * each with a real (never connected) ConnectionPool. No network.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DomainTable } from '../../src/compile/domain-table.js';
import { compileHeaderMutation } from '../../src/compile/header-mutation.js';
import type { RouteRequest } from '../../src/compile/request-view.js';
import { compileDirect, compileForward, compileRedirect } from '../../src/compile/route-action.js';
import { compileRouteMatch, queryParam } from '../../src/compile/route-matcher.js';
import { RouteTables } from '../../src/compile/route-table.js';
import { HeaderMap } from '../../src/http/headers.js';
import {
  NO_HEADER_MUTATION,
  type ForwardAction,
  type HeaderMatch,
  type RedirectAction,
  type RouteConfig,
  type RouteMatch,
  type StringMatch,
} from '../../src/model/route.js';
import { Host } from '../../src/upstream/host.js';
import { createLoadBalancer, type LoadBalancer } from '../../src/upstream/lb/index.js';
import { LeastRequestLoadBalancer } from '../../src/upstream/lb/least-request.js';
import { MaglevLoadBalancer } from '../../src/upstream/lb/maglev.js';
import { RandomLoadBalancer } from '../../src/upstream/lb/random.js';
import { RingHashLoadBalancer } from '../../src/upstream/lb/ring-hash.js';
import { RoundRobinLoadBalancer } from '../../src/upstream/lb/round-robin.js';
import { ConnectionPool } from '../../src/upstream/pool/connection-pool.js';
import { hash32 } from '../../src/upstream/hash.js';
import type { LbPolicy } from '../../src/model/cluster.js';

afterEach(() => {
  vi.restoreAllMocks();
});

/** A request as the matchers see it. */
function req(path: string, headers: Array<[string, string]> = [], over: Partial<Pick<RouteRequest, 'method' | 'authority' | 'scheme'>> = {}): RouteRequest {
  const q = path.indexOf('?');
  return {
    method: over.method ?? 'GET',
    authority: over.authority ?? 'svc',
    scheme: over.scheme ?? 'http',
    headers: new HeaderMap(
      headers.map(([n]) => n),
      headers.map(([, v]) => v),
    ),
    path,
    pathOnly: q === -1 ? path : path.slice(0, q),
    query: q === -1 ? '' : path.slice(q + 1),
  };
}

function routeMatch(m: Partial<RouteMatch>): RouteMatch {
  return { headers: [], queryParams: [], ...m };
}

function header(name: string, match: StringMatch | undefined, invert = false, treatMissingAsEmpty = false): HeaderMatch {
  return { name, ...(match !== undefined ? { match } : {}), invert, treatMissingAsEmpty };
}

/** Binomial five-sigma check. */
function expectBinomial(count: number, n: number, p: number): void {
  const sigma = Math.sqrt(n * p * (1 - p));
  expect(Math.abs(count - n * p), `count ${count} of ${n}, p ${p}`).toBeLessThanOrEqual(5 * sigma);
}

// === domain tables ===

describe('DomainTable (Envoy virtual host lookup order)', () => {
  const table = new DomainTable<string>();
  for (const d of ['*', 'api.example.com', '*.example.com', '*.api.example.com', '*-prod.example.com', 'api.*', 'api.example.*', 'WWW.Example.ORG']) {
    table.add(d, d.toLowerCase());
  }

  it.each([
    ['api.example.com', 'api.example.com'],
    ['v1.api.example.com', '*.api.example.com'],
    ['x.v1.api.example.com', '*.api.example.com'],
    ['web.example.com', '*.example.com'],
    ['db-prod.example.com', '*-prod.example.com'],
    ['api.example.net', 'api.example.*'],
    ['api.internal', 'api.*'],
    ['www.example.org', 'www.example.org'],
    ['example.com', '*'],
    ['other.net', '*'],
  ])('%s → %s', (host, expected) => {
    expect(table.find(host)).toBe(expected);
  });

  it('exact beats every wildcard; a suffix wildcard beats a prefix wildcard', () => {
    const t = new DomainTable<string>();
    t.add('*', 'any');
    t.add('a.*', 'prefix');
    t.add('*.b', 'suffix');
    t.add('a.b', 'exact');
    expect(t.find('a.b')).toBe('exact');
    expect(t.find('a.x.b')).toBe('suffix');
    expect(t.find('a.x')).toBe('prefix');
  });

  it('a wildcard must stand for at least one character', () => {
    const t = new DomainTable<string>();
    t.add('*.example.com', 'suffix');
    t.add('foo.*', 'prefix');
    expect(t.find('.example.com')).toBeUndefined();
    expect(t.find('foo.')).toBeUndefined();
    expect(t.find('x.example.com')).toBe('suffix');
  });

  it('find(host, false) leaves out the catch-all', () => {
    expect(table.find('other.net', false)).toBeUndefined();
    expect(table.find('web.example.com', false)).toBe('*.example.com');
  });

  it('the first value added for a domain wins', () => {
    const t = new DomainTable<number>();
    expect(t.add('a', 1)).toBe(true);
    expect(t.add('A', 2)).toBe(false);
    expect(t.add('*.x', 1)).toBe(true);
    expect(t.add('*.x', 2)).toBe(false);
    expect(t.add('*', 1)).toBe(true);
    expect(t.add('*', 2)).toBe(false);
    expect(t.find('a')).toBe(1);
    expect(t.find('y.x')).toBe(1);
    expect(t.size).toBe(3);
  });
});

describe('RouteTables.resolve (which port table a Host uses)', () => {
  const forward = (cluster: string): RouteConfig['virtualHosts'][number]['routes'][number] => ({
    name: cluster,
    match: routeMatch({}),
    action: { kind: 'forward', clusters: [{ cluster, weight: 1, requestHeaders: NO_HEADER_MUTATION, responseHeaders: NO_HEADER_MUTATION }], timeoutMs: 0 },
    requestHeaders: NO_HEADER_MUTATION,
    responseHeaders: NO_HEADER_MUTATION,
  });
  const catchAll = { name: 'allow_any', domains: ['*'], routes: [forward('PassthroughCluster')] };
  const tables = new RouteTables(
    [
      { name: '80', virtualHosts: [{ name: 'web', domains: ['web', 'both'], routes: [forward('web80')] }, catchAll] },
      { name: '9080', virtualHosts: [{ name: 'api', domains: ['api', 'both', '*.wild'], routes: [forward('api9080')] }, catchAll] },
      { name: '9090', virtualHosts: [{ name: 'multi', domains: ['*.multi', 'x.wild'], routes: [forward('multi9090')] }, catchAll] },
      { name: '9091', virtualHosts: [{ name: 'multi', domains: ['*.multi'], routes: [forward('multi9091')] }, catchAll] },
    ],
    { name: 'fallback', virtualHosts: [catchAll] },
  );
  const clusterOf = (host: string, port: number | undefined): [string | undefined, number] => {
    const r = tables.resolve(host, port);
    const action = r.vhost?.select(req('/'))?.action;
    return [action?.kind === 'forward' ? action.clusters[0]!.name : undefined, r.port];
  };

  it('a Host without a port uses port 80, else the one port the name is served on', () => {
    expect(clusterOf('web', undefined)).toEqual(['web80', 80]);
    expect(clusterOf('api', undefined)).toEqual(['api9080', 9080]);
    expect(clusterOf('both', undefined)).toEqual(['web80', 80]);
    expect(clusterOf('unknown', undefined)).toEqual(['PassthroughCluster', 80]);
  });

  it('a wildcard domain counts for the names it covers; the most specific domain decides', () => {
    expect(clusterOf('a.wild', undefined)).toEqual(['api9080', 9080]);
    expect(clusterOf('x.wild', undefined)).toEqual(['multi9090', 9090]);
    // Served on two ports: no single port to infer, so port 80.
    expect(clusterOf('a.multi', undefined)).toEqual(['PassthroughCluster', 80]);
    expect(clusterOf('a.multi', 9091)).toEqual(['multi9091', 9091]);
  });

  it('an explicit port picks that table, or the fallback when no service uses it', () => {
    expect(clusterOf('both', 9080)).toEqual(['api9080', 9080]);
    expect(clusterOf('web', 9080)).toEqual(['PassthroughCluster', 9080]);
    expect(clusterOf('web', 1234)).toEqual(['PassthroughCluster', 1234]);
  });
});

// === route matchers ===

describe('route matcher', () => {
  it('path exact, prefix and regex; the regex sees the path without the query and must match all of it', () => {
    const exact = compileRouteMatch(routeMatch({ path: { kind: 'exact', value: '/a' } }));
    expect(exact(req('/a'))).toBe(true);
    expect(exact(req('/a?x=1'))).toBe(true);
    expect(exact(req('/a/'))).toBe(false);
    const prefix = compileRouteMatch(routeMatch({ path: { kind: 'prefix', value: '/a' } }));
    expect(prefix(req('/ab'))).toBe(true);
    expect(prefix(req('/b/a'))).toBe(false);
    const regex = compileRouteMatch(routeMatch({ path: { kind: 'regex', value: '/r/\\d+' } }));
    expect(regex(req('/r/12?q=/r/x'))).toBe(true);
    expect(regex(req('/r/12/'))).toBe(false);
    expect(regex(req('/x/r/12'))).toBe(false);
  });

  it('ignoreCase applies to exact and prefix; regex uses (?i)', () => {
    expect(compileRouteMatch(routeMatch({ path: { kind: 'exact', value: '/Ab', ignoreCase: true } }))(req('/aB'))).toBe(true);
    expect(compileRouteMatch(routeMatch({ path: { kind: 'prefix', value: '/Ab', ignoreCase: true } }))(req('/ABC'))).toBe(true);
    expect(compileRouteMatch(routeMatch({ path: { kind: 'exact', value: '/Ab' } }))(req('/ab'))).toBe(false);
    expect(compileRouteMatch(routeMatch({ path: { kind: 'regex', value: '(?i)/ab' } }))(req('/AB'))).toBe(true);
  });

  // Envoy HeaderUtility::matchHeaders with the header absent: without treat_missing_header_as_empty
  // only a presence match decides (true when inverted); with it, the value is "".
  it.each<[string, StringMatch | undefined, boolean, boolean, boolean]>([
    ['presence', undefined, false, false, false],
    ['inverted presence', undefined, true, false, true],
    ['exact', { kind: 'exact', value: 'a' }, false, false, false],
    ['inverted exact', { kind: 'exact', value: 'a' }, true, false, false],
    ['inverted exact, missing as empty', { kind: 'exact', value: 'a' }, true, true, true],
    ['exact "", missing as empty', { kind: 'exact', value: '' }, false, true, true],
    ['inverted exact "", missing as empty', { kind: 'exact', value: '' }, true, true, false],
    ['prefix, missing as empty', { kind: 'prefix', value: 'x' }, false, true, false],
    ['regex .*, missing as empty', { kind: 'regex', value: '.*' }, false, true, true],
    ['presence, missing as empty', undefined, false, true, true],
    ['inverted presence, missing as empty', undefined, true, true, false],
  ])('absent header, %s → %s', (_label, match, invert, treatMissing, expected) => {
    expect(compileRouteMatch(routeMatch({ headers: [header('x-h', match, invert, treatMissing)] }))(req('/'))).toBe(expected);
  });

  it('present headers: invert negates the result', () => {
    const inverted = compileRouteMatch(routeMatch({ headers: [header('x-h', { kind: 'exact', value: 'a' }, true, true)] }));
    expect(inverted(req('/', [['x-h', 'a']]))).toBe(false);
    expect(inverted(req('/', [['x-h', 'b']]))).toBe(true);
    expect(inverted(req('/', [['x-h', '']]))).toBe(true);
    const presence = compileRouteMatch(routeMatch({ headers: [header('x-h', undefined)] }));
    expect(presence(req('/', [['x-h', '']]))).toBe(true);
    const absent = compileRouteMatch(routeMatch({ headers: [header('x-h', undefined, true)] }));
    expect(absent(req('/', [['x-h', 'v']]))).toBe(false);
  });

  it('a repeated header is matched as its values joined with ","', () => {
    const m = compileRouteMatch(routeMatch({ headers: [header('x-h', { kind: 'exact', value: 'a,b' })] }));
    expect(m(req('/', [['x-h', 'a'], ['x-h', 'b']]))).toBe(true);
    expect(m(req('/', [['x-h', 'a']]))).toBe(false);
    const regex = compileRouteMatch(routeMatch({ headers: [header('x-h', { kind: 'regex', value: 'a' })] }));
    expect(regex(req('/', [['x-h', 'a'], ['x-h', 'a']]))).toBe(false);
  });

  it('pseudo-headers :method, :authority (also as host), :scheme and :path', () => {
    const r = req('/p?q', [], { method: 'PUT', authority: 'svc:9080', scheme: 'http' });
    expect(compileRouteMatch(routeMatch({ headers: [header(':method', { kind: 'exact', value: 'PUT' })] }))(r)).toBe(true);
    expect(compileRouteMatch(routeMatch({ headers: [header(':authority', { kind: 'prefix', value: 'svc:' })] }))(r)).toBe(true);
    expect(compileRouteMatch(routeMatch({ headers: [header('host', { kind: 'exact', value: 'svc:9080' })] }))(r)).toBe(true);
    expect(compileRouteMatch(routeMatch({ headers: [header(':scheme', { kind: 'exact', value: 'https' })] }))(r)).toBe(false);
    expect(compileRouteMatch(routeMatch({ headers: [header(':path', { kind: 'exact', value: '/p?q' })] }))(r)).toBe(true);
  });

  it('header names are matched lowercase; values as given', () => {
    const m = compileRouteMatch(routeMatch({ headers: [header('X-Mixed', { kind: 'exact', value: 'V' })] }));
    expect(m(req('/', [['x-mixed', 'V']]))).toBe(true);
    expect(m(req('/', [['x-mixed', 'v']]))).toBe(false);
  });

  it('path, headers and query parameters are ANDed', () => {
    const m = compileRouteMatch(
      routeMatch({
        path: { kind: 'prefix', value: '/a' },
        headers: [header('x-h', { kind: 'exact', value: '1' })],
        queryParams: [{ name: 'q', match: { kind: 'exact', value: '2' } }],
      }),
    );
    expect(m(req('/a?q=2', [['x-h', '1']]))).toBe(true);
    expect(m(req('/b?q=2', [['x-h', '1']]))).toBe(false);
    expect(m(req('/a?q=3', [['x-h', '1']]))).toBe(false);
    expect(m(req('/a?q=2', [['x-h', '2']]))).toBe(false);
    expect(compileRouteMatch(routeMatch({}))(req('/anything'))).toBe(true);
  });

  it('query parameter matchers: presence, exact (first value), regex over the whole value', () => {
    const present = compileRouteMatch(routeMatch({ queryParams: [{ name: 'k' }] }));
    expect(present(req('/?k'))).toBe(true);
    expect(present(req('/?k=v'))).toBe(true);
    expect(present(req('/?kk=v'))).toBe(false);
    expect(present(req('/'))).toBe(false);
    const exact = compileRouteMatch(routeMatch({ queryParams: [{ name: 'k', match: { kind: 'exact', value: '' } }] }));
    expect(exact(req('/?k'))).toBe(true);
    expect(exact(req('/?k=1'))).toBe(false);
    const regex = compileRouteMatch(routeMatch({ queryParams: [{ name: 'id', match: { kind: 'regex', value: '\\d+' } }] }));
    expect(regex(req('/?id=42'))).toBe(true);
    expect(regex(req('/?id=a42'))).toBe(false);
    expect(regex(req('/?id=42a'))).toBe(false);
    expect(regex(req('/?id=4&id=x'))).toBe(true);
    expect(regex(req('/?id=x&id=4'))).toBe(false);
  });
});

describe('queryParam (Envoy parseQueryString: raw, first value wins)', () => {
  it.each<[string, string, string | undefined]>([
    ['a=1&b=2', 'b', '2'],
    ['a=1&b=2', 'c', undefined],
    ['a=1&a=2', 'a', '1'],
    ['flag', 'flag', ''],
    ['x=1&flag', 'flag', ''],
    ['flag=', 'flag', ''],
    ['ab=1', 'a', undefined],
    ['a=b=c', 'a', 'b=c'],
    ['a=%20x+y', 'a', '%20x+y'],
    ['', 'a', undefined],
    ['&&a=1&', 'a', '1'],
    ['=v&a=2', 'a', '2'],
    ['k=1#frag', 'k', '1#frag'],
  ])('%j, %s → %j', (query, name, expected) => {
    expect(queryParam(query, name)).toBe(expected);
  });
});

// === actions ===

function forward(clusters: Array<[string, number]>, extra: Partial<ForwardAction> = {}): ForwardAction {
  return {
    kind: 'forward',
    clusters: clusters.map(([cluster, weight]) => ({ cluster, weight, requestHeaders: NO_HEADER_MUTATION, responseHeaders: NO_HEADER_MUTATION })),
    ...extra,
  };
}

describe('weighted pick', () => {
  it('draws in proportion to the weights', () => {
    const action = compileForward(forward([['a', 80], ['b', 15], ['c', 5]]), routeMatch({}));
    const n = 20_000;
    const counts = new Map<string, number>();
    for (let i = 0; i < n; i++) {
      const name = action.pick().name;
      counts.set(name, (counts.get(name) ?? 0) + 1);
    }
    expectBinomial(counts.get('a')!, n, 0.8);
    expectBinomial(counts.get('b')!, n, 0.15);
    expectBinomial(counts.get('c')!, n, 0.05);
  });

  it('maps the random draw onto consecutive weight ranges', () => {
    const action = compileForward(forward([['a', 1], ['b', 3]]), routeMatch({}));
    const at = (r: number): string => {
      vi.spyOn(Math, 'random').mockReturnValueOnce(r);
      return action.pick().name;
    };
    expect(at(0)).toBe('a');
    expect(at(0.2499)).toBe('a');
    expect(at(0.25)).toBe('b');
    expect(at(0.9999)).toBe('b');
  });

  it('drops weight-0 destinations, except a single destination, which always gets the traffic', () => {
    const action = compileForward(forward([['a', 0], ['b', 5]]), routeMatch({}));
    expect(action.clusters.map((c) => c.name)).toEqual(['b']);
    for (let i = 0; i < 100; i++) expect(action.pick().name).toBe('b');
    const single = compileForward(forward([['only', 0]]), routeMatch({}));
    expect(single.pick().name).toBe('only');
    expect(() => compileForward(forward([['a', 0], ['b', 0]]), routeMatch({}))).toThrow();
  });
});

describe('path rewrites', () => {
  const rewrite = (a: Partial<ForwardAction>, match: RouteMatch, path: string): string | null => {
    const fn = compileForward(forward([['c', 1]], a), match).rewritePath;
    return fn === null ? null : fn(req(path));
  };

  it('prefix rewrite replaces the matched prefix, keeping the rest and the query', () => {
    const m = routeMatch({ path: { kind: 'prefix', value: '/api/' } });
    expect(rewrite({ prefixRewrite: '/v2/' }, m, '/api/x?q=/api/')).toBe('/v2/x?q=/api/');
    expect(rewrite({ prefixRewrite: '/' }, routeMatch({ path: { kind: 'prefix', value: '/strip' } }), '/strip/a')).toBe('//a');
    // With no path match (Envoy's prefix "/"), the leading "/" is replaced.
    expect(rewrite({ prefixRewrite: '/base/' }, routeMatch({}), '/x?y')).toBe('/base/x?y');
  });

  it('with an exact or regex path match the whole path is replaced, keeping the query', () => {
    expect(rewrite({ prefixRewrite: '/new' }, routeMatch({ path: { kind: 'exact', value: '/old' } }), '/old?a=1')).toBe('/new?a=1');
    expect(rewrite({ prefixRewrite: '/new' }, routeMatch({ path: { kind: 'regex', value: '/o.d' } }), '/oxd')).toBe('/new');
  });

  it('regex rewrite substitutes every match in the path with \\N groups; "$" is literal', () => {
    const rx = (pattern: string, substitution: string, path: string): string | null => rewrite({ regexRewrite: { pattern, substitution } }, routeMatch({}), path);
    expect(rx('^/svc/([^/]+)/(.*)$', '/\\2/instance/\\1', '/svc/a/b/c?x=1')).toBe('/b/c/instance/a?x=1');
    expect(rx('o', '0', '/foo/boo?o=o')).toBe('/f00/b00?o=o');
    expect(rx('^/(.*)$', '/$1/\\1', '/p')).toBe('/$1/p');
    expect(rx('nomatch', 'x', '/p?q')).toBe('/p?q');
  });

  it('no rewrite configured: null', () => {
    expect(rewrite({}, routeMatch({}), '/p')).toBeNull();
  });
});

describe('non-ASCII: wire values are bytes, config values are text', () => {
  /** How a UTF-8 header value or path arrives from the HTTP/1 codec: one char per byte. */
  const wire = (text: string): string => Buffer.from(text, 'utf8').toString('latin1');
  const matchHeader = (m: StringMatch, value: string): boolean =>
    compileRouteMatch(routeMatch({ headers: [header('x-name', m)] }))(req('/', [['x-name', value]]));

  it('exact and prefix matches compare the configured text as UTF-8 bytes', () => {
    expect(matchHeader({ kind: 'exact', value: 'café' }, wire('café'))).toBe(true);
    expect(matchHeader({ kind: 'exact', value: 'café' }, 'café')).toBe(false); // latin1 é is not UTF-8 é
    expect(matchHeader({ kind: 'prefix', value: 'naïve' }, wire('naïve-user'))).toBe(true);
  });

  it('ignoreCase folds ASCII letters only, like Envoy', () => {
    const path = (p: string): boolean => compileRouteMatch(routeMatch({ path: { kind: 'prefix', value: '/Straße', ignoreCase: true } }))(req(wire(p)));
    expect(path('/STRAße/x')).toBe(true);
    expect(path('/strasse')).toBe(false);
    // ASCII folding must not touch the bytes of a multi-byte character.
    expect(compileRouteMatch(routeMatch({ path: { kind: 'exact', value: '/À', ignoreCase: true } }))(req(wire('/à')))).toBe(false);
  });

  it('a regex sees non-ASCII input as UTF-8 text (one char per code point), as RE2 does', () => {
    expect(matchHeader({ kind: 'regex', value: 'caf.' }, wire('café'))).toBe(true);
    expect(matchHeader({ kind: 'regex', value: '\\p{L}+' }, wire('ñandú'))).toBe(true);
  });

  it('configured header values go out as UTF-8 bytes', () => {
    const headers = new HeaderMap();
    compileHeaderMutation({ remove: [], add: [{ name: 'X-Greeting', value: 'grüß dich', append: false }] })!(headers, { downstreamRemoteAddress: '127.0.0.1', downstreamRemotePort: 1, downstreamLocalAddress: '127.0.0.1', downstreamLocalPort: 2, request: null });
    expect(headers.get('x-greeting')).toBe(wire('grüß dich'));
  });

  it('rewrites produce UTF-8 bytes and measure prefixes in bytes', () => {
    const prefix = compileForward(forward([['c', 1]], { prefixRewrite: '/über/' }), routeMatch({ path: { kind: 'prefix', value: '/ä/' } })).rewritePath!;
    expect(prefix(req(wire('/ä/x')))).toBe(wire('/über/x'));
    const regex = compileForward(forward([['c', 1]], { regexRewrite: { pattern: '^/(.)/(.*)$', substitution: '/\\2/\\1' } }), routeMatch({})).rewritePath!;
    expect(regex(req(wire('/é/rest?q')))).toBe(wire('/rest/é?q'));
  });
});

describe('redirect location', () => {
  const location = (a: Partial<RedirectAction>, path: string, authority: string, port = 80, match: RouteMatch = routeMatch({})): string =>
    compileRedirect({ kind: 'redirect', responseCode: 301, ...a }, match).location(req(path, [], { authority }), port);

  it('keeps what is not configured', () => {
    expect(location({}, '/p?q=1', 'web')).toBe('http://web/p?q=1');
    expect(location({}, '/p', 'web:8080')).toBe('http://web:8080/p');
  });

  it('path: replaces the path; a query in it replaces the query', () => {
    expect(location({ pathRedirect: '/n' }, '/p?q=1', 'web')).toBe('http://web/n?q=1');
    expect(location({ pathRedirect: '/n?z=2' }, '/p?q=1', 'web')).toBe('http://web/n?z=2');
    expect(location({ prefixRewrite: '/new' }, '/old/x?q', 'web', 80, routeMatch({ path: { kind: 'prefix', value: '/old' } }))).toBe('http://web/new/x?q');
  });

  it('scheme change drops only the old scheme default port', () => {
    expect(location({ schemeRedirect: 'https' }, '/', 'web:80')).toBe('https://web/');
    expect(location({ schemeRedirect: 'https' }, '/', 'web:8080')).toBe('https://web:8080/');
    expect(location({ schemeRedirect: 'http' }, '/', 'web:80')).toBe('http://web:80/');
  });

  it('port replaces the request port; 80 on http and 443 on https are left out', () => {
    expect(location({ portRedirect: 8443 }, '/', 'web:9080')).toBe('http://web:8443/');
    expect(location({ portRedirect: 443, schemeRedirect: 'https' }, '/', 'web:9080')).toBe('https://web:9080/');
    expect(location({ portRedirect: 80 }, '/', 'web:9080')).toBe('http://web:9080/');
    expect(location({ portRedirect: 80, schemeRedirect: 'https' }, '/', 'web')).toBe('https://web:80/');
  });

  it('derivePort: FROM_REQUEST_PORT uses the route table port; FROM_PROTOCOL_DEFAULT sets none', () => {
    expect(location({ derivePort: 'FROM_REQUEST_PORT' }, '/', 'web', 9080)).toBe('http://web:9080/');
    // Port 80 on http is left out, so nothing replaces the request's own port.
    expect(location({ derivePort: 'FROM_REQUEST_PORT' }, '/', 'web:9080', 80)).toBe('http://web:9080/');
    expect(location({ derivePort: 'FROM_PROTOCOL_DEFAULT', schemeRedirect: 'https' }, '/', 'web:9080', 9080)).toBe('https://web:9080/');
    expect(location({ derivePort: 'FROM_PROTOCOL_DEFAULT', schemeRedirect: 'https' }, '/', 'web:80', 80)).toBe('https://web/');
  });

  it('authority replaces the host and its port; an IPv6 request authority keeps its brackets', () => {
    expect(location({ hostRedirect: 'other' }, '/p', 'web:9080')).toBe('http://other/p');
    expect(location({ hostRedirect: 'other', portRedirect: 81 }, '/p', 'web:9080')).toBe('http://other:81/p');
    expect(location({ portRedirect: 81 }, '/p', '[::1]:9080')).toBe('http://[::1]:81/p');
  });

  it('direct responses with 201 or 3xx carry the request URL as Location', () => {
    const r = req('/x?y', [], { authority: 'web:9080' });
    expect(compileDirect({ kind: 'direct', status: 302 }).location?.(r)).toBe('http://web:9080/x?y');
    expect(compileDirect({ kind: 'direct', status: 201 }).location?.(r)).toBe('http://web:9080/x?y');
    expect(compileDirect({ kind: 'direct', status: 200 }).location).toBeNull();
    expect(compileDirect({ kind: 'direct', status: 404 }).location).toBeNull();
  });
});

// === load balancers ===

const POOL_OPTIONS = { connectTimeoutMs: 1000, idleTimeoutMs: 60_000, maxRequestsPerConnection: 0 };

/** Hosts 10.0.0.1:8080, 10.0.0.2:8080, … with the given weights, each with its own pool. */
function hosts(weights: readonly number[], base = 1): Host[] {
  return weights.map((w, i) => {
    const address = `10.0.0.${base + i}`;
    return new Host(address, 8080, w, { index: String(i) }, new ConnectionPool({ host: address, port: 8080 }, POOL_OPTIONS));
  });
}

function counts(lb: LoadBalancer, n: number, hash?: () => number): Map<Host, number> {
  const m = new Map<Host, number>();
  for (let i = 0; i < n; i++) {
    const h = lb.pick(hash === undefined ? {} : { hash: hash() })!;
    m.set(h, (m.get(h) ?? 0) + 1);
  }
  return m;
}

const POLICIES: ReadonlyArray<[string, LbPolicy]> = [
  ['ROUND_ROBIN', { kind: 'ROUND_ROBIN' }],
  ['RANDOM', { kind: 'RANDOM' }],
  ['LEAST_REQUEST', { kind: 'LEAST_REQUEST', choiceCount: 2 }],
  ['RING_HASH', { kind: 'RING_HASH', minimumRingSize: 1024, maximumRingSize: 8 * 1024 * 1024 }],
  ['MAGLEV', { kind: 'MAGLEV', tableSize: 65537 }],
];

describe.each(POLICIES)('load balancer conformance: %s', (_name, policy) => {
  it('no hosts: no pick', () => {
    const lb = createLoadBalancer(policy, []);
    expect(lb.pick({})).toBeUndefined();
    expect(lb.pick({ hash: 12345 })).toBeUndefined();
  });

  it('one host: always that host', () => {
    const [only] = hosts([1]);
    const lb = createLoadBalancer(policy, [only!]);
    for (let i = 0; i < 20; i++) expect(lb.pick({ hash: i * 7919 })).toBe(only);
    expect(lb.pick({})).toBe(only);
  });

  it('every host of the list is reachable, and only those', () => {
    const list = hosts([1, 1, 1, 1]);
    const lb = createLoadBalancer(policy, list);
    const seen = counts(lb, 2000, () => Math.floor(Math.random() * 2 ** 32));
    expect([...seen.keys()].every((h) => list.includes(h))).toBe(true);
    expect(seen.size).toBe(4);
  });

  it('the host list is not mutated', () => {
    const list = hosts([1, 2, 3]);
    const copy = [...list];
    const lb = createLoadBalancer(policy, list);
    counts(lb, 100, () => Math.floor(Math.random() * 2 ** 32));
    expect(list).toEqual(copy);
  });
});

describe('ROUND_ROBIN', () => {
  it('equal weights: strict rotation from a random start', () => {
    const list = hosts([1, 1, 1]);
    const lb = new RoundRobinLoadBalancer(list);
    const first = lb.pick()!;
    const start = list.indexOf(first);
    for (let i = 1; i < 30; i++) expect(lb.pick()).toBe(list[(start + i) % 3]);
  });

  it('unequal weights: smooth weighted rotation, exact proportions every cycle', () => {
    const list = hosts([5, 1, 1]);
    const lb = new RoundRobinLoadBalancer(list);
    const seq = Array.from({ length: 7 }, () => list.indexOf(lb.pick()!));
    expect(seq).toEqual([0, 0, 1, 0, 2, 0, 0]);
    const c = counts(lb, 7000);
    expect(list.map((h) => c.get(h))).toEqual([5000, 1000, 1000]);
  });
});

describe('RANDOM', () => {
  it('uniform over the hosts; like Envoy, endpoint weights are not considered', () => {
    const list = hosts([3, 1]);
    const c = counts(new RandomLoadBalancer(list), 10_000);
    expectBinomial(c.get(list[0]!)!, 10_000, 0.5);
  });
});

describe('LEAST_REQUEST', () => {
  it('equal weights: of two drawn hosts, the one with fewer active requests', () => {
    const [a, b] = hosts([1, 1]) as [Host, Host];
    a.activeRequests = 5;
    const lb = new LeastRequestLoadBalancer([a, b], 2);
    // Draws: a then b → b (fewer); b then a → b; a then a → a (no other choice).
    vi.spyOn(Math, 'random').mockReturnValueOnce(0.1).mockReturnValueOnce(0.9);
    expect(lb.pick()).toBe(b);
    vi.spyOn(Math, 'random').mockReturnValueOnce(0.9).mockReturnValueOnce(0.1);
    expect(lb.pick()).toBe(b);
    vi.spyOn(Math, 'random').mockReturnValueOnce(0.1).mockReturnValueOnce(0.2);
    expect(lb.pick()).toBe(a);
  });

  it('equal weights: a tie keeps the first host drawn', () => {
    const [a, b] = hosts([1, 1]) as [Host, Host];
    const lb = new LeastRequestLoadBalancer([a, b], 2);
    vi.spyOn(Math, 'random').mockReturnValueOnce(0.9).mockReturnValueOnce(0.1);
    expect(lb.pick()).toBe(b);
  });

  it('equal weights: a busy host is picked only when every draw lands on it', () => {
    const list = hosts([1, 1]);
    list[0]!.activeRequests = 3;
    const n = 10_000;
    const c = counts(new LeastRequestLoadBalancer(list, 2), n);
    expectBinomial(c.get(list[0]!) ?? 0, n, 0.25);
  });

  it('unequal weights, no load: picks follow the weights exactly', () => {
    const list = hosts([3, 1]);
    const lb = new LeastRequestLoadBalancer(list, 2);
    const c = counts(lb, 4000);
    expect(c.get(list[0]!)).toBe(3000);
    expect(c.get(list[1]!)).toBe(1000);
  });

  it('unequal weights: active requests divide a host weight', () => {
    const list = hosts([2, 1]);
    // weight 2 with 3 active requests counts as 2 / 4 = 0.5 against 1 / 1.
    list[0]!.activeRequests = 3;
    const lb = new LeastRequestLoadBalancer(list, 2);
    const c = counts(lb, 3000);
    expect(c.get(list[1]!)).toBeGreaterThan(c.get(list[0]!)!);
    expect(Math.abs(c.get(list[0]!)! - 1000)).toBeLessThanOrEqual(2);
  });
});

describe('consistent hashing', () => {
  const keys = Array.from({ length: 5000 }, (_, i) => hash32(`key-${i}`));

  function mapping(lb: LoadBalancer): Map<number, Host> {
    return new Map(keys.map((k) => [k, lb.pick({ hash: k })!]));
  }

  it.each([
    ['RING_HASH', (h: Host[]) => new RingHashLoadBalancer(h, 1024, 8 * 1024 * 1024)],
    ['MAGLEV', (h: Host[]) => new MaglevLoadBalancer(h, 65537)],
  ] as const)('%s: the same key always maps to the same host, also in a rebuilt balancer', (_name, make) => {
    const list = hosts([1, 1, 1, 1]);
    const first = mapping(make(list));
    const again = mapping(make(list));
    const samePoolsOtherObjects = mapping(make(hosts([1, 1, 1, 1])));
    for (const k of keys) {
      expect(again.get(k)).toBe(first.get(k));
      expect(samePoolsOtherObjects.get(k)!.key).toBe(first.get(k)!.key);
    }
  });

  it.each([
    // The ring keeps its minimum size, so the remaining hosts get extra points: like Envoy's
    // ring, most (not all) keys of the remaining hosts stay put.
    ['RING_HASH', (h: Host[]) => new RingHashLoadBalancer(h, 1024, 8 * 1024 * 1024), 0.8],
    ['MAGLEV', (h: Host[]) => new MaglevLoadBalancer(h, 65537), 0.9],
  ] as const)('%s: removing a host moves mostly the keys it owned', (_name, make, keptShare) => {
    const four = hosts([1, 1, 1, 1]);
    const before = mapping(make(four));
    const after = mapping(make(four.slice(0, 3)));
    const stayed = keys.filter((k) => before.get(k) !== four[3]);
    const unchanged = stayed.filter((k) => after.get(k) === before.get(k)).length;
    expect(unchanged / stayed.length).toBeGreaterThanOrEqual(keptShare);
    for (const k of keys) expect(after.get(k)).not.toBe(four[3]);
  });

  it.each([
    ['RING_HASH', (h: Host[]) => new RingHashLoadBalancer(h, 1024, 8 * 1024 * 1024), 0.05],
    ['MAGLEV', (h: Host[]) => new MaglevLoadBalancer(h, 65537), 0.02],
  ] as const)('%s: keys spread in proportion to weight', (_name, make, tolerance) => {
    const list = hosts([1, 1, 2]);
    const m = mapping(make(list));
    const share = (h: Host): number => keys.filter((k) => m.get(k) === h).length / keys.length;
    expect(Math.abs(share(list[0]!) - 0.25)).toBeLessThanOrEqual(tolerance);
    expect(Math.abs(share(list[1]!) - 0.25)).toBeLessThanOrEqual(tolerance);
    expect(Math.abs(share(list[2]!) - 0.5)).toBeLessThanOrEqual(tolerance);
  });

  it('MAGLEV: the lookup table is filled in proportion to weight', () => {
    const list = hosts([1, 3]);
    const lb = new MaglevLoadBalancer(list, 65537);
    // Every hash modulo the table size is one slot: count slots by probing each index once.
    const c = new Map<Host, number>();
    for (let slot = 0; slot < 65537; slot++) {
      const h = lb.pick({ hash: slot })!;
      c.set(h, (c.get(h) ?? 0) + 1);
    }
    expect(Math.abs(c.get(list[1]!)! / 65537 - 0.75)).toBeLessThan(0.001);
  });

  it('a request without a hash key is balanced at random', () => {
    const list = hosts([1, 1, 1, 1]);
    for (const lb of [new RingHashLoadBalancer(list, 1024, 8 * 1024 * 1024), new MaglevLoadBalancer(list, 65537)]) {
      const c = counts(lb, 4000);
      for (const h of list) expectBinomial(c.get(h) ?? 0, 4000, 0.25);
    }
  });
});
