/**
 * The JwtVerifier the compiled RequestAuthentication calls: picks the rule by the token's issuer,
 * checks the claims, then verifies the signature with the rule's keys from the JwksCache —
 * synchronously when the keys are cached (the usual case after `prefetch`), after one fetch when
 * they are not. A failed fetch fails the token ("Jwks remote fetch is failed"): deny, never allow.
 */
import type { JwtCheck, JwtVerifier } from '../compile/request-authentication.js';
import type { JwkSet } from '../core/jwks.js';
import type { JwtRule } from '../model/index.js';
import type { JwksCache } from './jwks-cache.js';
import { checkClaims, decodeJwt, JWT_REASONS, verifySignature, type DecodedJwt } from './jwt.js';

export function jwtVerifier(cache: JwksCache, nowSeconds: () => number = () => Math.floor(Date.now() / 1000)): JwtVerifier {
  const finish = (jwt: DecodedJwt, rule: JwtRule, keys: JwkSet): JwtCheck => {
    const reason = verifySignature(jwt, keys);
    return reason === undefined ? { ok: true, rule, payload: jwt.payload, payloadSegment: jwt.payloadSegment } : { ok: false, reason };
  };
  return {
    verify(token, rules) {
      try {
        const decoded = decodeJwt(token);
        if (!decoded.ok) return decoded;
        const jwt = decoded.jwt;
        const rule = rules.find((r) => r.issuer === jwt.iss);
        if (rule === undefined) return { ok: false, reason: JWT_REASONS.unknownIssuer };
        const claims = checkClaims(jwt, rule, nowSeconds());
        if (claims !== undefined) return { ok: false, reason: claims };
        const keys = cache.keysFor(rule);
        if (keys !== undefined) return finish(jwt, rule, keys);
        return cache.load(rule).then(
          (loaded): JwtCheck =>
            loaded.ok ? finish(jwt, rule, loaded.jwks) : { ok: false, reason: rule.jwks.kind !== 'inline' ? JWT_REASONS.fetchFailed : JWT_REASONS.noValidKeys },
          (): JwtCheck => ({ ok: false, reason: JWT_REASONS.fetchFailed }),
        );
      } catch {
        // Contract: never throw. Anything unexpected refuses the token.
        return { ok: false, reason: JWT_REASONS.verificationFails };
      }
    },
  };
}
