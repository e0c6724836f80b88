/**
 * JSON Web Key Sets (RFC 7517) as jwt_authn reads them: a JSON object with a `keys` array, each
 * key imported with node:crypto. Shared by config validation (an inline `jwks` must parse) and the
 * security layer (keys a token is verified against).
 *
 * Only asymmetric keys are kept: RSA (RS*, PS*), EC (ES256/384/512 on P-256/384/521) and OKP
 * Ed25519 (EdDSA). Symmetric `oct` keys are skipped, so HS* tokens never find a key (skiff does not
 * verify HMAC tokens; a JWKS fetched from an issuer holds no secrets anyway). A key whose
 * `use` is not `sig` is skipped too.
 *
 * Contract: `parseJwks` never throws.
 */
import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';

export type JwkKty = 'RSA' | 'EC' | 'OKP';

/** One usable public key. Invariant: `key` is a public KeyObject of type `kty`. */
export interface Jwk {
  readonly kty: JwkKty;
  /** Undefined when the JWK has no `kid`: then it matches a token with any (or no) kid. */
  readonly kid: string | undefined;
  /** Undefined when the JWK has no `alg`: then any algorithm of its type may use it. */
  readonly alg: string | undefined;
  /** EC and OKP curve (`P-256`, `Ed25519`, …). */
  readonly crv: string | undefined;
  readonly key: KeyObject;
}

export interface JwkSet {
  readonly keys: readonly Jwk[];
  /** Keys present but not usable by skiff (e.g. `oct`), with why: for load-time warnings. */
  readonly skipped: readonly string[];
}

export type JwksParse = { readonly ok: true; readonly jwks: JwkSet } | { readonly ok: false; readonly reason: string };

const CURVES: Readonly<Record<string, readonly string[]>> = { EC: ['P-256', 'P-384', 'P-521'], OKP: ['Ed25519'] };

function importKey(raw: Record<string, unknown>, index: number): Jwk | string {
  const kty = raw['kty'];
  const kid = raw['kid'];
  const alg = raw['alg'];
  const crv = raw['crv'];
  if (typeof kty !== 'string') return `key ${index}: [kty] is missing or not a string`;
  if (kid !== undefined && typeof kid !== 'string') return `key ${index}: [kid] is not a string`;
  if (alg !== undefined && typeof alg !== 'string') return `key ${index}: [alg] is not a string`;
  if (kty === 'oct') return `key ${index}: symmetric (oct) keys are not used; HS* tokens are refused`;
  if (kty !== 'RSA' && kty !== 'EC' && kty !== 'OKP') return `key ${index}: [kty] ${JSON.stringify(kty)} is not supported`;
  if (raw['use'] !== undefined && raw['use'] !== 'sig') return `key ${index}: [use] is not "sig"`;
  if (kty !== 'RSA' && (typeof crv !== 'string' || !CURVES[kty]!.includes(crv))) {
    return `key ${index}: [crv] must be one of ${CURVES[kty]!.join(', ')} for an ${kty} key`;
  }
  if (raw['d'] !== undefined) return `key ${index}: a private key must not be published in a JWKS`;
  let key: KeyObject;
  try {
    key = createPublicKey({ key: raw as JsonWebKey, format: 'jwk' });
  } catch (e) {
    return `key ${index}: not a valid ${kty} key (${e instanceof Error ? e.message : String(e)})`;
  }
  return { kty, kid: kid as string | undefined, alg: alg as string | undefined, crv: crv as string | undefined, key };
}

/** Parses a JWKS document. An error when it is not JSON, has no `keys` list, or no usable key. */
export function parseJwks(text: string): JwksParse {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'Jwks is an invalid JSON' };
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) return { ok: false, reason: 'Jwks is an invalid JSON' };
  const list = (doc as Record<string, unknown>)['keys'];
  if (list === undefined) return { ok: false, reason: 'Jwks does not have [keys] field' };
  if (!Array.isArray(list)) return { ok: false, reason: '[keys] in Jwks is not an array' };
  const keys: Jwk[] = [];
  const skipped: string[] = [];
  list.forEach((raw, i) => {
    const k = raw !== null && typeof raw === 'object' && !Array.isArray(raw) ? importKey(raw as Record<string, unknown>, i) : `key ${i}: not an object`;
    if (typeof k === 'string') skipped.push(k);
    else keys.push(k);
  });
  if (keys.length === 0) {
    return { ok: false, reason: `Jwks doesn't have any valid public key${skipped.length > 0 ? ` (${skipped.join('; ')})` : ''}` };
  }
  return { ok: true, jwks: { keys, skipped } };
}
