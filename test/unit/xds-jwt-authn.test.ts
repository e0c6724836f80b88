/**
 * Envoy jwt_authn (xDS) → model RequestAuthentication: the filter istiod builds from
 * RequestAuthentication (one provider per JWT rule, `requires_any [P, allow_missing]`, or for
 * several providers `requires_any [P1…Pn, requires_all [...]]`), its provider fields, behaviour
 * through the compiled model, and refusals with their exact paths.
 */
import { describe, expect, it } from 'vitest';
import { compileRequestAuthentication, type JwtCheck, type JwtVerifier } from '../../src/compile/request-authentication.js';
import { translateJwtAuthn } from '../../src/config/xds/jwt-authn.js';
import type { JwtRule, RequestAuthentication } from '../../src/model/index.js';

const TYPE = 'type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication';
const JWKS = '{"keys":[{"kty":"RSA","e":"AQAB","kid":"k1","n":"xAE7eB6qugXyCAG3yhh7pkDkT65pHymX-P7KfIupjf59vsdo91bSP9C8H07pSAGQO1MV_xFj9VswgsCg4R6otmg5PV2He95lZdHtOcU5DXIg_pbhLdKXbi66GlVeK6ABZOUW3WYtnNHD-91gVuoeJT_DwtGGcp4ignkgXfkiEm4sw-4sfb4qdt5oLbyVpmW6x9cfa7vs2WTfURiCrBoUqgBo_-4WTiULmmHSGZHOjzwa8WtrtOQGsAFjIbno85jp6MnGGGZPYZbDAa_b3y5u-YpW7ypZrvD8BgtKVjgtQgZhLAGezMt0ua3DRrWnKqTZ0BJ_EyxOGuHJrLsn00fnMQ"}]}';

/** One provider as istiod writes it (local_jwks: istiod fetched the keys itself). */
function provider(issuer: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { issuer, local_jwks: { inline_string: JWKS }, payload_in_metadata: issuer, ...extra };
}

const optional = (name: string): unknown => ({ requires_any: { requirements: [{ provider_name: name }, { allow_missing: {} }] } });

/** The filter istiod builds for these providers (in rule order). */
function istio(providers: Record<string, Record<string, unknown>>): Record<string, unknown> {
  const names = Object.keys(providers);
  const requires =
    names.length === 1
      ? optional(names[0]!)
      : { requires_any: { requirements: [...names.map((provider_name) => ({ provider_name })), { requires_all: { requirements: names.map(optional) } }] } };
  return { '@type': TYPE, providers, rules: [{ match: { prefix: '/' }, requires }], bypass_cors_preflight: true };
}

function ok(json: unknown): RequestAuthentication {
  const r = translateJwtAuthn(json);
  expect(r.problems).toEqual([]);
  return r.requestAuthentication!;
}

function problems(json: unknown): string[] {
  const r = translateJwtAuthn(json);
  expect(r.requestAuthentication).toBeUndefined();
  return r.problems.map((p) => `${p.path}: ${p.message}`);
}

/** Renames every object key to lowerCamelCase, except provider names. */
function camel(v: unknown, keepKeys = false): unknown {
  if (Array.isArray(v)) return v.map((x) => camel(x));
  if (typeof v !== 'object' || v === null) return v;
  return Object.fromEntries(
    Object.entries(v).map(([k, x]) => [keepKeys || k === '@type' ? k : k.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase()), camel(x, k === 'providers')]),
  );
}

describe('translateJwtAuthn', () => {
  it('translates istiod’s one-provider filter into one JWT rule (snake_case and camelCase)', () => {
    const json = istio({ 'origins-0': provider('testing@secure.istio.io') });
    const ra = ok(json);
    expect(ra).toEqual({
      rules: [
        {
          policy: 'origins-0',
          issuer: 'testing@secure.istio.io',
          audiences: [],
          jwks: { kind: 'inline', json: JWKS },
          timeoutMs: 5000,
          fromHeaders: [],
          fromParams: [],
          fromCookies: [],
          forwardOriginalToken: false,
          outputClaimToHeaders: [],
          spaceDelimitedClaims: [],
        },
      ],
    });
    expect(ok(camel(json))).toEqual(ra);
  });

  it('translates every provider field istiod sets', () => {
    const ra = ok(
      istio({
        'origins-0': {
          issuer: 'https://issuer.example.com',
          audiences: ['web', 'api'],
          remote_jwks: {
            http_uri: { uri: 'https://issuer.example.com/jwks', cluster: 'outbound|443||issuer.example.com', timeout: '2.5s' },
            cache_duration: '300s',
            async_fetch: {},
          },
          forward: true,
          from_headers: [{ name: 'x-jwt', value_prefix: 'Bearer ' }, { name: 'x-raw' }],
          from_params: ['token'],
          from_cookies: ['session'],
          forward_payload_header: 'x-jwt-payload',
          payload_in_metadata: 'https://issuer.example.com',
          normalize_payload_in_metadata: { space_delimited_claims: ['scope', 'roles'] },
          claim_to_headers: [{ header_name: 'x-sub', claim_name: 'sub' }],
          clear_route_cache: true,
        },
      }),
    );
    expect(ra.rules).toEqual<JwtRule[]>([
      {
        policy: 'origins-0',
        issuer: 'https://issuer.example.com',
        audiences: ['web', 'api'],
        jwks: { kind: 'remote', uri: 'https://issuer.example.com/jwks' },
        timeoutMs: 2500,
        fromHeaders: [{ name: 'x-jwt', prefix: 'Bearer ' }, { name: 'x-raw', prefix: '' }],
        fromParams: ['token'],
        fromCookies: ['session'],
        forwardOriginalToken: true,
        outputPayloadToHeader: 'x-jwt-payload',
        outputClaimToHeaders: [{ header: 'x-sub', claim: 'sub' }],
        spaceDelimitedClaims: ['scope', 'roles'],
      },
    ]);
  });

  it('keeps istiod’s rule order for several providers (the requirement’s order, not the map’s)', () => {
    const providers = { 'origins-0': provider('a'), 'origins-1': provider('b'), 'origins-10': provider('c') };
    const json = istio(providers);
    // A config dump sorts map keys: origins-10 before origins-1's successor.
    const sorted = { ...json, providers: { 'origins-0': providers['origins-0'], 'origins-10': providers['origins-10'], 'origins-1': providers['origins-1'] } };
    expect(ok(sorted).rules.map((r) => r.issuer)).toEqual(['a', 'b', 'c']);
    expect(ok(json).rules.map((r) => r.policy)).toEqual(['origins-0', 'origins-1', 'origins-10']);
  });

  it('inline_bytes JWKS is base64; no requirement rule verifies nothing', () => {
    const ra = ok(istio({ p: { issuer: 'a', local_jwks: { inline_bytes: Buffer.from(JWKS).toString('base64') } } }));
    expect(ra.rules[0]!.jwks).toEqual({ kind: 'inline', json: JWKS });
    expect(ok({ providers: {} })).toEqual({ rules: [] });
  });

  it('accepts allow_missing_or_failed (skiff then rejects a failed token, as Istio’s authn filter did)', () => {
    const json = { providers: { p: provider('a') }, rules: [{ match: { prefix: '/' }, requires: { requires_any: { requirements: [{ provider_name: 'p' }, { allow_missing_or_failed: {} }] } } }] };
    expect(ok(json).rules.map((r) => r.issuer)).toEqual(['a']);
  });
});

describe('behaviour through the compiled model', () => {
  /** Verifies `good.<iss>` tokens against the rule of that issuer. */
  const verifier: JwtVerifier = {
    verify(token: string, rules: readonly JwtRule[]): JwtCheck {
      const [kind, iss] = token.split('.');
      const rule = rules.find((r) => r.issuer === iss);
      if (rule === undefined) return { ok: false, reason: 'Jwt issuer is not configured' };
      if (kind !== 'good') return { ok: false, reason: 'Jwt verification fails' };
      return { ok: true, rule, payload: { iss, sub: 'u1' }, payloadSegment: 'e30' };
    },
  };
  const request = (headers: Record<string, string>, query: Record<string, string> = {}) => ({ header: (n: string) => headers[n], query: (n: string) => query[n] });

  it('no token passes, a good token gives iss/sub, a bad one is refused', () => {
    const ra = compileRequestAuthentication(ok(istio({ 'origins-0': provider('a'), 'origins-1': provider('b', { from_headers: [{ name: 'x-b' }] }) })), verifier);
    expect(ra.authenticate(request({}))).toEqual({ kind: 'none' });
    expect(ra.authenticate(request({ authorization: 'Bearer good.a' }))).toMatchObject({ kind: 'valid', principal: 'a/u1', removeHeader: 'authorization' });
    expect(ra.authenticate(request({}, { access_token: 'good.a' }))).toMatchObject({ kind: 'valid', principal: 'a/u1' });
    expect(ra.authenticate(request({ 'x-b': 'good.b' }))).toMatchObject({ kind: 'valid', principal: 'b/u1' });
    expect(ra.authenticate(request({ authorization: 'Bearer bad.a' }))).toEqual({ kind: 'invalid', reason: 'Jwt verification fails' });
    // Provider b reads only x-b: a b token in Authorization has no provider there.
    expect(ra.authenticate(request({ authorization: 'Bearer good.b' }))).toEqual({ kind: 'invalid', reason: 'Jwt issuer is not configured' });
  });
});

describe('refusals', () => {
  it('refuses requirement shapes the model cannot honour, with their paths', () => {
    const p = { p: provider('a') };
    const msg =
      'only Istio’s requirement is supported: requires_any [provider, allow_missing] for one provider, or requires_any [P1…Pn, requires_all [requires_any [Pi, allow_missing] …]] for several (no token passes; a token must verify)';
    // A required token.
    expect(problems({ providers: p, rules: [{ match: { prefix: '/' }, requires: { provider_name: 'p' } }] })).toEqual([`rules[0].requires: ${msg}`]);
    // Per-route requirements.
    expect(problems({ providers: p, rules: [{ match: { prefix: '/api' }, requires: optional('p') }] })).toEqual([
      'rules[0].match: per-route JWT requirements are not supported: the rule must match every path (prefix "/")',
    ]);
    expect(problems({ providers: p, rules: [{ match: { prefix: '/', headers: [{ name: 'x' }] }, requires: optional('p') }] })).toEqual([
      'rules[0].match.headers: not supported: per-route JWT requirements are not supported: the rule must match every path (prefix "/")',
    ]);
    expect(problems({ providers: p, rules: [{ match: { prefix: '/' }, requires: optional('p') }, { match: { prefix: '/' } }] })).toEqual([
      'rules: only one rule is supported (per-route JWT requirements are not supported: the rule must match every path (prefix "/"))',
    ]);
    expect(problems({ providers: p, rules: [{ match: { prefix: '/' }, requires: optional('q') }] })).toEqual([
      'rules[0].requires.requires_any.requirements[0].provider_name: unknown provider "q"',
      'providers["p"]: a provider the requirement does not name verifies nothing in Envoy, and is not supported',
    ]);
    expect(problems({ providers: p, requirement_map: { r: optional('p') } })).toEqual(['requirement_map: not supported: per-route requirements are not supported']);
    // Several providers without the outer OR: a token at a shared place would fail in Envoy.
    const two = { a: provider('a'), b: provider('b') };
    expect(problems({ providers: two, rules: [{ match: { prefix: '/' }, requires: { requires_all: { requirements: [optional('a'), optional('b')] } } }] })).toEqual([`rules[0].requires: ${msg}`]);
  });

  it('refuses provider fields skiff does not honour', () => {
    const at = 'providers["p"]';
    expect(problems(istio({ p: provider('a', { subjects: { prefix: 'spiffe://' } }) }))).toEqual([`${at}.subjects: not supported: subject matching is not supported`]);
    expect(problems(istio({ p: provider('a', { require_expiration: true, max_lifetime: '60s' }) }))).toEqual([
      `${at}.require_expiration: not supported: tokens without exp are accepted, as Istio configures`,
      `${at}.max_lifetime: not supported: a token lifetime limit is not supported`,
    ]);
    expect(problems(istio({ p: provider('a', { clock_skew_seconds: 10 }) }))).toEqual([`${at}.clock_skew_seconds: only 60 (the default) is supported`]);
    expect(problems(istio({ p: { issuer: 'a', local_jwks: { filename: '/etc/jwks.json' } } }))).toEqual([
      `${at}.local_jwks.filename: not supported: reading key files is not supported`,
      `${at}.local_jwks: exactly one of inline_string or inline_bytes is required`,
    ]);
    expect(problems(istio({ p: { issuer: 'a' } }))).toEqual([`${at}: exactly one of remote_jwks or local_jwks is required`]);
    expect(problems(istio({ p: { local_jwks: { inline_string: JWKS } } }))).toEqual([`${at}.issuer: required: skiff picks the provider by the token’s iss`]);
    expect(problems(istio({ p: { issuer: 'a', remote_jwks: { http_uri: { uri: 'file:///jwks' } } } }))).toEqual([
      `${at}.remote_jwks.http_uri.uri: an absolute http(s) URL is required, got "file:///jwks"`,
    ]);
    expect(problems({ '@type': 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC' })).toEqual([
      '@type: expected envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication',
    ]);
  });
});
