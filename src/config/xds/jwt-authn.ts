/**
 * Envoy `envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication` → the model's
 * RequestAuthentication, for the filter istiod builds from RequestAuthentication
 * (IST:pilot/pkg/security/authn/policy_applier.go convertToEnvoyJwtConfig): one provider per JWT
 * rule (`origins-<i>`), and one requirement rule on prefix `/`:
 * - one provider P: `requires_any [P, allow_missing]`;
 * - providers P1…Pn: `requires_any [P1, …, Pn, requires_all [requires_any [Pi, allow_missing] …]]`.
 * Both say what the model says: a request without a token passes with no principal; a token must
 * be verified by a provider that reads the place it was found.
 *
 * Contract: as for every xDS translator (fields.ts). Any other requirement shape is refused — a
 * required token, per-route requirements, requirement maps, filter-state rules — because the
 * model cannot honour it, and enforcing something else could let a request through that Envoy
 * would refuse. Two shapes are accepted although skiff is stricter than jwt_authn alone:
 * `allow_missing_or_failed` (Istio ≤ 1.5 emitted it next to its authn filter, which then
 * rejected a failed token with 401, as skiff does), and a request with two tokens of which one
 * fails (skiff rejects it; Envoy lets the good one satisfy an OR).
 *
 * Providers become model rules in the order the requirement names them (Istio's rule order);
 * a provider the requirement does not name would verify nothing in Envoy, and is refused.
 */
import { DEFAULT_JWKS_TIMEOUT_MS, type JwtClaimToHeader, type JwtHeaderLocation, type JwtRule, type RequestAuthentication } from '../../model/index.js';
import { FieldReader, isObject, typeName, type Fields, type Spec, type XdsProblem } from './fields.js';

export const JWT_AUTHN_TYPE = 'envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication';

export interface JwtAuthnResult {
  /** The JWT rules the filter enforces (none when it has no requirement rule); absent when there are problems. */
  readonly requestAuthentication?: RequestAuthentication;
  readonly problems: readonly XdsProblem[];
}

/** The filter's typed_config (with or without `@type`). */
export function translateJwtAuthn(json: unknown): JwtAuthnResult {
  const t = new JwtAuthnTranslator();
  const requestAuthentication = t.filter(json);
  return t.problems.length === 0 ? { requestAuthentication, problems: [] } : { problems: t.problems };
}

// === specs ===

const STATS = 'names stats only';

const JWT_AUTHN: Spec = {
  handled: ['providers', 'rules'],
  ignored: {
    '@type': 'the filter type',
    stat_prefix: STATS,
    bypass_cors_preflight:
      'browsers send no credentials on a CORS preflight, so it carries no token and passes; skiff still verifies a token one does carry (stricter, never more open)',
  },
  refused: {
    filter_state_rules: 'requirements chosen by filter state are not supported',
    requirement_map: 'per-route requirements are not supported',
    strip_failure_response: 'skiff always states why a token failed, as Envoy does by default',
  },
};
const PROVIDER: Spec = {
  handled: [
    'issuer', 'audiences', 'remote_jwks', 'local_jwks', 'forward', 'from_headers', 'from_params', 'from_cookies',
    'forward_payload_header', 'claim_to_headers', 'normalize_payload_in_metadata', 'clock_skew_seconds',
  ],
  ignored: {
    payload_in_metadata: 'skiff hands the verified claims to authorization directly (what Istio reads from this metadata)',
    clear_route_cache: 'skiff authenticates before it picks a route, so routes always see the claim headers',
    jwt_cache_config: 'caches verified tokens: performance only',
    header_in_metadata: 'skiff keeps no dynamic metadata; only its own authorization reads the token',
    failed_status_in_metadata: 'skiff keeps no dynamic metadata',
  },
  refused: {
    subjects: 'subject matching is not supported',
    require_expiration: 'tokens without exp are accepted, as Istio configures',
    max_lifetime: 'a token lifetime limit is not supported',
    pad_forward_payload_header: 'the forwarded payload is base64url without padding',
  },
};
const REMOTE_JWKS: Spec = {
  handled: ['http_uri'],
  ignored: {
    cache_duration: 'skiff refreshes fetched keys every 5 minutes (what istiod asks)',
    async_fetch: 'skiff fetches keys on first use and refreshes them in the background',
    retry_policy: 'a failed fetch is retried by the next request that needs the keys',
  },
};
const HTTP_URI: Spec = {
  handled: ['uri', 'timeout'],
  ignored: { cluster: 'skiff fetches the URI directly (istiod names a cluster for the same host)' },
};
const DATA_SOURCE: Spec = {
  handled: ['inline_string', 'inline_bytes'],
  refused: { filename: 'reading key files is not supported', environment_variable: 'reading keys from the environment is not supported' },
};
const JWT_HEADER: Spec = { handled: ['name', 'value_prefix'] };
const CLAIM_TO_HEADER: Spec = { handled: ['header_name', 'claim_name'] };
const NORMALIZE: Spec = { handled: ['space_delimited_claims'] };
const REQUIREMENT_RULE: Spec = {
  handled: ['match', 'requires'],
  refused: { requirement_name: 'requirement maps are not supported' },
};
const PER_ROUTE = 'per-route JWT requirements are not supported: the rule must match every path (prefix "/")';
const ROUTE_MATCH: Spec = {
  handled: ['prefix', 'path'],
  ignored: { case_sensitive: 'irrelevant to prefix "/"' },
  refused: Object.fromEntries(
    ['safe_regex', 'path_separated_prefix', 'path_match_policy', 'connect_matcher', 'headers', 'query_parameters', 'grpc', 'tls_context', 'runtime_fraction', 'dynamic_metadata', 'filter_state'].map((k) => [k, PER_ROUTE]),
  ),
};
const REQUIREMENT: Spec = {
  handled: ['provider_name', 'requires_any', 'requires_all', 'allow_missing', 'allow_missing_or_failed'],
  refused: { provider_and_audiences: 'per-requirement audiences are not supported' },
};
const REQUIREMENT_LIST: Spec = { handled: ['requirements'] };
const EMPTY: Spec = { handled: [] };

/** jwt_verify_lib kClockSkewInSecond, what skiff's verifier uses (security/jwt.ts). */
const CLOCK_SKEW_SECONDS = 60;

/** A JwtRequirement, read. */
type Requirement =
  | { readonly kind: 'provider'; readonly name: string; readonly path: string }
  | { readonly kind: 'missing' }
  | { readonly kind: 'any' | 'all'; readonly of: readonly Requirement[]; readonly path: string };

// === impl JwtAuthnTranslator ===

class JwtAuthnTranslator extends FieldReader {
  filter(json: unknown): RequestAuthentication {
    if (isObject(json) && typeof json['@type'] === 'string' && typeName(json['@type']) !== JWT_AUTHN_TYPE) {
      this.problem('@type', `expected ${JWT_AUTHN_TYPE}`);
    }
    const f = this.message(json, '', JWT_AUTHN);
    const providers = this.#providers(f.get('providers'));
    const rules = this.list(f.get('rules'), 'rules');
    // No requirement rule: jwt_authn verifies nothing.
    if (rules.length === 0) return { rules: [] };
    if (rules.length > 1) this.problem('rules', `only one rule is supported (${PER_ROUTE})`);
    const order = this.#rule(rules[0], 'rules[0]', providers);
    if (order === undefined) return { rules: [] };
    for (const [name, { path }] of providers) {
      if (!order.includes(name)) this.problem(path, 'a provider the requirement does not name verifies nothing in Envoy, and is not supported');
    }
    return { rules: order.flatMap((name) => providers.get(name)?.rule ?? []) };
  }

  #providers(v: unknown): Map<string, { readonly rule: JwtRule | undefined; readonly path: string }> {
    const out = new Map<string, { rule: JwtRule | undefined; path: string }>();
    if (v === undefined) return out;
    if (!isObject(v)) {
      this.problem('providers', 'must be a map of provider name to provider');
      return out;
    }
    for (const [name, p] of Object.entries(v)) {
      const path = `providers[${JSON.stringify(name)}]`;
      out.set(name, { rule: this.#provider(name, p, path), path });
    }
    return out;
  }

  #provider(name: string, v: unknown, path: string): JwtRule | undefined {
    const f = this.message(v, path, PROVIDER);
    const issuer = this.string(f.get('issuer'), `${path}.issuer`) ?? '';
    if (issuer === '') this.problem(`${path}.issuer`, 'required: skiff picks the provider by the token’s iss');
    const skew = this.uint(f.get('clock_skew_seconds'), `${path}.clock_skew_seconds`);
    if (skew !== undefined && skew !== CLOCK_SKEW_SECONDS) this.problem(`${path}.clock_skew_seconds`, `only ${CLOCK_SKEW_SECONDS} (the default) is supported`);
    const jwks = this.#jwks(f, path);
    const fromHeaders = this.list(f.get('from_headers'), `${path}.from_headers`).flatMap((h, i): JwtHeaderLocation[] => {
      const at = `${path}.from_headers[${i}]`;
      const hf = this.message(h, at, JWT_HEADER);
      const header = this.string(hf.get('name'), `${at}.name`) ?? '';
      if (header === '') this.problem(`${at}.name`, 'required');
      return [{ name: header, prefix: this.string(hf.get('value_prefix'), `${at}.value_prefix`) ?? '' }];
    });
    const claimHeaders = this.list(f.get('claim_to_headers'), `${path}.claim_to_headers`).flatMap((c, i): JwtClaimToHeader[] => {
      const at = `${path}.claim_to_headers[${i}]`;
      const cf = this.message(c, at, CLAIM_TO_HEADER);
      const header = this.string(cf.get('header_name'), `${at}.header_name`) ?? '';
      const claim = this.string(cf.get('claim_name'), `${at}.claim_name`) ?? '';
      if (header === '') this.problem(`${at}.header_name`, 'required');
      if (claim === '') this.problem(`${at}.claim_name`, 'required');
      return [{ header, claim }];
    });
    const normalize = this.message(f.get('normalize_payload_in_metadata'), `${path}.normalize_payload_in_metadata`, NORMALIZE);
    const payloadHeader = this.string(f.get('forward_payload_header'), `${path}.forward_payload_header`) ?? '';
    if (jwks === undefined || issuer === '') return undefined;
    return {
      policy: name,
      issuer,
      audiences: this.strings(f.get('audiences'), `${path}.audiences`),
      jwks: jwks.source,
      timeoutMs: jwks.timeoutMs,
      fromHeaders,
      fromParams: this.strings(f.get('from_params'), `${path}.from_params`),
      fromCookies: this.strings(f.get('from_cookies'), `${path}.from_cookies`),
      forwardOriginalToken: this.bool(f.get('forward'), `${path}.forward`) ?? false,
      ...(payloadHeader !== '' ? { outputPayloadToHeader: payloadHeader } : {}),
      outputClaimToHeaders: claimHeaders,
      spaceDelimitedClaims: this.strings(normalize.get('space_delimited_claims'), `${path}.normalize_payload_in_metadata.space_delimited_claims`),
    };
  }

  /** remote_jwks (fetched) or local_jwks (inline; istiod's default, with keys it fetched itself). */
  #jwks(f: Fields, path: string): { source: JwtRule['jwks']; timeoutMs: number } | undefined {
    if (f.has('remote_jwks') === f.has('local_jwks')) {
      this.problem(path, 'exactly one of remote_jwks or local_jwks is required');
      return undefined;
    }
    if (f.has('local_jwks')) {
      const at = `${path}.local_jwks`;
      const d = this.message(f.get('local_jwks'), at, DATA_SOURCE);
      const text = this.string(d.get('inline_string'), `${at}.inline_string`);
      const bytes = this.string(d.get('inline_bytes'), `${at}.inline_bytes`);
      if ((text === undefined) === (bytes === undefined)) {
        this.problem(at, 'exactly one of inline_string or inline_bytes is required');
        return undefined;
      }
      // A key set that does not parse is kept: Envoy accepts it and every token then fails.
      const json = text ?? Buffer.from(bytes!, 'base64').toString('utf8');
      return { source: { kind: 'inline', json }, timeoutMs: DEFAULT_JWKS_TIMEOUT_MS };
    }
    const at = `${path}.remote_jwks`;
    const r = this.message(f.get('remote_jwks'), at, REMOTE_JWKS);
    const h = this.message(r.get('http_uri'), `${at}.http_uri`, HTTP_URI);
    const uri = this.string(h.get('uri'), `${at}.http_uri.uri`) ?? '';
    let url: URL | undefined;
    try {
      url = new URL(uri);
    } catch {
      url = undefined;
    }
    if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '') {
      this.problem(`${at}.http_uri.uri`, `an absolute http(s) URL is required, got ${JSON.stringify(uri)}`);
      return undefined;
    }
    const timeoutMs = this.duration(h.get('timeout'), `${at}.http_uri.timeout`) ?? DEFAULT_JWKS_TIMEOUT_MS;
    if (timeoutMs <= 0) this.problem(`${at}.http_uri.timeout`, 'must be positive');
    return { source: { kind: 'remote', uri }, timeoutMs };
  }

  /** The requirement rule; returns the providers it names, in order (undefined: refused). */
  #rule(v: unknown, path: string, providers: ReadonlyMap<string, unknown>): string[] | undefined {
    const f = this.message(v, path, REQUIREMENT_RULE);
    const m = this.message(f.get('match'), `${path}.match`, ROUTE_MATCH);
    const prefix = this.string(m.get('prefix'), `${path}.match.prefix`);
    if (m.has('path') || prefix !== '/') this.problem(`${path}.match`, PER_ROUTE);
    if (!f.has('requires')) {
      // A rule without a requirement verifies nothing in Envoy.
      this.problem(`${path}.requires`, 'required: skiff verifies tokens on every request');
      return undefined;
    }
    const at = `${path}.requires`;
    const req = this.#requirement(f.get('requires'), at);
    if (req === undefined) return undefined;
    for (const name of names(req)) if (!providers.has(name.name)) this.problem(name.path, `unknown provider ${JSON.stringify(name.name)}`);
    const order = istioProviders(req);
    if (order === undefined) {
      this.problem(
        at,
        'only Istio’s requirement is supported: requires_any [provider, allow_missing] for one provider, or requires_any [P1…Pn, requires_all [requires_any [Pi, allow_missing] …]] for several (no token passes; a token must verify)',
      );
      return undefined;
    }
    return order;
  }

  #requirement(v: unknown, path: string): Requirement | undefined {
    const f = this.message(v, path, REQUIREMENT);
    const kinds = [...f.keys()];
    if (kinds.length !== 1) {
      this.problem(path, kinds.length === 0 ? 'a requirement must set one of provider_name, requires_any, requires_all, allow_missing' : `sets more than one of ${kinds.join(', ')}`);
      return undefined;
    }
    const kind = kinds[0]!;
    const at = `${path}.${kind}`;
    switch (kind) {
      case 'provider_name': {
        const name = this.string(f.get(kind), at);
        return name === undefined ? undefined : { kind: 'provider', name, path: at };
      }
      case 'allow_missing':
      case 'allow_missing_or_failed':
        this.message(f.get(kind), at, EMPTY);
        return { kind: 'missing' };
      default: {
        const list = this.message(f.get(kind), at, REQUIREMENT_LIST);
        const items = this.list(list.get('requirements'), `${at}.requirements`);
        if (items.length < 2) this.problem(`${at}.requirements`, 'at least two are required');
        const of = items.map((r, i) => this.#requirement(r, `${at}.requirements[${i}]`));
        if (of.some((r) => r === undefined)) return undefined;
        return { kind: kind === 'requires_any' ? 'any' : 'all', of: of as Requirement[], path: at };
      }
    }
  }
}

function names(r: Requirement): Array<{ name: string; path: string }> {
  if (r.kind === 'provider') return [{ name: r.name, path: r.path }];
  return r.kind === 'missing' ? [] : r.of.flatMap(names);
}

/** `requires_any [P, allow_missing]` (either order) → P. */
function optionalProvider(r: Requirement): string | undefined {
  if (r.kind !== 'any' || r.of.length !== 2) return undefined;
  const provider = r.of.find((x) => x.kind === 'provider');
  const missing = r.of.find((x) => x.kind === 'missing');
  return provider?.kind === 'provider' && missing !== undefined ? provider.name : undefined;
}

/** The providers of Istio's requirement, in order; undefined for any other shape. */
function istioProviders(r: Requirement): string[] | undefined {
  const single = optionalProvider(r);
  if (single !== undefined) return [single];
  if (r.kind !== 'any') return undefined;
  const outer = r.of.filter((x) => x.kind === 'provider').map((x) => (x.kind === 'provider' ? x.name : ''));
  const alls = r.of.filter((x) => x.kind === 'all');
  if (alls.length !== 1 || outer.length + 1 !== r.of.length || outer.length < 2) return undefined;
  const all = alls[0]!;
  if (all.kind !== 'all') return undefined;
  const inner = all.of.map(optionalProvider);
  const unique = new Set(outer);
  if (unique.size !== outer.length || inner.length !== outer.length || inner.some((p) => p === undefined || !unique.has(p))) return undefined;
  if (new Set(inner).size !== inner.length) return undefined;
  return outer;
}
