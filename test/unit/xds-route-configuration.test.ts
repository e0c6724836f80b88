import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { translateRouteConfiguration } from '../../src/config/xds/route-configuration.js';
import type { ForwardAction, Route, RouteConfig } from '../../src/model/index.js';

const DATA = '/work/shared/xds-data/router_check';
const DUMPS = '/work/shared/xds-data';
const FAULT = 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault';
const RATE_LIMIT = 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit';
const CORS = 'type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy';
const load = (name: string): unknown => parse(readFileSync(`${DATA}/envoy__${name}.yaml`, 'utf8'));
const NONE = { remove: [], add: [] };
const one = (cluster: string) => [{ cluster, weight: 1, requestHeaders: NONE, responseHeaders: NONE }];
/** What every xDS forward action says when its route sets neither: grpc-timeout unread, no x-envoy-attempt-count. */
const X = { grpcTimeout: { kind: 'ignore' }, requestAttemptCount: false } as const;

function ok(rc: unknown): RouteConfig {
  const r = translateRouteConfiguration(rc, 'fallback');
  expect(r.problems).toEqual([]);
  return r.config;
}

function problems(rc: unknown): Array<{ path: string; message: string }> {
  return [...translateRouteConfiguration(rc).problems];
}

/** A one-route config around `route`; `vh` and `rc` add fields to the virtual host and the config. */
function cfg(route: Record<string, unknown>, vh: Record<string, unknown> = {}, rc: Record<string, unknown> = {}): unknown {
  return { name: 'r', virtual_hosts: [{ name: 'vh', domains: ['*'], routes: [route], ...vh }], ...rc };
}
const fwd = (extra: Record<string, unknown> = {}) => ({ match: { prefix: '/' }, route: { cluster: 'c', ...extra } });
const firstRoute = (c: RouteConfig): Route => c.virtualHosts[0]!.routes[0]!;
const firstAction = (c: RouteConfig): ForwardAction => firstRoute(c).action as ForwardAction;

/** Renames every object key to lowerCamelCase (proto3 JSON names). */
function camel(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(camel);
  if (typeof v !== 'object' || v === null) return v;
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase()), camel(x)]));
}

describe('Envoy router_check configurations', () => {
  it('translates all four with no problems', () => {
    for (const name of ['Redirect', 'TestRoutes', 'Timeout', 'Weighted']) {
      expect(translateRouteConfiguration(load(name), name).problems, name).toEqual([]);
    }
  });

  it('Redirect: require_tls becomes a first https redirect route; redirects', () => {
    const c = ok(load('Redirect'));
    expect(c.name).toBe('fallback');
    const [www2, api, redirect] = c.virtualHosts;
    expect(www2!.routes[0]).toEqual({
      name: '',
      match: { headers: [{ name: 'x-forwarded-proto', match: { kind: 'exact', value: 'https' }, invert: true, treatMissingAsEmpty: true }], queryParams: [] },
      action: { kind: 'redirect', schemeRedirect: 'https', responseCode: 301 },
      requestHeaders: NONE,
      responseHeaders: NONE,
    });
    expect(api!.routes[0]!.match.headers.map((h) => h.name)).toEqual(['x-forwarded-proto', 'x-envoy-internal']);
    expect(api!.routes[1]!.action).toEqual({ kind: 'forward', clusters: one('www2'), prefixRewrite: '/pre/test', ...X });
    expect(redirect!.routes.map((r) => r.action)).toEqual([
      { kind: 'forward', clusters: one('www2'), ...X },
      { kind: 'redirect', hostRedirect: 'new.lyft.com', responseCode: 301 },
      { kind: 'redirect', pathRedirect: '/new_bar', responseCode: 301 },
      { kind: 'redirect', pathRedirect: '/new_baz', hostRedirect: 'new.lyft.com', responseCode: 301 },
      { kind: 'redirect', prefixRewrite: '/blah', responseCode: 301 },
    ]);
  });

  it('TestRoutes: case_sensitive, direct response, config-level headers, internal_only_headers', () => {
    const c = ok(load('TestRoutes'));
    const [www2, , dflt] = c.virtualHosts;
    expect(www2!.domains).toEqual(['lyft.com', 'www.lyft.com', 'w.lyft.com', 'ww.lyft.com', 'wwww.lyft.com']);
    // Every route comes twice: internal requests, then external ones with x-lyft-user-id removed.
    const ping = www2!.routes.filter((r) => r.match.path?.value === '/ping');
    expect(ping).toHaveLength(2);
    expect(ping[0]!.match.headers).toEqual([{ name: 'x-envoy-internal', match: { kind: 'exact', value: 'true' }, invert: false, treatMissingAsEmpty: false }]);
    expect(ping[1]!.match.headers).toEqual([{ name: 'x-envoy-internal', match: { kind: 'exact', value: 'true' }, invert: true, treatMissingAsEmpty: true }]);
    expect(ping[0]!.requestHeaders).toEqual(NONE);
    expect(ping[1]!.requestHeaders).toEqual({ remove: ['x-lyft-user-id'], add: [] });
    expect(ping[0]!.action).toEqual({ kind: 'direct', status: 200, body: Buffer.from("{ 'message': 'Success!' }") });
    // Route-level additions first, then the route configuration's (remove, then add).
    expect(ping[0]!.responseHeaders).toEqual({
      remove: ['x-envoy-upstream-canary', 'x-envoy-virtual-cluster'],
      add: [
        { name: 'x-ping-response', value: 'yes', append: true },
        { name: 'x-envoy-upstream-canary', value: 'true', append: true },
      ],
    });
    const locations = dflt!.routes.find((r) => r.match.path?.value === '/api/locations')!;
    expect(locations.match.path).toEqual({ kind: 'exact', value: '/api/locations', ignoreCase: true });
    expect(locations.action).toEqual({ kind: 'forward', clusters: one('locations'), prefixRewrite: '/rewrote', ...X });
    const apples = dflt!.routes.find((r) => r.match.path?.value === '/ApplEs')!;
    expect(apples.match.path).toEqual({ kind: 'exact', value: '/ApplEs', ignoreCase: false });
    const custom = dflt!.routes.find((r) => r.match.path?.value === '/customheaders')!;
    expect(custom.requestHeaders.add).toEqual([{ name: 'X-Client-IP', value: '%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%', append: true }]);
    expect((custom.action as ForwardAction).hostRewrite).toBe('new_host');
    const last = dflt!.routes.at(-1)!;
    expect(last.action).toEqual({ kind: 'forward', clusters: one('instant-server'), timeoutMs: 30_000, ...X });
  });

  it('Timeout: safe_regex and string durations', () => {
    const c = ok(load('Timeout'));
    expect(c.virtualHosts[0]!.routes.map((r) => [r.match.path, (r.action as ForwardAction).timeoutMs])).toEqual([
      [{ kind: 'regex', value: '^/api/v[0-9]/.*' }, 120_000],
      [{ kind: 'prefix', value: '/', ignoreCase: false }, 30_000],
    ]);
  });

  it('Weighted: weighted clusters (runtime_key_prefix has no runtime to read)', () => {
    const c = ok(load('Weighted'));
    for (const vh of c.virtualHosts) {
      expect((vh.routes[0]!.action as ForwardAction).clusters).toEqual([
        { cluster: 'cluster1', weight: 30, requestHeaders: NONE, responseHeaders: NONE },
        { cluster: 'cluster2', weight: 30, requestHeaders: NONE, responseHeaders: NONE },
        { cluster: 'cluster3', weight: 40, requestHeaders: NONE, responseHeaders: NONE },
      ]);
    }
  });

  it('lowerCamelCase input translates the same', () => {
    for (const name of ['Redirect', 'TestRoutes', 'Timeout', 'Weighted']) {
      const snake = translateRouteConfiguration(load(name), name);
      const camelCase = translateRouteConfiguration(camel(load(name)), name);
      expect(camelCase, name).toEqual(snake);
    }
  });

  it('reports a field set in both spellings', () => {
    expect(problems(cfg(fwd(), { requireTls: 'ALL', require_tls: 'ALL' }))).toEqual([
      { path: 'virtual_hosts[0].require_tls', message: 'set twice (snake_case and lowerCamelCase)' },
    ]);
  });
});

describe('scalars', () => {
  it('durations: strings, {seconds, nanos}, 0 disables, absent is the Envoy default', () => {
    const t = (timeout: unknown) => firstAction(ok(cfg(fwd(timeout === undefined ? {} : { timeout })))).timeoutMs;
    expect(t('0.5s')).toBe(500);
    expect(t('15s')).toBe(15_000);
    expect(t({ seconds: 1, nanos: 250_000_000 })).toBe(1250);
    expect(t({ seconds: '2' })).toBe(2000);
    expect(t('0s')).toBe(0);
    expect(t(undefined)).toBeUndefined();
    expect(problems(cfg(fwd({ timeout: '5m' })))).toEqual([
      { path: 'virtual_hosts[0].routes[0].route.timeout', message: 'invalid duration "5m": expected seconds with an "s" suffix, e.g. "15s" or "0.25s"' },
    ]);
  });

  it('wrapped integers: numbers, decimal strings, {value}', () => {
    for (const n of [3, '3', { value: 3 }]) {
      expect(firstAction(ok(cfg(fwd({ retry_policy: { num_retries: n } })))).retryPolicy?.numRetries).toBe(3);
    }
    const weighted = { match: { prefix: '/' }, route: { weighted_clusters: { clusters: [{ name: 'a', weight: '1' }, { name: 'b', weight: 0 }], total_weight: 1 } } };
    expect(firstAction(ok(cfg(weighted))).clusters).toEqual([{ cluster: 'a', weight: 1, requestHeaders: NONE, responseHeaders: NONE }]);
    expect(problems(cfg(fwd({ retry_policy: { num_retries: -1 } })))).toEqual([
      { path: 'virtual_hosts[0].routes[0].route.retry_policy.num_retries', message: 'must be a non-negative integer' },
    ]);
  });
});

describe('routes', () => {
  it('retry policies: Envoy defaults and every mapped field', () => {
    expect(firstAction(ok(cfg(fwd({ retry_policy: { retry_on: '5xx' } })))).retryPolicy).toEqual({
      numRetries: 1, retryOn: ['5xx'], retriableStatusCodes: [], backoffBaseMs: 25, backoffMaxMs: 250,
      avoidPreviousHosts: false, hostSelectionRetryMaxAttempts: 1,
    });
    const full = {
      retry_on: 'connect-failure, retriable-status-codes',
      num_retries: 2,
      per_try_timeout: '0.2s',
      retry_host_predicate: [{ name: 'envoy.retry_host_predicates.previous_hosts', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate' } }],
      host_selection_retry_max_attempts: '5',
      retriable_status_codes: [503, 429],
      retry_back_off: { base_interval: '0.01s', max_interval: '1s' },
    };
    expect(firstAction(ok(cfg(fwd({ retry_policy: full })))).retryPolicy).toEqual({
      numRetries: 2, retryOn: ['connect-failure', 'retriable-status-codes'], retriableStatusCodes: [503, 429], perTryTimeoutMs: 200,
      backoffBaseMs: 10, backoffMaxMs: 1000, avoidPreviousHosts: true, hostSelectionRetryMaxAttempts: 5,
    });
    // A virtual-host policy applies unless the route has its own.
    const c = ok(cfg(fwd(), { retry_policy: { retry_on: 'reset', num_retries: 4 } }));
    expect(firstAction(c).retryPolicy?.numRetries).toBe(4);
    expect(firstAction(ok(cfg(fwd({ retry_policy: { num_retries: 0 } }), { retry_policy: { num_retries: 4 } }))).retryPolicy?.numRetries).toBe(0);
  });

  it('matches: headers, query parameters, path_separated_prefix, grpc, runtime_fraction', () => {
    const route = {
      match: {
        path_separated_prefix: '/api.v1',
        case_sensitive: false,
        grpc: {},
        headers: [
          { name: ':method', exact_match: 'GET' },
          { name: 'x-a', string_match: { prefix: 'v', ignore_case: true }, invert_match: true },
          { name: 'x-b', present_match: false },
          { name: 'x-c', safe_regex_match: { google_re2: {}, regex: '\\d+' }, treat_missing_header_as_empty: true },
          { name: 'x-d' },
        ],
        query_parameters: [{ name: 'q', string_match: { exact: 'yes' } }, { name: 'p', present_match: true }],
        runtime_fraction: { default_value: { numerator: 100 }, runtime_key: 'k' },
      },
      route: { cluster: 'c' },
    };
    expect(firstRoute(ok(cfg(route))).match).toEqual({
      path: { kind: 'regex', value: '(?s)(?i)/api\\.v1(?:/.*)?' },
      headers: [
        { name: ':method', match: { kind: 'exact', value: 'GET' }, invert: false, treatMissingAsEmpty: false },
        { name: 'x-a', match: { kind: 'prefix', value: 'v', ignoreCase: true }, invert: true, treatMissingAsEmpty: false },
        { name: 'x-b', invert: true, treatMissingAsEmpty: false },
        { name: 'x-c', match: { kind: 'regex', value: '\\d+' }, invert: false, treatMissingAsEmpty: true },
        { name: 'x-d', invert: false, treatMissingAsEmpty: false },
        { name: 'content-type', match: { kind: 'regex', value: 'application/grpc([+;].*)?' }, invert: false, treatMissingAsEmpty: false },
      ],
      queryParams: [{ name: 'q', match: { kind: 'exact', value: 'yes' } }, { name: 'p' }],
    });
    // 0% never matches: the route is dropped.
    const never = { match: { prefix: '/', runtime_fraction: { default_value: { numerator: 0, denominator: 'MILLION' } } }, route: { cluster: 'c' } };
    expect(ok(cfg(never)).virtualHosts[0]!.routes).toEqual([]);
  });

  it('weighted clusters, rewrites, mirrors', () => {
    const route = {
      match: { prefix: '/' },
      route: {
        weighted_clusters: {
          clusters: [
            { name: 'a', weight: 90, request_headers_to_add: [{ header: { key: 'x-w', value: 'a' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' }], host_rewrite_literal: 'a.example' },
            { name: 'b', weight: 10, response_headers_to_remove: ['x-r'] },
          ],
        },
        regex_rewrite: { pattern: { regex: '^/v1/(.*)' }, substitution: '/\\1' },
        host_rewrite_literal: 'h.example',
        request_mirror_policies: [
          { cluster: 'm1' },
          { cluster: 'm2', runtime_fraction: { default_value: { numerator: 2500, denominator: 'TEN_THOUSAND' } } },
          { cluster: 'm3', runtime_fraction: { default_value: { numerator: 0 } } },
        ],
      },
    };
    expect(firstAction(ok(cfg(route)))).toEqual({
      kind: 'forward',
      clusters: [
        { cluster: 'a', weight: 90, requestHeaders: { remove: [], add: [{ name: 'x-w', value: 'a', append: false }] }, responseHeaders: NONE, hostRewrite: 'a.example' },
        { cluster: 'b', weight: 10, requestHeaders: NONE, responseHeaders: { remove: ['x-r'], add: [] } },
      ],
      regexRewrite: { pattern: '^/v1/(.*)', substitution: '/\\1' },
      hostRewrite: 'h.example',
      mirrors: [{ cluster: 'm1', percentage: 100 }, { cluster: 'm2', percentage: 25 }],
      ...X,
    });
  });

  it('redirects: codes, schemes, ports; direct responses with inline bytes', () => {
    const redirect = { match: { prefix: '/' }, redirect: { https_redirect: true, port_redirect: 8443, response_code: 'PERMANENT_REDIRECT' } };
    expect(firstRoute(ok(cfg(redirect))).action).toEqual({ kind: 'redirect', schemeRedirect: 'https', portRedirect: 8443, responseCode: 308 });
    const found = { match: { prefix: '/' }, redirect: { scheme_redirect: 'HTTP', response_code: 1 } };
    expect(firstRoute(ok(cfg(found))).action).toEqual({ kind: 'redirect', schemeRedirect: 'http', responseCode: 302 });
    const direct = { match: { prefix: '/' }, direct_response: { status: 503, body: { inline_bytes: Buffer.from('down').toString('base64') } } };
    expect(firstRoute(ok(cfg(direct))).action).toEqual({ kind: 'direct', status: 503, body: Buffer.from('down') });
  });

  it('header mutations: route, then virtual host, then config; most_specific_header_mutations_wins reverses', () => {
    const add = (key: string, value: string, extra: Record<string, unknown> = {}) => ({ header: { key, value }, ...extra });
    const route = { ...fwd(), request_headers_to_add: [add('x-a', 'route', { append: false })], request_headers_to_remove: ['x-gone'] };
    const vh = { request_headers_to_add: [add('x-b', 'vh')], request_headers_to_remove: ['x-a'] };
    const rc = { request_headers_to_add: [add('x-a', 'config', { append_action: 'APPEND_IF_EXISTS_OR_ADD' }), add('x-empty', '')] };
    // The virtual host's remove of x-a undoes the route's add of it.
    expect(firstRoute(ok(cfg(route, vh, rc))).requestHeaders).toEqual({
      remove: ['x-gone', 'x-a'],
      add: [{ name: 'x-b', value: 'vh', append: true }, { name: 'x-a', value: 'config', append: true }],
    });
    expect(firstRoute(ok(cfg(route, vh, { ...rc, most_specific_header_mutations_wins: true }))).requestHeaders).toEqual({
      remove: ['x-a', 'x-gone'],
      add: [{ name: 'x-b', value: 'vh', append: true }, { name: 'x-a', value: 'route', append: false }],
    });
    const keep = { ...fwd(), response_headers_to_add: [add('x-empty', '', { keep_empty_value: true })] };
    expect(firstRoute(ok(cfg(keep))).responseHeaders.add).toEqual([{ name: 'x-empty', value: '', append: true }]);
  });

  it('accepts fields that only name stats or spans', () => {
    const route = { ...fwd(), decorator: { operation: 'op' }, stat_prefix: 's', metadata: { filter_metadata: {} } };
    ok(cfg(route, { virtual_clusters: [{ name: 'v', headers: [] }], include_request_attempt_count: true }, { validate_clusters: false }));
  });

  it('domains lose their port; duplicates across virtual hosts are refused', () => {
    const rc = {
      virtual_hosts: [
        { name: 'a', domains: ['A.example:8080', 'a.example'], routes: [fwd()] },
        { name: 'b', domains: ['a.example:9090'], routes: [fwd()] },
      ],
    };
    const r = translateRouteConfiguration(rc, 'x');
    expect(r.config.virtualHosts[0]!.domains).toEqual(['a.example']);
    expect(r.problems).toEqual([
      { path: 'virtual_hosts[1].domains[0]', message: 'domain "a.example:9090" is also in virtual host "a" (domains are matched without their port)' },
    ]);
  });
});

describe('per-route RBAC (RBACPerRoute)', () => {
  const RBAC_PER_ROUTE = 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute';
  const rbacOn = (perRoute: Record<string, unknown>, where: 'route' | 'vhost'): unknown =>
    where === 'route'
      ? cfg({ ...fwd(), typed_per_filter_config: { 'envoy.filters.http.rbac': { '@type': RBAC_PER_ROUTE, ...perRoute } } })
      : cfg(fwd(), { typed_per_filter_config: { 'envoy.filters.http.rbac': { '@type': RBAC_PER_ROUTE, ...perRoute } } });

  it('without rbac turns the listener’s policies off for the route (Envoy’s meaning)', () => {
    const r = translateRouteConfiguration(rbacOn({}, 'route'), 'x');
    expect(r.problems).toEqual([]);
    expect(r.config.virtualHosts[0]!.routes[0]!.authorization).toBeNull();
  });

  it('with rbac replaces them, and a virtual host’s applies to its routes', () => {
    const rbac = { rules: { action: 'DENY', policies: { 'deny-delete': { permissions: [{ header: { name: ':method', string_match: { exact: 'DELETE' } } }], principals: [{ any: true }] } } } };
    for (const where of ['route', 'vhost'] as const) {
      const r = translateRouteConfiguration(rbacOn({ rbac }, where), 'x');
      expect(r.problems, where).toEqual([]);
      const authz = r.config.virtualHosts[0]!.routes[0]!.authorization!;
      expect(authz.deny.map((p) => p.name), where).toEqual(['deny-delete']);
      expect(authz.allow, where).toEqual([]);
    }
  });
});

describe('refusals name the field', () => {
  const r0 = 'virtual_hosts[0].routes[0]';
  const cases: Array<[string, unknown, string, string]> = [
    ['invalid RE2', cfg({ match: { safe_regex: { regex: '(?=x)' } }, route: { cluster: 'c' } }), `${r0}.match.safe_regex.regex`, 'invalid RE2 regex'],
    ['invalid header RE2', cfg({ match: { prefix: '/', headers: [{ name: 'x', string_match: { safe_regex: { regex: '(a' } } }] }, route: { cluster: 'c' } }), `${r0}.match.headers[0].string_match.safe_regex.regex`, 'invalid RE2 regex'],
    ['unknown field', cfg({ ...fwd(), bogus: 1 }), `${r0}.bogus`, 'unknown field'],
    ['runtime fraction between 0 and 100%', cfg({ match: { prefix: '/', runtime_fraction: { default_value: { numerator: 50 } } }, route: { cluster: 'c' } }), `${r0}.match.runtime_fraction`, 'a 50% route match is not supported'],
    ['range match', cfg({ match: { prefix: '/', headers: [{ name: 'x', range_match: { start: 1, end: 3 } }] }, route: { cluster: 'c' } }), `${r0}.match.headers[0].range_match`, 'not supported'],
    ['two hash policies', cfg(fwd({ hash_policy: [{ header: { header_name: 'x' } }, { connection_properties: { source_ip: true }, terminal: true }] })), `${r0}.route.hash_policy[1]`, 'only one hash policy'],
    ['filter_state hash policy', cfg(fwd({ hash_policy: [{ filter_state: { key: 'k' } }] })), `${r0}.route.hash_policy[0].filter_state`, 'not supported'],
    ['source_ip: false', cfg(fwd({ hash_policy: [{ connection_properties: {} }] })), `${r0}.route.hash_policy[0].connection_properties.source_ip`, 'only source_ip: true'],
    ['unknown per-filter config', cfg({ ...fwd(), typed_per_filter_config: { 'envoy.filters.http.lua': { '@type': 'type.googleapis.com/envoy.extensions.filters.http.lua.v3.LuaPerRoute', disabled: true } } }), `${r0}.typed_per_filter_config.envoy.filters.http.lua`, 'has no per-route configuration in skiff (type envoy.extensions.filters.http.lua.v3.LuaPerRoute)'],
    ['per-filter config without @type', cfg({ ...fwd(), typed_per_filter_config: { 'envoy.filters.http.fault': {} } }), `${r0}.typed_per_filter_config.envoy.filters.http.fault`, 'must be an Any'],
    ['RBACPerRoute with a CEL condition', cfg(fwd(), { typed_per_filter_config: { 'envoy.filters.http.rbac': { '@type': 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute', rbac: { rules: { policies: { p: { permissions: [{ any: true }], principals: [{ any: true }], condition: { id: '1' } } } } } } } }), 'virtual_hosts[0].typed_per_filter_config.envoy.filters.http.rbac.rbac.rules.policies["p"].condition', 'CEL conditions are not supported'],
    ['fault limited by headers', cfg({ ...fwd(), typed_per_filter_config: { f: { '@type': FAULT, abort: { http_status: 503, percentage: { numerator: 100 } }, headers: [{ name: 'x' }] } } }), `${r0}.typed_per_filter_config.f.headers`, 'not supported'],
    ['local rate limit at 50%', cfg({ ...fwd(), typed_per_filter_config: { rl: { '@type': RATE_LIMIT, stat_prefix: 's', token_bucket: { max_tokens: 1, fill_interval: '1s' }, filter_enabled: { default_value: { numerator: 50 } } } } }), `${r0}.typed_per_filter_config.rl.filter_enabled`, 'a 50% fraction is not supported'],
    ['CORS private network access', cfg(fwd(), { cors: { allow_origin_string_match: [{ exact: 'x' }], allow_private_network_access: true } }), 'virtual_hosts[0].cors.allow_private_network_access', 'not supported'],
    ['WebSocket disabled', cfg(fwd({ upgrade_configs: [{ upgrade_type: 'websocket', enabled: false }] })), `${r0}.route.upgrade_configs[0].enabled`, 'cannot be disabled'],
    ['CONNECT upgrade', cfg(fwd({ upgrade_configs: [{ upgrade_type: 'CONNECT', connect_config: {} }] })), `${r0}.route.upgrade_configs[0].upgrade_type`, 'CONNECT termination is not supported'],
    ['connect_matcher', cfg({ match: { connect_matcher: {} }, route: { cluster: 'c' } }), `${r0}.match.connect_matcher`, 'not supported'],
    ['strip_query', cfg({ match: { prefix: '/' }, redirect: { path_redirect: '/x', strip_query: true } }), `${r0}.redirect.strip_query`, 'not supported'],
    ['ADD_IF_ABSENT', cfg({ ...fwd(), request_headers_to_add: [{ header: { key: 'x', value: 'v' }, append_action: 'ADD_IF_ABSENT' }] }), `${r0}.request_headers_to_add[0].append_action`, 'ADD_IF_ABSENT is not supported'],
    ['append with append_action', cfg({ ...fwd(), request_headers_to_add: [{ header: { key: 'x', value: 'v' }, append: true, append_action: 0 }] }), `${r0}.request_headers_to_add[0].append_action`, 'exclusive'],
    ['pseudo-header mutation', cfg({ ...fwd(), request_headers_to_add: [{ header: { key: ':authority', value: 'v' } }] }), `${r0}.request_headers_to_add[0].header.key`, 'may not be modified'],
    ['other retry predicates', cfg(fwd({ retry_policy: { retry_host_predicate: [{ name: 'envoy.retry_host_predicates.omit_canary_hosts' }] } })), `${r0}.route.retry_policy.retry_host_predicate[0]`, 'not supported'],
    ['retry priority', cfg(fwd({ retry_policy: { retry_priority: { name: 'p' } } })), `${r0}.route.retry_policy.retry_priority`, 'not supported'],
    ['cluster_header', cfg({ match: { prefix: '/' }, route: { cluster_header: 'x-cluster' } }), `${r0}.route.cluster_header`, 'not supported'],
    ['max_stream_duration', cfg(fwd({ max_stream_duration: { grpc_timeout_header_max: '5m' } })), `${r0}.route.max_stream_duration.grpc_timeout_header_max`, 'invalid duration'],
    ['internal-only header matched', cfg({ match: { prefix: '/', headers: [{ name: 'X-Secret' }] }, route: { cluster: 'c' } }, {}, { internal_only_headers: ['x-secret'] }), `${r0}.match.headers[0]`, 'internal-only'],
    ['vhds', cfg(fwd(), {}, { vhds: { config_source: { ads: {} } } }), 'vhds', 'not supported'],
    ['total_weight mismatch', cfg({ match: { prefix: '/' }, route: { weighted_clusters: { clusters: [{ name: 'a', weight: 1 }], total_weight: 100 } } }), `${r0}.route.weighted_clusters.total_weight`, 'not the total_weight 100'],
    ['direct body too large', cfg({ match: { prefix: '/' }, direct_response: { status: 200, body: { inline_string: 'x'.repeat(5000) } } }), `${r0}.direct_response.body`, 'max_direct_response_body_size_bytes'],
    ['no action', cfg({ match: { prefix: '/' } }), r0, 'exactly one of route, redirect or direct_response'],
    ['bad enum', cfg({ match: { prefix: '/' }, redirect: { response_code: 'GONE' } }), `${r0}.redirect.response_code`, 'must be one of'],
    ['camelCase path is reported in snake_case', cfg({ match: { prefix: '/' }, route: { cluster: 'c', hashPolicy: [{ filterState: { key: 'k' } }] } }), `${r0}.route.hash_policy[0].filter_state`, 'not supported'],
  ];
  for (const [what, rc, path, message] of cases) {
    it(what, () => {
      const found = problems(rc);
      expect(found.map((p) => p.path)).toEqual([path]);
      expect(found[0]!.message).toContain(message);
    });
  }

  it('a refused field holding its default is accepted', () => {
    ok(cfg(fwd({ auto_host_rewrite: false, cluster_header: '' }), { include_attempt_count_in_response: false }));
  });
});

// === istiod output ===

interface Found {
  readonly where: string;
  readonly rc: unknown;
}

/**
 * Every RouteConfiguration in a config dump: RDS (`route_config`, dynamic and static) and those
 * inline in listeners' HttpConnectionManagers (also under `failed_configuration`), in either
 * case style; the Any wrapper's @type is dropped, as the ADS decoder unwraps it.
 */
function routeConfigsIn(file: string): Found[] {
  const out: Found[] = [];
  const unwrap = (v: Record<string, unknown>): unknown => {
    const { ['@type']: _type, ...rest } = v;
    return rest;
  };
  const walk = (v: unknown, where: string): void => {
    if (Array.isArray(v)) return v.forEach((x, i) => walk(x, `${where}[${i}]`));
    if (typeof v !== 'object' || v === null) return;
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      if ((k === 'route_config' || k === 'routeConfig') && typeof x === 'object' && x !== null) out.push({ where: `${where}.${k}`, rc: unwrap(x as Record<string, unknown>) });
      else walk(x, `${where}.${k}`);
    }
  };
  walk(parse(readFileSync(`${DUMPS}/${file}`, 'utf8')), file);
  return out;
}

const DUMP_FILES = ['DeathStarBench__config_dump.json', 'istio__configdump.json', 'istio__describe__http_config.json', 'istio__authz__configdump.yaml'];
/** The ambient HBONE `connect_terminate` listener's route: CONNECT termination, refused (below). */
const isConnectTerminate = (rc: unknown): boolean => JSON.stringify(rc).includes('"connect_matcher"');

describe('istiod route configurations', () => {
  it('every route configuration in the four dumps translates with no problems', () => {
    const counts: Record<string, number> = {};
    for (const file of DUMP_FILES) {
      for (const { where, rc } of routeConfigsIn(file)) {
        if (isConnectTerminate(rc)) continue;
        counts[file] = (counts[file] ?? 0) + 1;
        expect(translateRouteConfiguration(rc).problems, where).toEqual([]);
      }
    }
    // 90 RDS + inline ones (incl. virtualInbound's failed_configuration); 6 dynamic + 8 static + inline.
    expect(counts).toEqual({
      'DeathStarBench__config_dump.json': 104,
      'istio__configdump.json': 24,
      'istio__describe__http_config.json': 1,
      'istio__authz__configdump.yaml': 7,
    });
  });

  it('the connect_terminate route (HBONE CONNECT termination) is refused, naming each field', () => {
    const rc = routeConfigsIn('istio__authz__configdump.yaml').find((f) => isConnectTerminate(f.rc))!.rc;
    const r0 = 'virtual_hosts[0].routes[0]';
    expect(translateRouteConfiguration(rc).problems.map((p) => p.path)).toEqual([
      `${r0}.match.connect_matcher`,
      `${r0}.route.upgrade_configs[0].upgrade_type`,
      `${r0}.typed_per_filter_config.connect_authority`,
    ]);
  });

  it('an ingress gateway route (describe fixture): retries, timeout 0s, max_grpc_timeout 0s, attempt count', () => {
    const [{ rc }] = routeConfigsIn('istio__describe__http_config.json');
    const c = ok(rc);
    const action = c.virtualHosts.flatMap((v) => v.routes).map((r) => r.action).find((a) => a.kind === 'forward') as ForwardAction;
    expect(action.timeoutMs).toBe(0);
    expect(action.grpcTimeout).toEqual({ kind: 'grpc', maxMs: 0, offsetMs: 0 });
    expect(action.requestAttemptCount).toBe(true);
    expect(action.retryPolicy).toEqual({
      numRetries: 2,
      retryOn: ['connect-failure', 'refused-stream', 'unavailable', 'cancelled', 'retriable-status-codes'],
      retriableStatusCodes: [503],
      backoffBaseMs: 25,
      backoffMaxMs: 250,
      avoidPreviousHosts: true,
      hostSelectionRetryMaxAttempts: 5,
    });
  });

  it('inbound routes (camelCase, Istio 1.10): max_stream_duration puts grpc-timeout in charge, uncapped', () => {
    const inbound = routeConfigsIn('istio__configdump.json')
      .map((f) => ok(f.rc))
      .flatMap((c) => c.virtualHosts)
      .find((v) => v.name.startsWith('inbound|http|'))!;
    const action = inbound.routes[0]!.action as ForwardAction;
    expect(action.grpcTimeout).toEqual({ kind: 'stream', streamMs: 0, headerMaxMs: 0, offsetMs: 0 });
    expect(action.timeoutMs).toBe(0);
  });
});

describe('route action policies', () => {
  it('grpc-timeout readings: none, max_grpc_timeout with offset, max_stream_duration', () => {
    expect(firstAction(ok(cfg(fwd()))).grpcTimeout).toEqual({ kind: 'ignore' });
    expect(firstAction(ok(cfg(fwd({ grpc_timeout_offset: '1s' })))).grpcTimeout).toEqual({ kind: 'ignore' });
    expect(firstAction(ok(cfg(fwd({ max_grpc_timeout: '10s', grpc_timeout_offset: '0.1s' })))).grpcTimeout).toEqual({ kind: 'grpc', maxMs: 10_000, offsetMs: 100 });
    expect(firstAction(ok(cfg(fwd({ max_stream_duration: { max_stream_duration: '30s' } })))).grpcTimeout).toEqual({ kind: 'stream', streamMs: 30_000, offsetMs: 0 });
    expect(firstAction(ok(cfg(fwd({ max_stream_duration: { grpc_timeout_header_max: '5s', grpc_timeout_header_offset: '0.05s' } })))).grpcTimeout).toEqual({
      kind: 'stream', streamMs: 0, headerMaxMs: 5000, offsetMs: 50,
    });
  });

  it('hash policies: header, cookie with ttl and path, source ip, query parameter', () => {
    const hp = (p: unknown) => firstAction(ok(cfg(fwd({ hash_policy: [p] })))).hashPolicy;
    expect(hp({ header: { header_name: 'X-User' } })).toEqual({ kind: 'header', name: 'x-user' });
    expect(hp({ cookie: { name: 'session', ttl: '60s', path: '/app' }, terminal: true })).toEqual({ kind: 'cookie', name: 'session', path: '/app', ttlMs: 60_000 });
    expect(hp({ cookie: { name: 'session' } })).toEqual({ kind: 'cookie', name: 'session' });
    expect(hp({ connection_properties: { source_ip: true } })).toEqual({ kind: 'sourceIp' });
    expect(hp({ query_parameter: { name: 'u' } })).toEqual({ kind: 'queryParam', name: 'u' });
  });

  it('WebSocket upgrades are accepted (skiff proxies them on every route)', () => {
    ok(cfg(fwd({ upgrade_configs: [{ upgrade_type: 'websocket' }, { upgrade_type: 'WebSocket', enabled: true }] })));
  });

  it('include_request_attempt_count is set on every forward action of the virtual host', () => {
    expect(firstAction(ok(cfg(fwd(), { include_request_attempt_count: true }))).requestAttemptCount).toBe(true);
    expect(firstAction(ok(cfg(fwd()))).requestAttemptCount).toBe(false);
  });

  it('mirror policies: the most specific non-empty list wins', () => {
    const rc = cfg(fwd(), { request_mirror_policies: [{ cluster: 'vh' }] }, { request_mirror_policies: [{ cluster: 'rc' }] });
    expect(firstAction(ok(rc)).mirrors).toEqual([{ cluster: 'vh', percentage: 100 }]);
    expect(firstAction(ok(cfg(fwd(), {}, { request_mirror_policies: [{ cluster: 'rc' }] }))).mirrors).toEqual([{ cluster: 'rc', percentage: 100 }]);
    expect(firstAction(ok(cfg(fwd({ request_mirror_policies: [{ cluster: 'own' }] }), { request_mirror_policies: [{ cluster: 'vh' }] }))).mirrors).toEqual([{ cluster: 'own', percentage: 100 }]);
  });
});

describe('per-filter configs', () => {
  const fault = { '@type': FAULT, delay: { fixed_delay: '0.5s', percentage: { numerator: 50 } }, abort: { http_status: 503, percentage: { numerator: 1, denominator: 'TEN_THOUSAND' } } };
  const bucket = { '@type': RATE_LIMIT, stat_prefix: 'http_local_rate_limiter', token_bucket: { max_tokens: 10, tokens_per_fill: 5, fill_interval: '60s' }, filter_enabled: { runtime_key: 'e', default_value: { numerator: 100 } }, filter_enforced: { default_value: { numerator: 1_000_000, denominator: 'MILLION' } } };
  const cors = { '@type': CORS, allow_origin_string_match: [{ exact: 'https://a.example' }, { suffix: '.b.example' }], allow_methods: 'GET,POST', allow_headers: 'x-a', expose_headers: 'x-b', max_age: '600', allow_credentials: true, forward_not_matching_preflights: false };
  const corsModel = {
    allowOrigins: [{ kind: 'exact', value: 'https://a.example' }, { kind: 'suffix', value: '.b.example' }],
    allowMethods: 'GET,POST', allowHeaders: 'x-a', exposeHeaders: 'x-b', maxAge: '600', allowCredentials: true, forwardNotMatchingPreflights: false,
  };

  it('fault, local rate limit and CORS on a route', () => {
    const r = firstRoute(ok(cfg({ ...fwd(), typed_per_filter_config: { 'envoy.filters.http.fault': fault, 'envoy.filters.http.local_ratelimit': bucket, 'envoy.filters.http.cors': cors } })));
    expect(r.fault).toEqual({ delay: { fixedDelayMs: 500, percentage: 50 }, abort: { httpStatus: 503, percentage: 0.01 } });
    expect(r.rateLimit).toEqual({ key: 'r|virtual_hosts[0].routes[0]', maxTokens: 10, tokensPerFill: 5, fillIntervalMs: 60_000 });
    expect(r.cors).toEqual(corsModel);
  });

  it('gRPC aborts; an unset percentage injects nothing; a rate limit not enabled or not enforced limits nothing', () => {
    const grpc = firstRoute(ok(cfg({ ...fwd(), typed_per_filter_config: { f: { '@type': FAULT, abort: { grpc_status: 14, percentage: { numerator: 100 } } } } })));
    expect(grpc.fault).toEqual({ abort: { grpcStatus: 14, percentage: 100 } });
    expect(firstRoute(ok(cfg({ ...fwd(), typed_per_filter_config: { f: { '@type': FAULT, delay: { fixed_delay: '1s' } } } }))).fault).toBeUndefined();
    const { filter_enforced: _, ...shadow } = bucket;
    expect(firstRoute(ok(cfg({ ...fwd(), typed_per_filter_config: { rl: shadow } }))).rateLimit).toBeUndefined();
  });

  it('inheritance: route over virtual host over route configuration, per filter; vhost buckets are shared', () => {
    const rc = {
      name: 'r',
      typed_per_filter_config: { f: { '@type': FAULT, abort: fault.abort } },
      virtual_hosts: [{
        name: 'vh', domains: ['*'],
        typed_per_filter_config: { rl: bucket },
        cors: { allow_origin_string_match: [{ exact: 'https://vh.example' }] },
        routes: [{ ...fwd(), route: { cluster: 'c', cors: { allow_origin_string_match: [{ prefix: 'https://' }] } } }, { ...fwd(), typed_per_filter_config: { c: cors } }],
      }],
    };
    const [a, b] = ok(rc).virtualHosts[0]!.routes;
    expect(a!.fault).toEqual({ abort: { httpStatus: 503, percentage: 0.01 } });
    expect(b!.fault).toEqual(a!.fault);
    expect(a!.rateLimit!.key).toBe('r|virtual_hosts[0]');
    expect(b!.rateLimit).toEqual(a!.rateLimit);
    // The deprecated RouteAction cors is the route's own; the CORS filter config too.
    expect(a!.cors?.allowOrigins).toEqual([{ kind: 'prefix', value: 'https://' }]);
    expect(b!.cors).toEqual(corsModel);
    expect(firstRoute(ok(cfg(fwd(), { cors: { allow_origin_string_match: [{ exact: 'x' }] } }))).cors).toEqual({
      allowOrigins: [{ kind: 'exact', value: 'x' }], allowMethods: '', allowHeaders: '', exposeHeaders: '', maxAge: '', allowCredentials: false, forwardNotMatchingPreflights: true,
    });
    // filter_enabled 0% turns CORS off.
    expect(firstRoute(ok(cfg(fwd(), { cors: { allow_origin_string_match: [{ exact: 'x' }], filter_enabled: { default_value: { numerator: 0 } } } }))).cors).toBeUndefined();
  });
});
