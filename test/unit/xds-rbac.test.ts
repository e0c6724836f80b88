/**
 * Envoy RBAC filters (xDS) → model Authorization → compiled check: the real filters istiod
 * generated in istio__authz__configdump.yaml, Envoy's filter semantics (ALLOW / DENY / LOG,
 * `rules` absent vs `rules: {}`, shadow rules, a chain of filters), matcher trees, and refusals
 * with their exact paths.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { compileAuthorization, type AuthzAttributes } from '../../src/compile/authorization.js';
import { combineRbacFilters, translateHttpRbac, translateNetworkRbac } from '../../src/config/xds/rbac.js';
import type { Authorization } from '../../src/model/index.js';

// === helpers ===

const HTTP_RBAC = 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC';
const NETWORK_RBAC = 'type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC';
const DUMP = '/work/shared/xds-data/istio__authz__configdump.yaml';

interface Found {
  readonly path: string;
  readonly config: Record<string, unknown>;
}

/** Every RBAC typed_config in the dump, with where it sits. */
function rbacFilters(): Found[] {
  const out: Found[] = [];
  const walk = (v: unknown, path: string): void => {
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${path}[${i}]`));
    else if (typeof v === 'object' && v !== null) {
      const o = v as Record<string, unknown>;
      if (o['@type'] === HTTP_RBAC || o['@type'] === NETWORK_RBAC) out.push({ path, config: o });
      else for (const [k, x] of Object.entries(o)) walk(x, `${path}.${k}`);
    }
  };
  walk(JSON.parse(readFileSync(DUMP, 'utf8')), '');
  return out;
}

/** Renames every object key to lowerCamelCase (proto3 JSON names), except policy names. */
function camel(v: unknown, keepKeys = false): unknown {
  if (Array.isArray(v)) return v.map((x) => camel(x));
  if (typeof v !== 'object' || v === null) return v;
  return Object.fromEntries(
    Object.entries(v).map(([k, x]) => [keepKeys ? k : k.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase()), camel(x, k === 'policies')]),
  );
}

function ok(config: unknown, network = false): Authorization {
  const r = network ? translateNetworkRbac(config) : translateHttpRbac(config);
  expect(r.problems).toEqual([]);
  return r.authorization!;
}

function problems(config: unknown, network = false): string[] {
  const r = network ? translateNetworkRbac(config) : translateHttpRbac(config);
  expect(r.authorization).toBeUndefined();
  return r.problems.map((p) => `${p.path}: ${p.message}`);
}

/** One policy `p` with these permissions and principals. */
const policy = (permissions: unknown[], principals: unknown[] = [{ any: true }], action?: string): Record<string, unknown> => ({
  rules: { ...(action !== undefined ? { action } : {}), policies: { p: { permissions, principals } } },
});

const BASE: AuthzAttributes = {
  sourceIp: '10.0.0.1',
  remoteIp: '10.0.0.1',
  principal: 'spiffe://cluster.local/ns/default/sa/sleep',
  destinationIp: '10.1.0.5',
  destinationPort: 8080,
};

interface HttpOptions {
  readonly method?: string;
  readonly path?: string;
  readonly host?: string;
  readonly headers?: Readonly<Record<string, string>>;
}

/** An HTTP request's attributes, pseudo-headers answered as the data path does (http/authorization-check.ts). */
function http(o: HttpOptions = {}, over: Partial<AuthzAttributes> = {}): AuthzAttributes {
  const headers = o.headers ?? {};
  const method = o.method ?? 'GET';
  const path = o.path ?? '/';
  const host = o.host ?? 'httpbin.default';
  const pseudo: Record<string, string> = { ':method': method, ':path': path, ':authority': host, ':scheme': 'http' };
  return { ...BASE, ...over, http: { method, path, host, header: (name) => pseudo[name] ?? headers[name] } };
}

const tcp = (over: Partial<AuthzAttributes> = {}): AuthzAttributes => ({ ...BASE, ...over });
const googleJwt = { requestPrincipal: 'https://accounts.google.com/u1', claims: { iss: 'https://accounts.google.com', sub: 'u1' } };

/** Whether one HTTP RBAC filter (its typed_config) allows `attrs`. */
function allows(config: unknown, attrs: AuthzAttributes, network = false): boolean {
  return compileAuthorization(ok(config, network)).check(attrs).allowed;
}

// === the real filters istiod generated ===

describe('istio__authz__configdump.yaml', () => {
  const found = rbacFilters();

  it('holds http and network RBAC filters, and every one translates without problems (snake_case and camelCase)', () => {
    expect(found.filter((f) => f.config['@type'] === HTTP_RBAC).length).toBe(10);
    expect(found.filter((f) => f.config['@type'] === NETWORK_RBAC).length).toBe(3);
    for (const f of found) {
      const network = f.config['@type'] === NETWORK_RBAC;
      const snake = network ? translateNetworkRbac(f.config) : translateHttpRbac(f.config);
      expect(snake.problems, f.path).toEqual([]);
      const camelCase = network ? translateNetworkRbac(camel(f.config)) : translateHttpRbac(camel(f.config));
      expect(camelCase, f.path).toEqual(snake);
    }
  });

  it('translates the ALLOW filter into its Envoy-form policy', () => {
    const allow = found.find((f) => f.config['@type'] === HTTP_RBAC && 'rules' in f.config)!;
    const a = ok(allow.config);
    expect(a.deny).toEqual([]);
    expect(a.audit).toEqual([]);
    expect(a.allow.map((p) => p.name)).toEqual(['ns[default]-policy[httpbin]-rule[0]']);
    const rbac = a.allow[0]!.rbac!;
    expect(rbac.permissions[0]).toEqual({
      kind: 'and',
      of: [
        { kind: 'or', of: [{ kind: 'header', header: { name: ':method', match: { kind: 'exact', value: 'GET' }, invert: false, treatMissingAsEmpty: false } }] },
        { kind: 'or', of: [{ kind: 'path', match: { kind: 'prefix', value: '/info' } }] },
      ],
    });
    expect(rbac.principals[1]).toEqual({
      kind: 'and',
      of: [
        { kind: 'or', of: [{ kind: 'peer', match: { kind: 'regex', value: '.*/ns/test/.*' } }] },
        { kind: 'or', of: [{ kind: 'claim', path: ['iss'], match: { kind: 'exact', value: 'https://accounts.google.com' } }] },
      ],
    });
  });

  it('records the shadow (CUSTOM dry-run) filter without enforcing it', () => {
    const shadow = found.find((f) => f.config['@type'] === HTTP_RBAC && 'shadow_rules' in f.config)!;
    const r = translateHttpRbac(shadow.config);
    expect(r.problems).toEqual([]);
    expect(r.authorization).toEqual({ deny: [], allow: [], audit: [] });
    expect(r.shadow).toEqual({ action: 'DENY', policies: ['istio-ext-authz-ns[default]-policy[ext-authz]-rule[0]'] });
    expect(compileAuthorization(r.authorization!).enabled).toBe(false);
  });

  it('enforces the HTTP chain (ALLOW filter, then the shadow filter) as Envoy does', () => {
    const chain = found.filter((f) => f.path.includes('dynamic_listeners[23].active_state.listener.filter_chains[1]'));
    expect(chain.length).toBe(2);
    const combined = combineRbacFilters(chain.map((f) => ({ path: f.path, authorization: ok(f.config) })));
    expect(combined.problems).toEqual([]);
    const authz = compileAuthorization(combined.authorization!);
    // from sleep (mTLS) with a Google token: GET /info*, POST /data
    expect(authz.check(http({ path: '/info' }, googleJwt))).toEqual({ allowed: true, policy: 'ns[default]-policy[httpbin]-rule[0]' });
    expect(authz.check(http({ path: '/info/x' }, googleJwt)).allowed).toBe(true);
    expect(authz.check(http({ method: 'POST', path: '/data' }, googleJwt)).allowed).toBe(true);
    expect(authz.check(http({ method: 'POST', path: '/data/x' }, googleJwt)).allowed).toBe(false);
    expect(authz.check(http({ method: 'DELETE', path: '/info' }, googleJwt)).allowed).toBe(false);
    expect(authz.check(http({ path: '/other' }, googleJwt))).toEqual({ allowed: false });
    // any workload of namespace test, same token
    expect(authz.check(http({ path: '/info' }, { ...googleJwt, principal: 'spiffe://cluster.local/ns/test/sa/x' })).allowed).toBe(true);
    expect(authz.check(http({ path: '/info' }, { ...googleJwt, principal: 'spiffe://cluster.local/ns/prod/sa/x' })).allowed).toBe(false);
    // no token, another issuer, plaintext
    expect(authz.check(http({ path: '/info' })).allowed).toBe(false);
    expect(authz.check(http({ path: '/info' }, { requestPrincipal: 'https://evil/u1', claims: { iss: 'https://evil', sub: 'u1' } })).allowed).toBe(false);
    expect(authz.check(http({ path: '/info' }, { ...googleJwt, principal: undefined })).allowed).toBe(false);
    // Istio normalises claims into lists: a list holding the issuer matches too.
    expect(authz.check(http({ path: '/info' }, { requestPrincipal: 'x/y', claims: { iss: ['https://accounts.google.com'] } })).allowed).toBe(true);
  });

  it('denies every connection on the TCP chains (network `rules: {}`: ALLOW with no policies)', () => {
    const network = found.filter((f) => f.config['@type'] === NETWORK_RBAC);
    for (const f of network) {
      const a = ok(f.config, true);
      expect(a.allow.length).toBe(1);
      expect(a.allow[0]!.rules).toEqual([]);
      expect(a.allow[0]!.rbac).toBeUndefined();
      const authz = compileAuthorization(a);
      expect(authz.enabled).toBe(true);
      expect(authz.check(tcp())).toEqual({ allowed: false });
      expect(authz.check(tcp({ principal: undefined }))).toEqual({ allowed: false });
    }
  });
});

// === filter semantics ===

describe('filter semantics', () => {
  it('`rules` absent enforces nothing; `rules: {}` denies everything', () => {
    expect(ok({})).toEqual({ deny: [], allow: [], audit: [] });
    expect(compileAuthorization(ok({})).check(http()).allowed).toBe(true);
    expect(allows({ rules: {} }, http())).toBe(false);
    expect(allows({ rules: { action: 'ALLOW' } }, http())).toBe(false);
    // A DENY or LOG filter with no policies changes nothing.
    expect(allows({ rules: { action: 'DENY' } }, http())).toBe(true);
    expect(allows({ rules: { action: 'LOG', policies: {} } }, http())).toBe(true);
  });

  it('ALLOW allows when any policy matches, DENY denies when any matches, LOG never decides', () => {
    const get = [{ header: { name: ':method', string_match: { exact: 'GET' } } }];
    const post = [{ header: { name: ':method', exact_match: 'POST' } }];
    const two = { rules: { policies: { a: { permissions: get, principals: [{ any: true }] }, b: { permissions: post, principals: [{ any: true }] } } } };
    expect(allows(two, http({ method: 'GET' }))).toBe(true);
    expect(allows(two, http({ method: 'POST' }))).toBe(true);
    expect(allows(two, http({ method: 'PUT' }))).toBe(false);
    const deny = policy(get, [{ any: true }], 'DENY');
    expect(compileAuthorization(ok(deny)).check(http({ method: 'GET' }))).toEqual({ allowed: false, policy: 'p' });
    expect(allows(deny, http({ method: 'PUT' }))).toBe(true);
    const log = ok(policy(get, [{ any: true }], 'LOG'));
    expect(log.audit.map((p) => p.name)).toEqual(['p']);
    expect(compileAuthorization(log).enabled).toBe(false);
    expect(compileAuthorization(log).check(http({ method: 'GET' })).allowed).toBe(true);
  });

  it('a policy matches only when one permission and one principal match', () => {
    const cfg = policy([{ url_path: { path: { prefix: '/a' } } }], [{ direct_remote_ip: { address_prefix: '10.0.0.0', prefix_len: 8 } }]);
    expect(allows(cfg, http({ path: '/a/b' }))).toBe(true);
    expect(allows(cfg, http({ path: '/b' }))).toBe(false);
    expect(allows(cfg, http({ path: '/a' }, { sourceIp: '192.168.0.1' }))).toBe(false);
  });

  it('a chain: DENY filter, then ALLOW filter, then LOG filter', () => {
    const deny = ok(policy([{ url_path: { path: { prefix: '/admin' } } }], [{ any: true }], 'DENY'));
    const allow = ok(policy([{ destination_port: 8080 }]));
    const log = ok(policy([{ any: true }], [{ any: true }], 'LOG'));
    const c = combineRbacFilters([
      { path: 'http_filters[0]', authorization: deny },
      { path: 'http_filters[1]', authorization: allow },
      { path: 'http_filters[2]', authorization: log },
    ]);
    expect(c.problems).toEqual([]);
    const authz = compileAuthorization(c.authorization!);
    expect(authz.check(http({ path: '/admin/x' })).allowed).toBe(false);
    expect(authz.check(http({ path: '/x' })).allowed).toBe(true);
    expect(authz.check(http({ path: '/x' }, { destinationPort: 9090 })).allowed).toBe(false);
  });

  it('refuses a second enforcing ALLOW filter in one chain, but not one that enforces nothing', () => {
    const allow = ok(policy([{ any: true }]));
    const c = combineRbacFilters([
      { path: 'http_filters[0]', authorization: allow },
      { path: 'http_filters[1]', authorization: ok({}) },
      { path: 'http_filters[2]', authorization: ok({ rules: {} }) },
    ]);
    expect(c.authorization).toBeUndefined();
    expect(c.problems).toEqual([
      {
        path: 'http_filters[2]',
        message: "a second enforcing ALLOW RBAC filter in one chain (the first is http_filters[0]) is not supported: each must allow, which skiff's single allow list cannot express",
      },
    ]);
  });
});

// === matchers ===

describe('matchers', () => {
  it('not_id, not_rule, and_ids, or_ids nest freely', () => {
    // Allow anyone but namespace "test", except sleep in test, on any path but /private.
    const cfg = policy(
      [{ not_rule: { url_path: { path: { prefix: '/private' } } } }],
      [
        {
          or_ids: {
            ids: [
              { not_id: { authenticated: { principal_name: { safe_regex: { regex: '.*/ns/test/.*' } } } } },
              { and_ids: { ids: [{ authenticated: { principal_name: { exact: 'spiffe://cluster.local/ns/test/sa/sleep' } } }] } },
            ],
          },
        },
      ],
    );
    expect(allows(cfg, http())).toBe(true);
    expect(allows(cfg, http({ path: '/private/x' }))).toBe(false);
    expect(allows(cfg, http({}, { principal: 'spiffe://cluster.local/ns/test/sa/other' }))).toBe(false);
    expect(allows(cfg, http({}, { principal: 'spiffe://cluster.local/ns/test/sa/sleep' }))).toBe(true);
    // Plaintext: `authenticated` never matches, so its not_id does.
    expect(allows(cfg, http({}, { principal: undefined }))).toBe(true);
  });

  it('authenticated without principal_name: any peer certificate', () => {
    const cfg = policy([{ any: true }], [{ authenticated: {} }]);
    expect(allows(cfg, http())).toBe(true);
    expect(allows(cfg, http({}, { principal: undefined }))).toBe(false);
  });

  it('headers: Istio host (ignore_case), present_match, invert_match and absent headers as Envoy’s HeaderUtility', () => {
    const host = policy([{ header: { name: ':authority', string_match: { exact: 'HTTPBIN.default', ignore_case: true } } }]);
    expect(allows(host, http({ host: 'httpbin.DEFAULT' }))).toBe(true);
    expect(allows(host, http({ host: 'other' }))).toBe(false);
    const present = policy([{ header: { name: 'X-Token', present_match: true } }]);
    expect(allows(present, http({ headers: { 'x-token': '' } }))).toBe(true);
    expect(allows(present, http())).toBe(false);
    const inverted = policy([{ header: { name: 'x-env', exact_match: 'prod', invert_match: true } }]);
    expect(allows(inverted, http({ headers: { 'x-env': 'dev' } }))).toBe(true);
    expect(allows(inverted, http({ headers: { 'x-env': 'prod' } }))).toBe(false);
    // Envoy: an inverted value match still needs the header (only presence matches invert on absence).
    expect(allows(inverted, http())).toBe(false);
    expect(allows(policy([{ header: { name: 'x-env', present_match: true, invert_match: true } }]), http())).toBe(true);
    expect(allows(policy([{ header: { name: 'x-env', present_match: false } }]), http())).toBe(true);
    expect(allows(policy([{ header: { name: 'x-env', exact_match: '', treat_missing_header_as_empty: true } }]), http())).toBe(true);
  });

  it('paths: url_path string forms and Istio uri_template', () => {
    const exact = policy([{ url_path: { path: { exact: '/data' } } }]);
    expect(allows(exact, http({ path: '/data' }))).toBe(true);
    expect(allows(exact, http({ path: '/data/' }))).toBe(false);
    const template = policy([
      {
        uri_template: {
          name: 'uri-template',
          typed_config: { '@type': 'type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig', path_template: '/api/{*}/items/{**}' },
        },
      },
    ]);
    expect(allows(template, http({ path: '/api/v1/items/a/b' }))).toBe(true);
    expect(allows(template, http({ path: '/api/v1/items/' }))).toBe(true);
    expect(allows(template, http({ path: '/api/v1/v2/items/a' }))).toBe(false);
  });

  it('ports, port ranges, destination and remote IPs, SNI', () => {
    expect(allows(policy([{ destination_port: 8080 }]), tcp(), true)).toBe(true);
    expect(allows(policy([{ destination_port: 9090 }]), tcp(), true)).toBe(false);
    const range = policy([{ destination_port_range: { start: '8000', end: '8081' } }]);
    expect(allows(range, tcp(), true)).toBe(true);
    expect(allows(range, tcp({ destinationPort: 8081 }), true)).toBe(false);
    const dst = policy([{ destination_ip: { address_prefix: '10.1.0.0', prefix_len: 16 } }]);
    expect(allows(dst, tcp(), true)).toBe(true);
    expect(allows(dst, tcp({ destinationIp: '10.2.0.5' }), true)).toBe(false);
    const remote = policy([{ any: true }], [{ remote_ip: { address_prefix: '2001:db8::', prefix_len: 32 } }]);
    expect(allows(remote, http({}, { remoteIp: '2001:db8::1' }))).toBe(true);
    expect(allows(remote, http({}, { remoteIp: '10.0.0.1' }))).toBe(false);
    const sni = policy([{ requested_server_name: { suffix: '.svc.cluster.local' } }]);
    expect(allows(sni, tcp({ sni: 'web.default.svc.cluster.local' }), true)).toBe(true);
    expect(allows(sni, tcp(), true)).toBe(false);
  });

  it('Istio request authentication metadata: principal, audiences, nested claims, invert', () => {
    const meta = (path: string[], value: unknown, invert = false): unknown => ({ metadata: { filter: 'istio_authn', path: path.map((key) => ({ key })), value, ...(invert ? { invert } : {}) } });
    const principal = policy([{ any: true }], [meta(['request.auth.principal'], { string_match: { exact: 'https://accounts.google.com/u1' } })]);
    expect(allows(principal, http({}, googleJwt))).toBe(true);
    expect(allows(principal, http())).toBe(false);
    const aud = policy([{ any: true }], [meta(['request.auth.audiences'], { string_match: { exact: 'web' } })]);
    expect(allows(aud, http({}, { ...googleJwt, claims: { ...googleJwt.claims, aud: ['api', 'web'] } }))).toBe(true);
    expect(allows(aud, http({}, googleJwt))).toBe(false);
    const nested = policy([{ any: true }], [meta(['request.auth.claims', 'org', 'team'], { list_match: { one_of: { string_match: { prefix: 'sec' } } } })]);
    expect(allows(nested, http({}, { ...googleJwt, claims: { org: { team: ['security'] } } }))).toBe(true);
    expect(allows(nested, http({}, { ...googleJwt, claims: { org: { team: 'ops' } } }))).toBe(false);
    const notJwt = policy([{ any: true }], [meta(['request.auth.principal'], { string_match: { safe_regex: { regex: '.+' } } }, true)]);
    expect(allows(notJwt, http())).toBe(true);
    expect(allows(notJwt, http({}, googleJwt))).toBe(false);
  });
});

// === refusals ===

describe('refusals', () => {
  it('names the exact path of what skiff cannot enforce', () => {
    const p = 'rules.policies["p"]';
    expect(problems({ rules: { policies: { p: { permissions: [{ any: true }], principals: [{ any: true }], condition: { const_expr: { bool_value: true } } } } } })).toEqual([
      `${p}.condition: not supported: CEL conditions are not supported`,
    ]);
    expect(problems({ matcher: { matcher_list: {} } })).toEqual(['matcher: not supported: the unified matcher API is not supported; use rules']);
    expect(problems(policy([{ any: true }], [{ metadata: { filter: 'envoy.filters.http.jwt_authn', path: [{ key: 'x' }], value: { string_match: { exact: 'y' } } } }]))).toEqual([
      `${p}.principals[0].metadata.filter: only Istio's request authentication (istio_authn) is supported`,
    ]);
    expect(problems(policy([{ any: true }], [{ filter_state: { key: 'io.istio.peer_namespace', string_match: { exact: 'x' } } }]))).toEqual([
      `${p}.principals[0].filter_state.key: only io.istio.peer_principal (the peer principal) is supported`,
    ]);
    expect(problems(policy([{ any: true, destination_port: 80 }]))).toEqual([`${p}.permissions[0]: a permission sets more than one of any, destination_port`]);
    expect(problems(policy([{ and_rules: { rules: [] } }]))).toEqual([`${p}.permissions[0].and_rules.rules: at least one is required`]);
    expect(problems(policy([{ any: false }]))).toEqual([`${p}.permissions[0].any: must be true`]);
    expect(problems({ rules: { policies: { p: { permissions: [{ any: true }] } } } })).toEqual([`${p}.principals: at least one is required`]);
    expect(problems(policy([{ destination_ip: { address_prefix: '10.0.0.300', prefix_len: 8 } }]))).toEqual([
      `${p}.permissions[0].destination_ip.address_prefix: invalid IP address "10.0.0.300"`,
    ]);
    expect(problems(policy([{ matcher: { name: 'x', typed_config: { '@type': 'type.googleapis.com/x' } } }]))).toEqual([
      `${p}.permissions[0].matcher: not supported: custom permission matchers are not supported`,
      `${p}.permissions[0]: a permission must set one rule`,
    ]);
    expect(
      problems(policy([{ uri_template: { typed_config: { '@type': 'type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig', path_template: '/a/{id}' } } }])),
    ).toEqual([`${p}.permissions[0].uri_template.typed_config.path_template: segment "{id}" is not supported: only literal segments, {*} and {**}`]);
    expect(problems(policy([{ header: { name: 'x', range_match: { start: 1, end: 2 } } }]))).toEqual([`${p}.permissions[0].header.range_match: not supported: range matches are not supported`]);
    expect(problems({ '@type': NETWORK_RBAC })).toEqual([`@type: expected envoy.extensions.filters.http.rbac.v3.RBAC`]);
    expect(problems({ rules: { action: 'CUSTOM' } })).toEqual(['rules.action: must be one of ALLOW, DENY, LOG']);
  });

  it('refuses HTTP attributes in a network filter, and network-only refusals', () => {
    const p = 'rules.policies["p"]';
    expect(problems(policy([{ header: { name: ':method', exact_match: 'GET' } }]), true)).toEqual([
      `${p}.permissions[0].header: an HTTP attribute in a network RBAC filter is not supported (a connection has no request)`,
    ]);
    expect(problems(policy([{ not_rule: { url_path: { path: { prefix: '/' } } } }], [{ any: true }], 'DENY'), true)).toEqual([
      `${p}.permissions[0].not_rule.url_path: an HTTP attribute in a network RBAC filter is not supported (a connection has no request)`,
    ]);
    expect(problems({ rules: {}, delay_deny: '1s' }, true)).toEqual(['delay_deny: not supported: skiff closes a denied connection at once']);
  });

  it('ignores what does not change enforcement', () => {
    expect(ok({ rules: {}, stat_prefix: 'tcp.', shadow_rules_stat_prefix: 'istio_dry_run_allow_', enforcement_type: 'CONTINUOUS' }, true).allow.length).toBe(1);
    expect(ok({ rules_stat_prefix: 'x', track_per_rule_stats: true, shadow_matcher: { matcher_list: {} } })).toEqual({ deny: [], allow: [], audit: [] });
    // Shadow rules are not read, so even a matcher skiff cannot evaluate does not refuse them.
    const r = translateHttpRbac({ shadow_rules: { action: 'LOG', policies: { z: { permissions: [{ matcher: {} }], principals: [{ any: true }] } } } });
    expect(r.problems).toEqual([]);
    expect(r.shadow).toEqual({ action: 'AUDIT', policies: ['z'] });
  });
});
