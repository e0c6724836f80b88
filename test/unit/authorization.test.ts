/**
 * AuthorizationPolicy → model → compiled check, as Istio's RBAC behaves
 * (IST:pilot/pkg/security/authz/model, matcher; pkg/config/validation ValidateAuthorizationPolicy):
 * DENY before ALLOW, no ALLOW policy allows, `rules` unset matches nothing and `rules: [{}]`
 * everything, every Source/Operation field and its notX, `when` keys, string forms, path
 * templates, HTTP-only fields on TCP, workload selection, and load-time refusals.
 */
import { describe, expect, it } from 'vitest';
import { compileAuthorization, type AuthzAttributes } from '../../src/compile/authorization.js';
import { formatDiagnostic } from '../../src/config/diagnostics.js';
import { loadFromSources } from '../../src/config/load.js';
import type { Authorization, Model } from '../../src/model/index.js';

// === helpers ===

function load(...docs: string[]): { model: Model | undefined; lines: string[] } {
  const r = loadFromSources([{ name: 'authz.yaml', absolutePath: '/config/authz.yaml', text: docs.join('---\n') }]);
  return { model: r.model, lines: r.diagnostics.map((d) => formatDiagnostic(d)) };
}

function authorization(...docs: string[]): Authorization {
  const r = load(...docs);
  if (r.model === undefined) throw new Error(`config is invalid:\n${r.lines.join('\n')}`);
  return r.model.authorization;
}

function errors(...docs: string[]): string[] {
  const r = load(...docs);
  expect(r.model).toBeUndefined();
  return r.lines.filter((l) => !l.includes(': warning: '));
}

interface ApOptions {
  readonly ns?: string;
  readonly action?: string;
  /** spec.selector.matchLabels as flow YAML. */
  readonly selector?: string;
  /** spec.rules as YAML (indented under `rules:`), or flow YAML; omitted → no rules. */
  readonly rules?: string;
  readonly extra?: string;
  readonly annotations?: string;
}

function ap(name: string, o: ApOptions = {}): string {
  const meta = [`name: ${name}`];
  if (o.ns !== undefined) meta.push(`namespace: ${o.ns}`);
  if (o.annotations !== undefined) meta.push(`annotations: ${o.annotations}`);
  const spec: string[] = [];
  if (o.action !== undefined) spec.push(`  action: ${o.action}`);
  if (o.selector !== undefined) spec.push(`  selector: {matchLabels: ${o.selector}}`);
  if (o.rules !== undefined) spec.push(o.rules.startsWith('[') ? `  rules: ${o.rules}` : `  rules:\n${o.rules}`);
  if (o.extra !== undefined) spec.push(o.extra);
  return `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {${meta.join(', ')}}
spec:${spec.length === 0 ? ' {}' : `\n${spec.join('\n')}`}
`;
}

const mesh = (o: { ns?: string; labels?: string } = {}): string => `apiVersion: skiff.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  defaultNamespace: ${o.ns ?? 'default'}
  workloadLabels: ${o.labels ?? '{app: web}'}
`;

/** A policy with one rule, given as flow YAML for the rule. */
const one = (rule: string, action = 'ALLOW'): string => ap('p', { action, rules: `[${rule}]` });

const BASE: AuthzAttributes = {
  sourceIp: '10.0.0.1',
  remoteIp: '10.0.0.1',
  principal: 'spiffe://cluster.local/ns/foo/sa/bar',
  destinationIp: '10.1.0.5',
  destinationPort: 8080,
  sni: 'web.default.svc.cluster.local',
};

interface HttpOptions {
  readonly method?: string;
  readonly path?: string;
  readonly host?: string;
  readonly headers?: Readonly<Record<string, string>>;
}

function http(o: HttpOptions = {}, over: Partial<AuthzAttributes> = {}): AuthzAttributes {
  const headers = o.headers ?? {};
  return {
    ...BASE,
    ...over,
    http: {
      method: o.method ?? 'GET',
      path: o.path ?? '/',
      host: o.host ?? 'web.example.com',
      header: (name) => headers[name],
    },
  };
}

const tcp = (over: Partial<AuthzAttributes> = {}): AuthzAttributes => ({ ...BASE, ...over });

/** Whether an ALLOW policy with this single rule lets `attrs` through (there is no other policy). */
function allows(rule: string, attrs: AuthzAttributes): boolean {
  return compileAuthorization(authorization(one(rule))).check(attrs).allowed;
}

/** Whether a DENY policy with this single rule denies `attrs`. */
function denies(rule: string, attrs: AuthzAttributes): boolean {
  return !compileAuthorization(authorization(one(rule, 'DENY'))).check(attrs).allowed;
}

// === evaluation order ===

describe('decision', () => {
  it('no policy allows everything', () => {
    const authz = compileAuthorization(authorization(mesh()));
    expect(authz.enabled).toBe(false);
    expect(authz.check(http())).toEqual({ allowed: true });
    expect(authz.check(tcp())).toEqual({ allowed: true });
  });

  it('ALLOW with rules unset matches nothing: deny-all; `rules: [{}]` allows all', () => {
    expect(compileAuthorization(authorization(ap('deny-all'))).check(http())).toEqual({ allowed: false });
    expect(compileAuthorization(authorization(ap('deny-all', { extra: '  rules: []' }))).check(http()).allowed).toBe(false);
    expect(compileAuthorization(authorization(ap('allow-all', { rules: '[{}]' }))).check(http())).toEqual({ allowed: true, policy: 'default.allow-all' });
    expect(compileAuthorization(authorization(ap('allow-all', { rules: '[{}]' }))).check(tcp()).allowed).toBe(true);
  });

  it('DENY is evaluated first; any matching DENY denies, naming the policy', () => {
    const authz = compileAuthorization(
      authorization(
        ap('allow-all', { rules: '[{}]' }),
        ap('no-admin', { action: 'DENY', rules: '[{to: [{operation: {paths: ["/admin*"]}}]}]' }),
      ),
    );
    expect(authz.check(http({ path: '/admin/x' }))).toEqual({ allowed: false, policy: 'default.no-admin' });
    expect(authz.check(http({ path: '/public' }))).toEqual({ allowed: true, policy: 'default.allow-all' });
  });

  it('with ALLOW policies, a request no ALLOW policy matches is denied; one match is enough', () => {
    const authz = compileAuthorization(
      authorization(
        ap('get', { rules: '[{to: [{operation: {methods: [GET]}}]}]' }),
        ap('post-data', { rules: '[{to: [{operation: {methods: [POST], paths: [/data]}}]}]' }),
      ),
    );
    expect(authz.check(http({ method: 'GET' }))).toEqual({ allowed: true, policy: 'default.get' });
    expect(authz.check(http({ method: 'POST', path: '/data' }))).toEqual({ allowed: true, policy: 'default.post-data' });
    expect(authz.check(http({ method: 'POST', path: '/other' }))).toEqual({ allowed: false });
  });

  it('only DENY policies: what they do not match is allowed', () => {
    const authz = compileAuthorization(authorization(ap('d', { action: 'DENY', rules: '[{to: [{operation: {methods: [DELETE]}}]}]' })));
    expect(authz.check(http({ method: 'DELETE' })).allowed).toBe(false);
    expect(authz.check(http({ method: 'GET' })).allowed).toBe(true);
  });

  it('AUDIT never changes the decision', () => {
    const a = authorization(ap('audit', { action: 'AUDIT', rules: '[{}]' }));
    expect(a.audit.map((p) => p.name)).toEqual(['default.audit']);
    const authz = compileAuthorization(a);
    expect(authz.enabled).toBe(false);
    expect(authz.check(http()).allowed).toBe(true);
    const withDeny = compileAuthorization(authorization(ap('audit', { action: 'AUDIT', rules: '[{}]' }), ap('deny-all')));
    expect(withDeny.check(http()).allowed).toBe(false);
  });

  it('a rule: one source AND one operation AND every condition', () => {
    const rule = `{from: [{source: {namespaces: [foo]}}, {source: {namespaces: [test]}}],
      to: [{operation: {methods: [GET]}}, {operation: {methods: [POST], paths: [/data]}}],
      when: [{key: "request.headers[x-a]", values: ["1"]}, {key: "request.headers[x-b]", values: ["2"]}]}`;
    const h = { 'x-a': '1', 'x-b': '2' };
    expect(allows(rule, http({ headers: h }))).toBe(true);
    expect(allows(rule, http({ headers: h }, { principal: 'spiffe://cluster.local/ns/test/sa/x' }))).toBe(true);
    expect(allows(rule, http({ headers: h }, { principal: 'spiffe://cluster.local/ns/other/sa/x' }))).toBe(false);
    expect(allows(rule, http({ method: 'POST', path: '/data', headers: h }))).toBe(true);
    expect(allows(rule, http({ method: 'POST', path: '/x', headers: h }))).toBe(false);
    expect(allows(rule, http({ headers: { 'x-a': '1' } }))).toBe(false);
  });

  it('inside a source, fields AND; values OR; notX excludes', () => {
    const rule = '{from: [{source: {namespaces: [foo, test], notIpBlocks: ["10.0.0.1"]}}]}';
    expect(allows(rule, http({}, { sourceIp: '10.0.0.2' }))).toBe(true);
    expect(allows(rule, http({}, { sourceIp: '10.0.0.1' }))).toBe(false);
    expect(allows(rule, http({}, { sourceIp: '10.0.0.2', principal: 'spiffe://cluster.local/ns/x/sa/y' }))).toBe(false);
  });
});

// === sources ===

describe('source fields', () => {
  it('a principal name that is not a SPIFFE URI (a gateway client certificate) only matches presence', () => {
    const at = (principal: string): AuthzAttributes => http({}, { principal });
    const spoof = 'cluster.local/ns/foo/sa/bar';
    expect(allows('{from: [{source: {principals: ["cluster.local/ns/foo/sa/bar"]}}]}', at(spoof))).toBe(false);
    expect(allows('{from: [{source: {principals: ["cluster.local/ns/foo/*"]}}]}', at(spoof))).toBe(false);
    expect(allows('{from: [{source: {principals: ["*/sa/bar"]}}]}', at(spoof))).toBe(false);
    expect(allows('{from: [{source: {principals: ["*"]}}]}', at(spoof))).toBe(true);
    expect(denies('{from: [{source: {notPrincipals: ["cluster.local/ns/foo/sa/bar"]}}]}', at(spoof))).toBe(true);
    expect(allows('{from: [{source: {serviceAccounts: [foo/bar]}}]}', at(spoof))).toBe(false);
    // Istio's namespace regex runs over the principal name as it is, as in Envoy.
    expect(allows('{from: [{source: {namespaces: [foo]}}]}', at('client.example/ns/foo/x'))).toBe(true);
  });

  it('principals in the trust domain, cluster.local or an alias match in each of them (trustDomainAliases)', () => {
    const meshWithAliases = `apiVersion: skiff.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  trustDomain: new.td
  trustDomainAliases: [old.td]
  workloadLabels: {app: web}
`;
    const check = (principal: string, peer: string): boolean =>
      compileAuthorization(authorization(meshWithAliases, one(`{from: [{source: {principals: ["${principal}"]}}]}`))).check(http({}, { principal: `spiffe://${peer}` })).allowed;
    for (const written of ['old.td/ns/foo/sa/bar', 'new.td/ns/foo/sa/bar', 'cluster.local/ns/foo/sa/bar']) {
      expect(check(written, 'new.td/ns/foo/sa/bar'), written).toBe(true);
      expect(check(written, 'old.td/ns/foo/sa/bar'), written).toBe(true);
      expect(check(written, 'evil.td/ns/foo/sa/bar'), written).toBe(false);
      expect(check(written, 'new.td/ns/foo/sa/baz'), written).toBe(false);
    }
    // A principal in another trust domain stays as written.
    expect(check('other.td/ns/foo/sa/bar', 'new.td/ns/foo/sa/bar')).toBe(false);
    expect(check('other.td/ns/foo/sa/bar', 'other.td/ns/foo/sa/bar')).toBe(true);
  });

  it('principals: exact, prefix, suffix, presence; notPrincipals', () => {
    const at = (principal: string | undefined): AuthzAttributes => http({}, { principal });
    expect(allows('{from: [{source: {principals: ["cluster.local/ns/foo/sa/bar"]}}]}', at('spiffe://cluster.local/ns/foo/sa/bar'))).toBe(true);
    expect(allows('{from: [{source: {principals: ["cluster.local/ns/foo/sa/bar"]}}]}', at('spiffe://cluster.local/ns/foo/sa/baz'))).toBe(false);
    expect(allows('{from: [{source: {principals: ["cluster.local/ns/foo/*"]}}]}', at('spiffe://cluster.local/ns/foo/sa/x'))).toBe(true);
    expect(allows('{from: [{source: {principals: ["cluster.local/ns/foo/*"]}}]}', at('spiffe://cluster.local/ns/bar/sa/x'))).toBe(false);
    expect(allows('{from: [{source: {principals: ["*/sa/bar"]}}]}', at('spiffe://other.td/ns/x/sa/bar'))).toBe(true);
    expect(allows('{from: [{source: {principals: ["*/sa/bar"]}}]}', at('spiffe://other.td/ns/x/sa/baz'))).toBe(false);
    expect(allows('{from: [{source: {principals: ["*"]}}]}', at('spiffe://cluster.local/ns/x/sa/y'))).toBe(true);
    expect(allows('{from: [{source: {notPrincipals: ["cluster.local/ns/foo/sa/bar"]}}]}', at('spiffe://cluster.local/ns/foo/sa/bar'))).toBe(false);
    expect(allows('{from: [{source: {notPrincipals: ["cluster.local/ns/foo/sa/bar"]}}]}', at('spiffe://cluster.local/ns/foo/sa/other'))).toBe(true);
  });

  it('plaintext (no principal): principals, namespaces and serviceAccounts never match; their notX always do', () => {
    const plain = http({}, { principal: undefined });
    expect(allows('{from: [{source: {principals: ["*"]}}]}', plain)).toBe(false);
    expect(allows('{from: [{source: {namespaces: ["*"]}}]}', plain)).toBe(false);
    expect(allows('{from: [{source: {serviceAccounts: [foo/bar]}}]}', plain)).toBe(false);
    expect(allows('{from: [{source: {notPrincipals: ["*"]}}]}', plain)).toBe(true);
    expect(allows('{from: [{source: {notNamespaces: [foo]}}]}', plain)).toBe(true);
    expect(allows('{from: [{source: {notServiceAccounts: [foo/bar]}}]}', plain)).toBe(true);
    expect(denies('{from: [{source: {notPrincipals: ["*"]}}]}', plain)).toBe(true);
    expect(denies('{from: [{source: {notPrincipals: ["*"]}}]}', http())).toBe(false);
  });

  it('namespaces: from the principal, with * wildcards; notNamespaces', () => {
    expect(allows('{from: [{source: {namespaces: [foo]}}]}', http())).toBe(true);
    expect(allows('{from: [{source: {namespaces: [fo]}}]}', http())).toBe(false);
    expect(allows('{from: [{source: {namespaces: ["f*"]}}]}', http())).toBe(true);
    expect(allows('{from: [{source: {namespaces: ["*"]}}]}', http())).toBe(true);
    expect(allows('{from: [{source: {notNamespaces: [foo]}}]}', http())).toBe(false);
    expect(allows('{from: [{source: {notNamespaces: [bar]}}]}', http())).toBe(true);
  });

  it('serviceAccounts: ns/sa, or sa in the policy namespace, any trust domain; notServiceAccounts', () => {
    expect(allows('{from: [{source: {serviceAccounts: [foo/bar]}}]}', http({}, { principal: 'spiffe://other.td/ns/foo/sa/bar' }))).toBe(true);
    expect(allows('{from: [{source: {serviceAccounts: [foo/bar]}}]}', http({}, { principal: 'spiffe://cluster.local/ns/foo/sa/bar-2' }))).toBe(false);
    expect(allows('{from: [{source: {serviceAccounts: [bar]}}]}', http())).toBe(false);
    expect(allows('{from: [{source: {serviceAccounts: [bar]}}]}', http({}, { principal: 'spiffe://cluster.local/ns/default/sa/bar' }))).toBe(true);
    expect(authorization(one('{from: [{source: {serviceAccounts: [bar]}}]}')).allow[0]!.rules[0]!.from[0]!.serviceAccounts).toEqual({
      values: ['default/bar'],
      notValues: [],
    });
    expect(allows('{from: [{source: {notServiceAccounts: [foo/bar]}}]}', http())).toBe(false);
  });

  it('requestPrincipals (iss/sub) and notRequestPrincipals', () => {
    const jwt = (iss: string, sub: string): AuthzAttributes => http({}, { requestPrincipal: `${iss}/${sub}`, claims: { iss, sub } });
    const rule = (v: string, field = 'requestPrincipals'): string => `{from: [{source: {${field}: ["${v}"]}}]}`;
    expect(allows(rule('https://issuer.example.com/alice'), jwt('https://issuer.example.com', 'alice'))).toBe(true);
    expect(allows(rule('https://issuer.example.com/alice'), jwt('https://issuer.example.com', 'bob'))).toBe(false);
    expect(allows(rule('https://issuer.example.com/*'), jwt('https://issuer.example.com', 'bob'))).toBe(true);
    expect(allows(rule('*/alice'), jwt('https://any', 'alice'))).toBe(true);
    expect(allows(rule('*'), jwt('https://any', 'alice'))).toBe(true);
    expect(allows(rule('*'), http())).toBe(false);
    expect(allows(rule('https://issuer.example.com/alice', 'notRequestPrincipals'), jwt('https://issuer.example.com', 'alice'))).toBe(false);
    expect(allows(rule('https://issuer.example.com/alice', 'notRequestPrincipals'), http())).toBe(true);
  });

  it('ipBlocks (peer address) and remoteIpBlocks (XFF), CIDR or address; notX', () => {
    expect(allows('{from: [{source: {ipBlocks: ["10.0.0.0/24"]}}]}', http())).toBe(true);
    expect(allows('{from: [{source: {ipBlocks: ["10.0.1.0/24", "10.0.0.1"]}}]}', http())).toBe(true);
    expect(allows('{from: [{source: {ipBlocks: ["10.0.1.0/24"]}}]}', http())).toBe(false);
    expect(allows('{from: [{source: {ipBlocks: ["10.0.0.0/24"]}}]}', http({}, { sourceIp: '::ffff:10.0.0.7' }))).toBe(true);
    expect(allows('{from: [{source: {ipBlocks: ["2001:db8::/32"]}}]}', http({}, { sourceIp: '2001:db8::5' }))).toBe(true);
    expect(allows('{from: [{source: {notIpBlocks: ["10.0.0.0/8"]}}]}', http())).toBe(false);
    expect(allows('{from: [{source: {remoteIpBlocks: ["192.0.2.0/24"]}}]}', http({}, { remoteIp: '192.0.2.9' }))).toBe(true);
    expect(allows('{from: [{source: {remoteIpBlocks: ["192.0.2.0/24"]}}]}', http())).toBe(false);
    expect(allows('{from: [{source: {notRemoteIpBlocks: ["192.0.2.0/24"]}}]}', http({}, { remoteIp: '192.0.2.9' }))).toBe(false);
  });

  it('CIDRs are kept canonical in the model', () => {
    const src = authorization(one('{from: [{source: {ipBlocks: ["2001:DB8:0::0/32", "10.0.0.1"]}}]}')).allow[0]!.rules[0]!.from[0]!;
    expect(src.ipBlocks).toEqual({ values: ['2001:db8::/32', '10.0.0.1'], notValues: [] });
  });
});

// === operations ===

describe('operation fields', () => {
  it('hosts: case-insensitive, exact/prefix/suffix/presence, the Host header as is (a port must be listed)', () => {
    const rule = (h: string, field = 'hosts'): string => `{to: [{operation: {${field}: ["${h}"]}}]}`;
    expect(allows(rule('web.example.com'), http({ host: 'Web.Example.COM' }))).toBe(true);
    expect(allows(rule('web.example.com'), http({ host: 'web.example.com:8080' }))).toBe(false);
    expect(allows(rule('web.example.com:*'), http({ host: 'web.example.com:8080' }))).toBe(true);
    expect(allows(rule('*.example.com'), http({ host: 'api.EXAMPLE.com' }))).toBe(true);
    expect(allows(rule('web.*'), http({ host: 'web.other' }))).toBe(true);
    expect(allows(rule('*'), http())).toBe(true);
    expect(allows(rule('web.example.com', 'notHosts'), http())).toBe(false);
    expect(allows(rule('other', 'notHosts'), http())).toBe(true);
  });

  it('ports: the destination port; notPorts', () => {
    expect(allows('{to: [{operation: {ports: ["8080"]}}]}', http())).toBe(true);
    expect(allows('{to: [{operation: {ports: ["9090", "8080"]}}]}', tcp())).toBe(true);
    expect(allows('{to: [{operation: {ports: ["9090"]}}]}', http())).toBe(false);
    expect(allows('{to: [{operation: {notPorts: ["8080"]}}]}', tcp())).toBe(false);
  });

  it('methods: case-sensitive; notMethods', () => {
    expect(allows('{to: [{operation: {methods: [GET, HEAD]}}]}', http({ method: 'HEAD' }))).toBe(true);
    expect(allows('{to: [{operation: {methods: [get]}}]}', http({ method: 'GET' }))).toBe(false);
    expect(allows('{to: [{operation: {notMethods: [DELETE]}}]}', http({ method: 'DELETE' }))).toBe(false);
    expect(allows('{to: [{operation: {notMethods: [DELETE]}}]}', http({ method: 'GET' }))).toBe(true);
  });

  it('paths: exact, prefix, suffix, presence; notPaths', () => {
    const rule = (p: string, field = 'paths'): string => `{to: [{operation: {${field}: ["${p}"]}}]}`;
    expect(allows(rule('/info'), http({ path: '/info' }))).toBe(true);
    expect(allows(rule('/info'), http({ path: '/info/' }))).toBe(false);
    expect(allows(rule('/info*'), http({ path: '/info/x' }))).toBe(true);
    expect(allows(rule('*.html'), http({ path: '/a/b.html' }))).toBe(true);
    expect(allows(rule('*.html'), http({ path: '/a/b.htm' }))).toBe(false);
    expect(allows(rule('*'), http({ path: '/' }))).toBe(true);
    expect(allows(rule('/admin*', 'notPaths'), http({ path: '/admin/x' }))).toBe(false);
    expect(allows(rule('/admin*', 'notPaths'), http({ path: '/public' }))).toBe(true);
  });

  it('paths: {*} is one non-empty segment, {**} any remainder', () => {
    const rule = (p: string): string => `{to: [{operation: {paths: ["${p}"]}}]}`;
    expect(allows(rule('/foo/{*}/bar'), http({ path: '/foo/x/bar' }))).toBe(true);
    expect(allows(rule('/foo/{*}/bar'), http({ path: '/foo/x/y/bar' }))).toBe(false);
    expect(allows(rule('/foo/{*}/bar'), http({ path: '/foo//bar' }))).toBe(false);
    expect(allows(rule('/foo/{**}'), http({ path: '/foo/a/b/c' }))).toBe(true);
    expect(allows(rule('/foo/{**}'), http({ path: '/foo/' }))).toBe(true);
    expect(allows(rule('/foo/{**}'), http({ path: '/foobar' }))).toBe(false);
    expect(allows(rule('/{*}/b.c/{**}'), http({ path: '/a/b.c/d' }))).toBe(true);
    expect(allows(rule('/{*}/b.c/{**}'), http({ path: '/a/bxc/d' }))).toBe(false);
  });
});

// === conditions ===

describe('when conditions', () => {
  const when = (key: string, values: string, field = 'values'): string => `{when: [{key: "${key}", ${field}: ${values}}]}`;

  it('request.headers[name]: string forms, presence, notValues', () => {
    const h = (v?: string): AuthzAttributes => http({ headers: v === undefined ? {} : { 'x-user': v } });
    expect(allows(when('request.headers[X-User]', '[alice]'), h('alice'))).toBe(true);
    expect(allows(when('request.headers[x-user]', '[alice]'), h('bob'))).toBe(false);
    expect(allows(when('request.headers[x-user]', '["al*"]'), h('alex'))).toBe(true);
    expect(allows(when('request.headers[x-user]', '["*ce"]'), h('alice'))).toBe(true);
    expect(allows(when('request.headers[x-user]', '["*"]'), h(''))).toBe(true);
    expect(allows(when('request.headers[x-user]', '["*"]'), h())).toBe(false);
    expect(allows(when('request.headers[x-user]', '[alice]', 'notValues'), h('alice'))).toBe(false);
    expect(allows(when('request.headers[x-user]', '[alice]', 'notValues'), h())).toBe(true);
  });

  it('source.ip, remote.ip, destination.ip (CIDR), destination.port', () => {
    expect(allows(when('source.ip', '["10.0.0.0/16"]'), http())).toBe(true);
    expect(allows(when('source.ip', '["10.0.0.0/16"]', 'notValues'), http())).toBe(false);
    expect(allows(when('remote.ip', '["192.0.2.1"]'), http({}, { remoteIp: '192.0.2.1' }))).toBe(true);
    expect(allows(when('remote.ip', '["192.0.2.1"]'), http())).toBe(false);
    expect(allows(when('destination.ip', '["10.1.0.0/24"]'), tcp())).toBe(true);
    expect(allows(when('destination.ip', '["10.2.0.0/24"]'), tcp())).toBe(false);
    expect(allows(when('destination.port', '["8080"]'), tcp())).toBe(true);
    expect(allows(when('destination.port', '["8080"]', 'notValues'), tcp())).toBe(false);
  });

  it('source.namespace, source.principal, source.serviceAccount', () => {
    expect(allows(when('source.namespace', '[foo]'), tcp())).toBe(true);
    expect(allows(when('source.namespace', '[bar]'), tcp())).toBe(false);
    expect(allows(when('source.principal', '["cluster.local/ns/foo/sa/bar"]'), tcp())).toBe(true);
    expect(allows(when('source.principal', '["cluster.local/ns/foo/sa/bar"]', 'notValues'), tcp())).toBe(false);
    expect(allows(when('source.serviceAccount', '[foo/bar]'), tcp())).toBe(true);
    expect(allows(when('source.serviceAccount', '[foo/baz]'), tcp())).toBe(false);
  });

  it('connection.sni', () => {
    expect(allows(when('connection.sni', '["*.svc.cluster.local"]'), tcp())).toBe(true);
    expect(allows(when('connection.sni', '["*"]'), tcp({ sni: undefined }))).toBe(false);
    expect(allows(when('connection.sni', '["other"]', 'notValues'), tcp({ sni: undefined }))).toBe(true);
  });

  it('request.auth.principal, audiences, presenter, claims (nested, lists)', () => {
    const jwt = http(
      {},
      {
        requestPrincipal: 'https://iss/alice',
        claims: { iss: 'https://iss', sub: 'alice', aud: ['a1', 'a2'], azp: 'client', groups: ['dev', 'ops'], org: { team: 'core' }, n: 5 },
      },
    );
    expect(allows(when('request.auth.principal', '["https://iss/alice"]'), jwt)).toBe(true);
    expect(allows(when('request.auth.principal', '["https://iss/bob"]'), jwt)).toBe(false);
    expect(allows(when('request.auth.audiences', '[a2]'), jwt)).toBe(true);
    expect(allows(when('request.auth.audiences', '[a3]'), jwt)).toBe(false);
    expect(allows(when('request.auth.presenter', '[client]'), jwt)).toBe(true);
    expect(allows(when('request.auth.claims[groups]', '[ops]'), jwt)).toBe(true);
    expect(allows(when('request.auth.claims[groups]', '[ops]', 'notValues'), jwt)).toBe(false);
    expect(allows(when('request.auth.claims[org][team]', '["co*"]'), jwt)).toBe(true);
    expect(allows(when('request.auth.claims[n]', '["5"]'), jwt)).toBe(false);
    expect(allows(when('request.auth.claims[groups]', '[ops]'), http())).toBe(false);
  });
});

// === HTTP-only fields on TCP ===

describe('HTTP-only fields on a TCP connection', () => {
  const httpOnly = [
    '{to: [{operation: {hosts: [web.example.com]}}]}',
    '{to: [{operation: {notMethods: [GET]}}]}',
    '{to: [{operation: {paths: [/admin]}}]}',
    '{from: [{source: {requestPrincipals: ["*"]}}]}',
    '{when: [{key: "request.headers[x-a]", values: ["1"]}]}',
    '{when: [{key: "request.auth.claims[iss]", notValues: [x]}]}',
  ];

  it.each(httpOnly)('ALLOW: the rule is dropped (never matches): %s', (rule) => {
    expect(allows(rule, tcp())).toBe(false);
  });

  it.each(httpOnly)('DENY: the field is dropped (the rest of the rule applies): %s', (rule) => {
    expect(denies(rule, tcp())).toBe(true);
  });

  it('DENY: the remaining TCP fields still decide', () => {
    const rule = '{to: [{operation: {ports: ["9090"], paths: [/admin]}}]}';
    expect(denies(rule, tcp())).toBe(false);
    expect(denies(rule, tcp({ destinationPort: 9090 }))).toBe(true);
  });

  it('ALLOW: another rule without HTTP fields still allows TCP', () => {
    const authz = compileAuthorization(authorization(ap('p', { rules: '[{to: [{operation: {paths: [/x]}}]}, {to: [{operation: {ports: ["8080"]}}]}]' })));
    expect(authz.check(tcp()).allowed).toBe(true);
    expect(authz.check(tcp({ destinationPort: 1 })).allowed).toBe(false);
  });
});

// === which policies apply ===

describe('workload selection', () => {
  const names = (a: Authorization): string[] => [...a.deny, ...a.allow, ...a.audit].map((p) => p.name);

  it('root namespace without selector → every workload; proxy namespace without selector → this workload', () => {
    expect(names(authorization(mesh(), ap('mesh', { ns: 'istio-system' }), ap('ns', { ns: 'default' })))).toEqual(['default.ns', 'istio-system.mesh']);
  });

  it('a selector must match the workload labels; other namespaces are ignored', () => {
    const a = authorization(
      mesh({ labels: '{app: web, version: v1}' }),
      ap('match', { selector: '{app: web}' }),
      ap('mismatch', { selector: '{app: api}' }),
      ap('root-match', { ns: 'istio-system', selector: '{version: v1}' }),
      ap('root-mismatch', { ns: 'istio-system', selector: '{version: v2}' }),
      ap('other-ns', { ns: 'other' }),
    );
    expect(names(a)).toEqual(['default.match', 'istio-system.root-match']);
  });

  it('the proxy namespace comes from MeshConfig defaultNamespace', () => {
    expect(names(authorization(mesh({ ns: 'shop' }), ap('a', { ns: 'shop' }), ap('b', { ns: 'default' })))).toEqual(['shop.a']);
  });

  it('a dry-run policy is not enforced (with a warning)', () => {
    const r = load(ap('dry', { annotations: '{istio.io/dry-run: "true"}' }));
    expect(r.model!.authorization.allow).toEqual([]);
    expect(r.lines.some((l) => l.includes('dry-run policy is not enforced'))).toBe(true);
  });
});

// === refusals ===

describe('validation', () => {
  it('CUSTOM is refused', () => {
    expect(errors(ap('ext', { action: 'CUSTOM', extra: '  provider: {name: authz}', rules: '[{}]' }))).toEqual([
      'authz.yaml:5:11: AuthorizationPolicy/ext: spec.action: CUSTOM authorization (ext_authz) is not supported; refusing to run without enforcing it',
    ]);
  });

  it('targetRef and targetRefs are refused', () => {
    const lines = errors(ap('t', { extra: '  targetRefs: [{kind: Service, name: web}]\n  targetRef: {kind: Service, name: web}' }));
    expect(lines).toEqual([
      'authz.yaml:5:15: AuthorizationPolicy/t: spec.targetRefs: not supported (sidecars use selector)',
      'authz.yaml:6:14: AuthorizationPolicy/t: spec.targetRef: not supported (sidecars use selector)',
    ]);
  });

  it('bad CIDRs and addresses', () => {
    const lines = errors(one('{from: [{source: {ipBlocks: ["10.0.0.0/33", "10.0.0.256"], notRemoteIpBlocks: [nope]}}]}'));
    expect(lines).toEqual([
      expect.stringContaining('spec.rules[0].from[0].source.ipBlocks[0]: bad CIDR range (10.0.0.0/33)'),
      expect.stringContaining('spec.rules[0].from[0].source.ipBlocks[1]: bad IP address (10.0.0.256)'),
      expect.stringContaining('spec.rules[0].from[0].source.notRemoteIpBlocks[0]: bad IP address (nope)'),
    ]);
  });

  it('unknown, malformed and unsupported when keys', () => {
    const lines = errors(
      one(`{when: [{key: source.ipp, values: [x]}, {key: "request.headers[]", values: [x]},
        {key: "experimental.envoy.filters.a.b[c]", values: [x]}, {key: "destination.labels[v]", values: [x]}]}`),
    );
    expect(lines).toEqual([
      expect.stringContaining('spec.rules[0].when[0].key: unknown attribute "source.ipp" (did you mean "source.ip"?)'),
      expect.stringContaining('spec.rules[0].when[1].key: bad key (request.headers[])'),
      expect.stringContaining('spec.rules[0].when[2].key: experimental.envoy.filters.a.b[c]: Envoy filter metadata conditions are not supported'),
      expect.stringContaining('spec.rules[0].when[3].key: attribute destination.labels[v] is replaced by the workload selector'),
    ]);
  });

  it('when needs values or notValues, and values valid for the key', () => {
    expect(errors(one('{when: [{key: source.ip}, {key: destination.port, values: ["http"]}]}'))).toEqual([
      expect.stringContaining('spec.rules[0].when[0]: at least one of values or notValues must be set for key source.ip'),
      expect.stringContaining('spec.rules[0].when[1].values[0]: bad port (http)'),
    ]);
  });

  it('serviceAccounts cannot be combined with principals or namespaces; no wildcards', () => {
    expect(errors(one('{from: [{source: {serviceAccounts: [foo/bar], namespaces: [foo]}}]}'))).toEqual([
      expect.stringContaining('spec.rules[0].from[0].source.serviceAccounts: cannot set serviceAccounts with namespaces or principals'),
    ]);
    expect(errors(one('{from: [{source: {notServiceAccounts: ["foo/*"]}}]}'))).toEqual([
      expect.stringContaining('spec.rules[0].from[0].source.notServiceAccounts[0]: wildcard not allowed'),
    ]);
  });

  it('ports must be numeric strings', () => {
    expect(errors(one('{to: [{operation: {ports: [8080, "http", "70000"]}}]}'))).toEqual([
      expect.stringContaining('spec.rules[0].to[0].operation.ports[0]: expected a string, got number 8080 (quote it)'),
      expect.stringContaining('spec.rules[0].to[0].operation.ports[1]: bad port (http)'),
      expect.stringContaining('spec.rules[0].to[0].operation.ports[2]: bad port (70000)'),
    ]);
  });

  it('empty sources, operations, lists and values; bad path templates; DENY without rules', () => {
    expect(errors(one('{from: [{source: {}}], to: []}'))).toEqual([
      expect.stringContaining('spec.rules[0].from[0].source: source must not be empty'),
      expect.stringContaining('spec.rules[0].to: must have at least 1 item'),
    ]);
    expect(errors(one('{to: [{operation: {paths: ["/{**}/{*}", "/a/{id}", ""]}}]}'))).toEqual([
      expect.stringContaining('operation.paths[0]: invalid path template "/{**}/{*}": {**} must be the last operator'),
      expect.stringContaining('operation.paths[1]: invalid path template "/a/{id}"'),
      expect.stringContaining('operation.paths[2]: empty value not allowed'),
    ]);
    expect(errors(ap('d', { action: 'DENY' }))).toEqual([expect.stringContaining('DENY action without rules is meaningless')]);
  });

  it('provider only with CUSTOM', () => {
    expect(errors(ap('p', { extra: '  provider: {name: x}', rules: '[{}]' }))).toEqual([
      expect.stringContaining('spec.provider: provider must only be used with action CUSTOM, found ALLOW'),
    ]);
  });

  it('both apiVersions are accepted', () => {
    const v1beta1 = ap('x', { rules: '[{}]' }).replace('security.istio.io/v1', 'security.istio.io/v1beta1');
    expect(authorization(v1beta1).allow.map((p) => p.name)).toEqual(['default.x']);
  });
});
