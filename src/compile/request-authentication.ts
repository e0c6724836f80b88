/**
 * Compiled RequestAuthentication: where tokens are looked for, which rules may verify a token
 * found at a place, and what a verified token gives the request (Istio's JWT rules as Envoy's
 * jwt_authn enforces them, `requires_any` of every rule or `allow_missing`).
 *
 * Outcome, per request:
 * - no token at any configured place → `none`: allowed, no request principal (an
 *   AuthorizationPolicy with `requestPrincipals` is what requires one);
 * - a token → it must verify: `valid` with principal `iss/sub`, or `invalid` with Envoy's reason
 *   (the data path answers 401 with it). A token whose issuer no rule reading that place
 *   configures is `invalid` ("Jwt issuer is not configured").
 * Only the first token found is used (Istio supports one token per request). Places are tried in
 * this order: headers, then query parameters, then cookies, each in rule order. A rule with no
 * place configured reads Envoy's defaults: `Authorization: Bearer <token>`, then `access_token`.
 *
 * The signature and key handling live in the security layer, behind `JwtVerifier` (compile does
 * not import security): the lifecycle passes `jwtVerifier(jwksCache)` from
 * security/jwt-verifier.ts.
 */
import type { JwtRule, RequestAuthentication } from '../model/index.js';

/** A verified token (`ok`) or why it is refused. */
export type JwtCheck =
  | {
      readonly ok: true;
      /** The rule that verified it. */
      readonly rule: JwtRule;
      readonly payload: Readonly<Record<string, unknown>>;
      /** The payload segment as sent (base64url). */
      readonly payloadSegment: string;
    }
  | { readonly ok: false; readonly reason: string };

export interface JwtVerifier {
  /**
   * Verifies `token` against the rule among `rules` whose issuer is the token's `iss` (none: the
   * issuer is not configured). Synchronous when that rule's keys are at hand; a promise when they
   * must be fetched first. Never throws or rejects: every failure is `{ ok: false }`.
   */
  verify(token: string, rules: readonly JwtRule[]): JwtCheck | Promise<JwtCheck>;
}

/** What the request offers. Names are passed lowercase. */
export interface JwtRequestView {
  /** The header's value; several values joined with `,`. Undefined when absent. */
  header(name: string): string | undefined;
  /** The (decoded) query parameter's value. Undefined when absent. */
  query(name: string): string | undefined;
}

export type JwtResult =
  | { readonly kind: 'none' }
  | { readonly kind: 'invalid'; readonly reason: string }
  | {
      readonly kind: 'valid';
      /** `iss/sub`: what AuthorizationPolicy `requestPrincipals` match. */
      readonly principal: string;
      readonly claims: Readonly<Record<string, unknown>>;
      /** The JWT rule that verified the token. */
      readonly rule: JwtRule;
      /**
       * Header to remove before forwarding (the token's header, when the rule does not
       * forwardOriginalToken). Envoy removes nothing for a token in a query parameter or cookie.
       */
      readonly removeHeader: string | undefined;
      /** Headers to set on the forwarded request: outputPayloadToHeader, outputClaimToHeaders. */
      readonly setHeaders: ReadonlyArray<readonly [name: string, value: string]>;
    };

export interface CompiledRequestAuthentication {
  /** False when no JWT rule applies: `authenticate` always returns `none`. */
  readonly enabled: boolean;
  /** Headers the rules output (lowercase): removed from every request before authentication, so a client cannot supply them. */
  readonly outputHeaders: readonly string[];
  authenticate(req: JwtRequestView): JwtResult | Promise<JwtResult>;
}

const NONE: JwtResult = { kind: 'none' };

interface Place {
  readonly kind: 'header' | 'param' | 'cookie';
  /** Lowercase for headers. */
  readonly name: string;
  /** Headers only; empty: the whole value. */
  readonly prefix: string;
  /** Rules that read this place, in rule order. */
  readonly rules: JwtRule[];
}

/** Characters Envoy's extractor takes as the token after a header prefix. */
const JWT_CHARS = /^[A-Za-z0-9\-_.]*/;

function cookie(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) {
      const v = part.slice(eq + 1).trim();
      return v.length >= 2 && v.startsWith('"') && v.endsWith('"') ? v.slice(1, -1) : v;
    }
  }
  return undefined;
}

function claimValue(payload: Readonly<Record<string, unknown>>, claim: string): string | undefined {
  let v: unknown = payload[claim];
  if (v === undefined && claim.includes('.')) {
    v = payload;
    for (const k of claim.split('.')) v = v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>)[k] : undefined;
  }
  const text = typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' ? String(v) : Array.isArray(v) && v.every((x) => typeof x === 'string') ? v.join(',') : undefined;
  // A claim is the token issuer's data, not ours to trust in a header: no line breaks or NULs.
  return text === undefined || /[\r\n\0]/.test(text) ? undefined : text;
}

export function compileRequestAuthentication(model: RequestAuthentication, verifier: JwtVerifier): CompiledRequestAuthentication {
  if (model.rules.length === 0) return { enabled: false, outputHeaders: [], authenticate: () => NONE };
  const outputHeaders = [...new Set(model.rules.flatMap((r) => [...(r.outputPayloadToHeader !== undefined ? [r.outputPayloadToHeader] : []), ...r.outputClaimToHeaders.map((o) => o.header)].map((h) => h.toLowerCase())))];

  const places: Place[] = [];
  const add = (kind: Place['kind'], name: string, prefix: string, rule: JwtRule): void => {
    const found = places.find((p) => p.kind === kind && p.name === name && p.prefix === prefix);
    if (found === undefined) places.push({ kind, name, prefix, rules: [rule] });
    else if (!found.rules.includes(rule)) found.rules.push(rule);
  };
  for (const r of model.rules) {
    if (r.fromHeaders.length + r.fromParams.length + r.fromCookies.length === 0) {
      add('header', 'authorization', 'Bearer ', r);
      add('param', 'access_token', '', r);
    }
    for (const h of r.fromHeaders) add('header', h.name.toLowerCase(), h.prefix, r);
    for (const p of r.fromParams) add('param', p, '', r);
    for (const c of r.fromCookies) add('cookie', c, '', r);
  }
  const order = { header: 0, param: 1, cookie: 2 } as const;
  places.sort((a, b) => order[a.kind] - order[b.kind]);

  /** Every token present, and where, in Envoy's order (headers, then parameters, then cookies). */
  const findAll = (req: JwtRequestView): Array<{ token: string; place: Place }> => {
    const found: Array<{ token: string; place: Place }> = [];
    for (const place of places) {
      let token: string | undefined;
      if (place.kind === 'header') {
        const value = req.header(place.name);
        if (value === undefined) continue;
        if (place.prefix === '') token = value;
        else {
          const at = value.indexOf(place.prefix);
          if (at < 0) continue;
          token = JWT_CHARS.exec(value.slice(at + place.prefix.length))![0];
        }
      } else if (place.kind === 'param') {
        token = req.query(place.name);
      } else {
        token = cookie(req.header('cookie'), place.name);
      }
      if (token !== undefined) found.push({ token, place });
    }
    return found;
  };

  const result = (check: JwtCheck, place: Place): JwtResult => {
    if (!check.ok) return { kind: 'invalid', reason: check.reason };
    const { rule, payload } = check;
    const setHeaders: Array<readonly [string, string]> = [];
    if (rule.outputPayloadToHeader !== undefined) setHeaders.push([rule.outputPayloadToHeader.toLowerCase(), check.payloadSegment]);
    for (const { header, claim } of rule.outputClaimToHeaders) {
      const v = claimValue(payload, claim);
      if (v !== undefined) setHeaders.push([header.toLowerCase(), v]);
    }
    const sub = typeof payload['sub'] === 'string' ? payload['sub'] : '';
    return {
      kind: 'valid',
      principal: `${rule.issuer}/${sub}`,
      claims: payload,
      rule,
      removeHeader: !rule.forwardOriginalToken && place.kind === 'header' ? place.name : undefined,
      setHeaders,
    };
  };

  /** Every token present must verify (Envoy: a good token does not carry a bad one); the first one decides the identity. */
  const combine = (checks: readonly JwtCheck[], found: ReadonlyArray<{ place: Place }>): JwtResult => {
    const failed = checks.find((c) => !c.ok);
    return failed !== undefined ? result(failed, found[0]!.place) : result(checks[0]!, found[0]!.place);
  };

  return {
    enabled: true,
    outputHeaders,
    authenticate(req) {
      const found = findAll(req);
      if (found.length === 0) return NONE;
      const checks = found.map((f) => verifier.verify(f.token, f.place.rules));
      return checks.some((c) => c instanceof Promise) ? Promise.all(checks).then((c) => combine(c, found)) : combine(checks as JwtCheck[], found);
    },
  };
}
