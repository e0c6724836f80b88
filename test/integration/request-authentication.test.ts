/**
 * RequestAuthentication end to end, short of the data path: YAML → validation → model → compiled
 * authenticator → verdict, with real keys, tokens signed here, and a real JWKS server on port 0
 * (fetch, caching, refresh, failures deny). Istio semantics: no token passes with no principal;
 * a present token must verify (else 401 with Envoy's reason); one token per request.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { compileRequestAuthentication, type JwtRequestView, type JwtResult } from '../../src/compile/request-authentication.js';
import { formatDiagnostic } from '../../src/config/diagnostics.js';
import { loadFromSources } from '../../src/config/load.js';
import type { Model, RequestAuthentication } from '../../src/model/index.js';
import { JwksCache } from '../../src/security/jwks-cache.js';
import { jwtVerifier } from '../../src/security/jwt-verifier.js';
import { ecKey, jwksJson, now, rsaKey, signJwt } from '../helpers/jwt.js';

// === helpers ===

const ISS = 'https://issuer.example.com';
const rsa = rsaKey('rsa-1');
const ec = ecKey('ec-1');
const stranger = rsaKey('rsa-9');

function load(...docs: string[]): { model: Model | undefined; lines: string[] } {
  const r = loadFromSources([{ name: 'ra.yaml', absolutePath: '/config/ra.yaml', text: docs.join('---\n') }]);
  return { model: r.model, lines: r.diagnostics.map((d) => formatDiagnostic(d)) };
}

function authn(...docs: string[]): RequestAuthentication {
  const r = load(...docs);
  if (r.model === undefined) throw new Error(`config is invalid:\n${r.lines.join('\n')}`);
  return r.model.requestAuthentication;
}

function errors(...docs: string[]): string[] {
  const r = load(...docs);
  expect(r.model).toBeUndefined();
  return r.lines.filter((l) => !l.includes(': warning: '));
}

const mesh = (o: { ns?: string; labels?: string } = {}): string => `apiVersion: skiff.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  defaultNamespace: ${o.ns ?? 'default'}
  workloadLabels: ${o.labels ?? '{app: web}'}
`;

/** A RequestAuthentication; `rules` is YAML for `jwtRules` (indented under it) or flow YAML. */
function ra(name: string, rules: string, o: { ns?: string; selector?: string; extra?: string } = {}): string {
  return `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: ${name}${o.ns === undefined ? '' : `, namespace: ${o.ns}`}}
spec:
${o.selector === undefined ? '' : `  selector: {matchLabels: ${o.selector}}\n`}${o.extra === undefined ? '' : `${o.extra}\n`}  jwtRules:${rules.startsWith('[') ? ` ${rules}\n` : `\n${rules}`}`;
}

const inline = (extra = '', issuer = ISS): string => `  - issuer: ${JSON.stringify(issuer)}
    jwks: '${jwksJson(rsa, ec)}'
${extra}`;

function request(o: { headers?: Record<string, string>; query?: Record<string, string> } = {}): JwtRequestView {
  return { header: (n) => o.headers?.[n], query: (n) => o.query?.[n] };
}

const bearer = (token: string): JwtRequestView => request({ headers: { authorization: `Bearer ${token}` } });
const claims = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({ iss: ISS, sub: 'alice', exp: now() + 600, ...extra });

async function run(model: RequestAuthentication, req: JwtRequestView, cache = new JwksCache()): Promise<JwtResult> {
  return compileRequestAuthentication(model, jwtVerifier(cache)).authenticate(req);
}

// === validation ===

describe('RequestAuthentication: validation', () => {
  it('issuer is required and non-empty; audiences and locations must be non-empty', () => {
    expect(errors(ra('a', `  - jwks: '${jwksJson(rsa)}'`))).toEqual(['ra.yaml:6:5: RequestAuthentication/a: spec.jwtRules[0].issuer: required field is missing']);
    expect(errors(ra('a', `[{issuer: "", jwksUri: "https://x/jwks"}]`))[0]).toContain('spec.jwtRules[0].issuer: issuer must be non-empty string');
    expect(errors(ra('a', `[{issuer: x, jwksUri: "https://x/jwks", audiences: [""]}]`))[0]).toContain('audience must be non-empty string');
    expect(errors(ra('a', `[{issuer: x, jwksUri: "https://x/jwks", fromHeaders: [{name: ""}]}]`))[0]).toContain('location header name must be non-empty string');
    expect(errors(ra('a', `[{issuer: x, jwksUri: "https://x/jwks", fromParams: [""]}]`))[0]).toContain('location query must be non-empty string');
  });

  it('without jwks or jwksUri, discovers the key set through the issuer (which must then be a URL)', () => {
    expect(errors(ra('a', '[{issuer: "accounts.example.com"}]'))).toEqual([
      'ra.yaml:5:23: RequestAuthentication/a: spec.jwtRules[0].issuer: without jwks or jwksUri the issuer must be an http(s) URL to discover the key set from ("accounts.example.com" is not)',
    ]);
    const rule = authn(ra('a', '[{issuer: "https://accounts.example.com/"}]')).rules[0]!;
    expect(rule.jwks).toEqual({ kind: 'discovery', documentUri: 'https://accounts.example.com/.well-known/openid-configuration' });
  });

  it('inline jwks must parse as a JWK Set with a usable key; jwksUri must be http(s)', () => {
    expect(errors(ra('a', `[{issuer: x, jwks: "not json"}]`))[0]).toContain('spec.jwtRules[0].jwks: jwks parse error: Jwks is an invalid JSON');
    expect(errors(ra('a', `[{issuer: x, jwks: '{"keys": []}'}]`))[0]).toContain("jwks parse error: Jwks doesn't have any valid public key");
    expect(errors(ra('a', `[{issuer: x, jwksUri: "ftp://x/jwks"}]`))[0]).toContain('invalid jwksUri "ftp://x/jwks": the scheme must be http or https');
    expect(errors(ra('a', `[{issuer: x, jwksUri: "/jwks"}]`))[0]).toContain('not an absolute URL');
  });

  it('refuses targetRef(s); checks output header names and the timeout', () => {
    expect(errors(ra('a', `[{issuer: x, jwksUri: "https://x/j"}]`, { extra: '  targetRefs: [{kind: Service, name: x}]' }))[0]).toContain('spec.targetRefs: not supported (sidecars use selector)');
    expect(errors(ra('a', `[{issuer: x, jwksUri: "https://x/j", outputClaimToHeaders: [{header: "bad header", claim: sub}]}]`))[0]).toContain('invalid header name "bad header"');
    expect(errors(ra('a', `[{issuer: x, jwksUri: "https://x/j", timeout: 5x}]`))[0]).toContain('spec.jwtRules[0].timeout');
  });

  it('warns when both jwks and jwksUri are set (inline wins) and about unused oct keys', () => {
    const r = load(ra('a', `[{issuer: x, jwksUri: "https://x/j", jwks: '${JSON.stringify({ keys: [rsa.jwk, { kty: 'oct', k: 'AAAA' }] })}'}]`));
    expect(r.model?.requestAuthentication.rules[0]!.jwks.kind).toBe('inline');
    expect(r.lines.join('\n')).toContain('warning: both jwks and jwksUri are set');
    expect(r.lines.join('\n')).toContain('warning: key 1: symmetric (oct) keys are not used');
  });
});

// === selection ===

describe('RequestAuthentication: which policies apply', () => {
  it('the proxy namespace (no selector or a matching one) and the root namespace; not other namespaces or other workloads', () => {
    const model = authn(
      mesh(),
      ra('ns-wide', `[{issuer: a, jwksUri: "https://a/j"}]`),
      ra('mine', `[{issuer: b, jwksUri: "https://b/j"}]`, { selector: '{app: web}' }),
      ra('theirs', `[{issuer: c, jwksUri: "https://c/j"}]`, { selector: '{app: db}' }),
      ra('elsewhere', `[{issuer: d, jwksUri: "https://d/j"}]`, { ns: 'other' }),
      ra('mesh', `[{issuer: e, jwksUri: "https://e/j"}]`, { ns: 'istio-system' }),
    );
    expect(model.rules.map((r) => [r.policy, r.issuer])).toEqual([
      ['default.mine', 'b'],
      ['default.ns-wide', 'a'],
      ['istio-system.mesh', 'e'],
    ]);
    expect(model.rules[0]).toEqual({
      policy: 'default.mine', issuer: 'b', audiences: [], jwks: { kind: 'remote', uri: 'https://b/j' }, timeoutMs: 5000,
      fromHeaders: [], fromParams: [], fromCookies: [], forwardOriginalToken: false, outputClaimToHeaders: [], spaceDelimitedClaims: [],
    });
  });

  it('no RequestAuthentication: disabled, every request passes with no principal', async () => {
    const model = authn(mesh());
    const compiled = compileRequestAuthentication(model, jwtVerifier(new JwksCache()));
    expect(compiled.enabled).toBe(false);
    expect(await compiled.authenticate(bearer('garbage'))).toEqual({ kind: 'none' });
  });
});

// === verdicts with inline keys ===

describe('RequestAuthentication: verdicts (inline jwks)', () => {
  const model = authn(mesh(), ra('jwt', inline('    audiences: [api]\n    outputClaimToHeaders: [{header: x-sub, claim: sub}]\n    outputPayloadToHeader: x-payload\n')));

  it('a valid token: principal iss/sub, claims, the token header removed, output headers set — synchronously', () => {
    const token = signJwt(rsa, claims({ aud: 'api' }));
    const result = compileRequestAuthentication(model, jwtVerifier(new JwksCache())).authenticate(bearer(token));
    expect(result).not.toBeInstanceOf(Promise);
    expect(result).toEqual({
      kind: 'valid',
      principal: `${ISS}/alice`,
      claims: expect.objectContaining({ sub: 'alice', aud: 'api' }),
      rule: model.rules[0],
      removeHeader: 'authorization',
      setHeaders: [['x-payload', token.split('.')[1]], ['x-sub', 'alice']],
    });
  });

  it.each([
    ['expired', () => signJwt(rsa, claims({ aud: 'api', exp: now() - 120 })), 'Jwt is expired'],
    ['not yet valid', () => signJwt(rsa, claims({ aud: 'api', nbf: now() + 120 })), 'Jwt not yet valid'],
    ['wrong issuer', () => signJwt(rsa, claims({ aud: 'api', iss: 'https://evil.example.com' })), 'Jwt issuer is not configured'],
    ['wrong audience', () => signJwt(rsa, claims({ aud: 'web' })), 'Audiences in Jwt are not allowed'],
    ['bad signature', () => signJwt(stranger, claims({ aud: 'api' }), { kid: 'rsa-1' }), 'Jwt verification fails'],
    ['unknown kid', () => signJwt(stranger, claims({ aud: 'api' })), "Jwks doesn't have key to match kid or alg from Jwt"],
    ['garbage', () => 'not-a-jwt', 'Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections'],
  ])('%s → invalid (401)', async (_name, token, reason) => {
    expect(await run(model, bearer(token()))).toEqual({ kind: 'invalid', reason });
  });

  it('no token anywhere → none (allowed, no principal); another Authorization scheme is no token', async () => {
    expect(await run(model, request())).toEqual({ kind: 'none' });
    expect(await run(model, request({ headers: { authorization: 'Basic dXNlcjpwdw==' } }))).toEqual({ kind: 'none' });
  });

  it('default places: Authorization Bearer, then the access_token query parameter (not forwarded-removal for params)', async () => {
    const token = signJwt(ec, claims({ aud: 'api' }));
    const r = await run(model, request({ query: { access_token: token } }));
    expect(r).toMatchObject({ kind: 'valid', principal: `${ISS}/alice`, removeHeader: undefined });
  });

  it('every token present must verify: a good token does not carry a bad one (Envoy)', async () => {
    const good = signJwt(rsa, claims({ aud: 'api' }));
    const bad = signJwt(rsa, claims({ aud: 'api', exp: 1 }));
    expect((await run(model, request({ headers: { authorization: `Bearer ${bad}` }, query: { access_token: good } }))).kind).toBe('invalid');
    expect((await run(model, request({ headers: { authorization: `Bearer ${good}` }, query: { access_token: bad } }))).kind).toBe('invalid');
    expect((await run(model, request({ headers: { authorization: `Bearer ${good}` }, query: { access_token: good } }))).kind).toBe('valid');
  });

  it('claims with line breaks are never written into output headers', async () => {
    const m = authn(mesh(), ra('jwt', inline('    outputClaimToHeaders: [{header: X-Sub, claim: sub}]\n')));
    // The data path removes these from every request first, so a client cannot supply them.
    expect(compileRequestAuthentication(m, jwtVerifier(new JwksCache())).outputHeaders).toEqual(['x-sub']);
    const clean = await run(m, request({ headers: { authorization: `Bearer ${signJwt(rsa, claims({ sub: 'alice' }))}` } }));
    expect(clean).toMatchObject({ kind: 'valid', setHeaders: [['x-sub', 'alice']] });
    const injected = await run(m, request({ headers: { authorization: `Bearer ${signJwt(rsa, claims({ sub: 'a\r\nx-injected: 1' }))}` } }));
    expect(injected).toMatchObject({ kind: 'valid', setHeaders: [] });
  });

  it('a custom header with a prefix, a custom query parameter and a cookie replace the defaults', async () => {
    const custom = authn(
      mesh(),
      ra('jwt', inline('    fromHeaders: [{name: X-Jwt-Assertion, prefix: "Token "}]\n    fromParams: [jwt]\n    fromCookies: [session]\n    forwardOriginalToken: true\n')),
    );
    const token = signJwt(rsa, claims());
    expect(await run(custom, request({ headers: { 'x-jwt-assertion': `Token ${token}` } }))).toMatchObject({ kind: 'valid', removeHeader: undefined });
    expect(await run(custom, request({ headers: { 'x-jwt-assertion': token } }))).toEqual({ kind: 'none' });
    expect(await run(custom, request({ query: { jwt: token } }))).toMatchObject({ kind: 'valid' });
    expect(await run(custom, request({ headers: { cookie: `a=b; session=${token}` } }))).toMatchObject({ kind: 'valid' });
    // The defaults are not read any more.
    expect(await run(custom, bearer(token))).toEqual({ kind: 'none' });
    expect(await run(custom, request({ query: { access_token: token } }))).toEqual({ kind: 'none' });
  });

  it('a token is verified only by a rule that reads the place it was found', async () => {
    const two = authn(
      mesh(),
      ra('jwt', `${inline('    fromHeaders: [{name: x-a}]\n', 'https://a.example.com')}${inline('    fromHeaders: [{name: x-b}]\n', 'https://b.example.com')}`),
    );
    const fromA = signJwt(rsa, claims({ iss: 'https://a.example.com' }));
    expect(await run(two, request({ headers: { 'x-a': fromA } }))).toMatchObject({ kind: 'valid', principal: 'https://a.example.com/alice', removeHeader: 'x-a' });
    expect(await run(two, request({ headers: { 'x-b': fromA } }))).toEqual({ kind: 'invalid', reason: 'Jwt issuer is not configured' });
  });
});

// === remote JWKS ===

interface JwksServer {
  readonly uri: string;
  hits: number;
  /** What the next responses are. */
  mode: 'ok' | 'error' | 'hang' | 'garbage';
  body: string;
  close(): Promise<void>;
}

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

async function jwksServer(body = jwksJson(rsa)): Promise<JwksServer> {
  const state = { hits: 0, mode: 'ok' as JwksServer['mode'], body };
  const server = createServer((_req, res) => {
    state.hits++;
    if (state.mode === 'hang') return;
    if (state.mode === 'error') {
      res.writeHead(503).end('down');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(state.mode === 'garbage' ? '{"nope": 1}' : state.body);
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const uri = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`;
  return Object.assign(state, {
    uri,
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      servers.splice(servers.indexOf(server), 1);
    },
  }) as JwksServer;
}

const remote = (uri: string, extra = ''): RequestAuthentication => authn(mesh(), ra('jwt', `  - issuer: ${JSON.stringify(ISS)}\n    jwksUri: ${JSON.stringify(uri)}\n${extra}`));

describe('RequestAuthentication: OpenID discovery', () => {
  /** An issuer serving its OpenID configuration (pointing at `jwks`) on `/.well-known/openid-configuration`. */
  async function issuerServer(jwks: JwksServer, configuration?: string): Promise<{ issuer: string; hits: string[] }> {
    const hits: string[] = [];
    const server = createServer((req, res) => {
      hits.push(req.url ?? '');
      if (req.url !== '/.well-known/openid-configuration') return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'application/json' }).end(configuration ?? JSON.stringify({ issuer: 'x', jwks_uri: jwks.uri }));
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return { issuer: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, hits };
  }
  const discovering = (issuer: string): RequestAuthentication => authn(mesh(), ra('jwt', `  - issuer: ${JSON.stringify(issuer)}\n`));
  const token = (issuer: string): string => signJwt(rsa, { ...claims(), iss: issuer });

  it('finds jwks_uri in the issuer configuration at load, then verifies synchronously', async () => {
    const jwks = await jwksServer();
    const { issuer, hits } = await issuerServer(jwks);
    const model = discovering(issuer);
    const cache = new JwksCache();
    await cache.prefetch(model);
    expect(hits).toEqual(['/.well-known/openid-configuration']);
    expect(jwks.hits).toBe(1);
    const compiled = compileRequestAuthentication(model, jwtVerifier(cache));
    const r = compiled.authenticate(bearer(token(issuer)));
    expect(r).not.toBeInstanceOf(Promise);
    expect(r).toMatchObject({ kind: 'valid', principal: `${issuer}/alice` });
  });

  it('discovers on the request path when nothing was prefetched', async () => {
    const jwks = await jwksServer();
    const { issuer } = await issuerServer(jwks);
    expect(await run(discovering(issuer), bearer(token(issuer)))).toMatchObject({ kind: 'valid' });
  });

  it('a configuration that is missing, not JSON, or without an http(s) jwks_uri refuses the token', async () => {
    const jwks = await jwksServer();
    const refused = { kind: 'invalid', reason: 'Jwks remote fetch is failed' };
    for (const body of ['not json', JSON.stringify({ issuer: 'x' }), JSON.stringify({ jwks_uri: 'file:///etc/passwd' })]) {
      const { issuer } = await issuerServer(jwks, body);
      expect(await run(discovering(issuer), bearer(token(issuer))), body).toEqual(refused);
    }
    const { issuer } = await issuerServer(jwks);
    const wrongPath = `${issuer}/tenant`;
    expect(await run(discovering(wrongPath), bearer(token(wrongPath)))).toEqual(refused);
    expect(jwks.hits).toBe(0);
  });
});

describe('RequestAuthentication: remote jwksUri', () => {
  it('prefetch at load: the request path verifies synchronously, and the set is fetched once', async () => {
    const server = await jwksServer();
    const model = remote(server.uri);
    const cache = new JwksCache();
    await cache.prefetch(model);
    expect(server.hits).toBe(1);
    const compiled = compileRequestAuthentication(model, jwtVerifier(cache));
    for (let i = 0; i < 3; i++) {
      const r = compiled.authenticate(bearer(signJwt(rsa, claims())));
      expect(r).not.toBeInstanceOf(Promise);
      expect(r).toMatchObject({ kind: 'valid', principal: `${ISS}/alice` });
    }
    await cache.prefetch(model);
    expect(server.hits).toBe(1);
  });

  it('keys not yet fetched: the request waits for one shared fetch, then verifies', async () => {
    const server = await jwksServer();
    const model = remote(server.uri);
    const compiled = compileRequestAuthentication(model, jwtVerifier(new JwksCache()));
    const pending = [0, 1, 2].map(() => compiled.authenticate(bearer(signJwt(rsa, claims()))));
    expect(pending[0]).toBeInstanceOf(Promise);
    for (const r of await Promise.all(pending)) expect(r).toMatchObject({ kind: 'valid' });
    expect(server.hits).toBe(1);
  });

  it('the JWKS server down, failing, slow or serving garbage → the token is refused, never let through', async () => {
    const server = await jwksServer();
    const model = remote(server.uri, '    timeout: 200ms\n');
    const token = signJwt(rsa, claims());
    const refused = { kind: 'invalid', reason: 'Jwks remote fetch is failed' };
    for (const mode of ['error', 'garbage', 'hang'] as const) {
      server.mode = mode;
      expect(await run(model, bearer(token)), mode).toEqual(refused);
    }
    await server.close();
    const cache = new JwksCache();
    await cache.prefetch(model);
    expect(await run(model, bearer(token), cache)).toEqual(refused);
    // Claims are checked before the keys are fetched, as Envoy does.
    expect(await run(model, bearer(signJwt(rsa, claims({ exp: 1 }))), cache)).toEqual({ kind: 'invalid', reason: 'Jwt is expired' });
    // No token: still no failure.
    expect(await run(model, request(), cache)).toEqual({ kind: 'none' });
  });

  it('after the cache duration the set is refreshed in the background; a failed refresh drops the keys (deny)', async () => {
    const server = await jwksServer();
    const model = remote(server.uri);
    let clock = 1_000_000;
    const cache = new JwksCache({ now: () => clock, cacheDurationMs: 1000 });
    await cache.prefetch(model);
    const compiled = compileRequestAuthentication(model, jwtVerifier(cache));

    // Rotation: the server now publishes the EC key only.
    server.body = jwksJson(ec);
    clock += 1000;
    // Stale keys still answer while the refresh runs.
    expect(compiled.authenticate(bearer(signJwt(rsa, claims())))).toMatchObject({ kind: 'valid' });
    await cache.prefetch(model); // waits for nothing new: the refresh is in flight or done
    await new Promise((r) => setTimeout(r, 50));
    expect(server.hits).toBe(2);
    expect(compiled.authenticate(bearer(signJwt(ec, claims())))).toMatchObject({ kind: 'valid' });
    expect(compiled.authenticate(bearer(signJwt(rsa, claims())))).toEqual({ kind: 'invalid', reason: "Jwks doesn't have key to match kid or alg from Jwt" });

    server.mode = 'error';
    clock += 1000;
    compiled.authenticate(bearer(signJwt(ec, claims()))); // triggers the refresh, which fails
    await new Promise((r) => setTimeout(r, 50));
    expect(await compiled.authenticate(bearer(signJwt(ec, claims())))).toEqual({ kind: 'invalid', reason: 'Jwks remote fetch is failed' });
  });

  it('prefetch forgets URIs no rule uses any more', async () => {
    const server = await jwksServer();
    const cache = new JwksCache();
    await cache.prefetch(remote(server.uri));
    await cache.prefetch({ rules: [] });
    expect(cache.keysFor(remote(server.uri).rules[0]!)).toBeUndefined();
  });
});
