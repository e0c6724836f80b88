/**
 * JWT (compact JWS) verification as Envoy's jwt_authn does it (jwt_verify_lib: jwt.cc, verify.cc,
 * check_audience.cc; jwt_authn authenticator.cc), pure and synchronous: no I/O, the keys are given.
 *
 * Order, as Envoy's authenticator runs it (the first failure is the reason):
 *   parse → issuer → time (`nbf`, `exp`, 60 s clock skew) → audiences → key match → signature.
 * Reasons are jwt_verify_lib's status strings, so a 401 body reads as Envoy's would.
 *
 * Algorithms: RS256/384/512, PS256/384/512, ES256/384/512, EdDSA (Ed25519). `none` is refused at
 * parse ("Jwt header [alg] is not supported"); HS256/384/512 parse but never find a key (symmetric
 * keys are not loaded, see core/jwks.ts), so they fail with Envoy's key-mismatch reason.
 */
import { constants, verify as cryptoVerify } from 'node:crypto';
import type { Jwk, JwkSet } from '../core/jwks.js';

/** jwt_verify_lib kClockSkewInSecond. */
export const CLOCK_SKEW_SECONDS = 60;

export const JWT_REASONS = {
  missing: 'Jwt is missing',
  badFormat: 'Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections',
  headerBadBase64: 'Jwt header is an invalid Base64url encoded',
  headerBadJson: 'Jwt header is an invalid JSON',
  headerBadAlg: 'Jwt header [alg] field is required and must be a string',
  headerAlgNotSupported: 'Jwt header [alg] is not supported',
  headerBadKid: 'Jwt header [kid] field is not a string',
  payloadBadBase64: 'Jwt payload is an invalid Base64url encoded',
  payloadBadJson: 'Jwt payload is an invalid JSON',
  signatureBadBase64: 'Jwt signature is an invalid Base64url encoded',
  unknownIssuer: 'Jwt issuer is not configured',
  notYetValid: 'Jwt not yet valid',
  expired: 'Jwt is expired',
  audienceNotAllowed: 'Audiences in Jwt are not allowed',
  verificationFails: 'Jwt verification fails',
  kidAlgMismatch: "Jwks doesn't have key to match kid or alg from Jwt",
  noValidKeys: "Jwks doesn't have any valid public key",
  fetchFailed: 'Jwks remote fetch is failed',
} as const;

export type JwtVerdict =
  | { readonly ok: true; readonly payload: Readonly<Record<string, unknown>> }
  | { readonly ok: false; readonly reason: string };

/** A parsed, not yet verified token. */
export interface DecodedJwt {
  readonly alg: string;
  readonly kid: string | undefined;
  /** Empty when the token has no `iss`. */
  readonly iss: string;
  readonly sub: string | undefined;
  readonly audiences: readonly string[];
  /** Seconds since the epoch; 0 when absent. */
  readonly exp: number;
  readonly nbf: number;
  readonly payload: Readonly<Record<string, unknown>>;
  /** The payload segment as sent (base64url), for outputPayloadToHeader. */
  readonly payloadSegment: string;
  readonly signingInput: Buffer;
  readonly signature: Buffer;
}

/** What a token is checked against (a JWT rule). */
export interface JwtExpectation {
  readonly issuer: string;
  /** Empty: any audience. */
  readonly audiences: readonly string[];
}

const ALGS = new Set(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'HS256', 'HS384', 'HS512', 'EdDSA']);
const BASE64URL = /^[A-Za-z0-9_-]*$/;

// === parsing ===

function base64url(segment: string): Buffer | undefined {
  return BASE64URL.test(segment) && segment.length % 4 !== 1 ? Buffer.from(segment, 'base64url') : undefined;
}

function jsonObject(bytes: Buffer): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(bytes.toString('utf8'));
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** A non-negative integer claim (jwt_verify_lib truncates a fractional one); a reason when malformed. */
function timeClaim(payload: Record<string, unknown>, name: string): number | string {
  const v = payload[name];
  if (v === undefined) return 0;
  if (typeof v !== 'number' || !Number.isFinite(v)) return `Jwt payload [${name}] field is not an integer`;
  if (v < 0) return `Jwt payload [${name}] field is not a positive 64 bit integer`;
  return Math.trunc(v);
}

export function decodeJwt(token: string): { readonly ok: true; readonly jwt: DecodedJwt } | { readonly ok: false; readonly reason: string } {
  const fail = (reason: string) => ({ ok: false as const, reason });
  const parts = token.split('.');
  if (parts.length !== 3 || parts[2] === '') return fail(JWT_REASONS.badFormat);
  const [h, p, s] = parts as [string, string, string];
  const headerBytes = base64url(h);
  if (headerBytes === undefined) return fail(JWT_REASONS.headerBadBase64);
  const header = jsonObject(headerBytes);
  if (header === undefined) return fail(JWT_REASONS.headerBadJson);
  const alg = header['alg'];
  if (typeof alg !== 'string') return fail(JWT_REASONS.headerBadAlg);
  if (!ALGS.has(alg)) return fail(JWT_REASONS.headerAlgNotSupported);
  const kid = header['kid'];
  if (kid !== undefined && typeof kid !== 'string') return fail(JWT_REASONS.headerBadKid);

  const payloadBytes = base64url(p);
  if (payloadBytes === undefined) return fail(JWT_REASONS.payloadBadBase64);
  const payload = jsonObject(payloadBytes);
  if (payload === undefined) return fail(JWT_REASONS.payloadBadJson);
  const iss = payload['iss'];
  if (iss !== undefined && typeof iss !== 'string') return fail('Jwt payload [iss] field is not a string');
  const sub = payload['sub'];
  if (sub !== undefined && typeof sub !== 'string') return fail('Jwt payload [sub] field is not a string');
  const aud = payload['aud'];
  let audiences: string[];
  if (aud === undefined) audiences = [];
  else if (typeof aud === 'string') audiences = [aud];
  else if (Array.isArray(aud) && aud.every((a) => typeof a === 'string')) audiences = aud as string[];
  else return fail('Jwt payload [aud] field is not a string or string list');
  const times: Record<'exp' | 'nbf' | 'iat', number> = { exp: 0, nbf: 0, iat: 0 };
  for (const name of ['iat', 'nbf', 'exp'] as const) {
    const t = timeClaim(payload, name);
    if (typeof t === 'string') return fail(t);
    times[name] = t;
  }

  const signature = base64url(s);
  if (signature === undefined) return fail(JWT_REASONS.signatureBadBase64);
  return {
    ok: true,
    jwt: {
      alg,
      kid: kid as string | undefined,
      iss: (iss as string | undefined) ?? '',
      sub: sub as string | undefined,
      audiences,
      exp: times.exp,
      nbf: times.nbf,
      payload,
      payloadSegment: p,
      signingInput: Buffer.from(`${h}.${p}`, 'ascii'),
      signature,
    },
  };
}

// === claims ===

/** Envoy CheckAudience: `http://` / `https://` and one trailing `/` are ignored on both sides. */
function sanitizeAudience(aud: string): string {
  let a = aud.startsWith('http://') ? aud.slice(7) : aud.startsWith('https://') ? aud.slice(8) : aud;
  if (a.endsWith('/')) a = a.slice(0, -1);
  return a;
}

/** Issuer, time and audience checks, in Envoy's order; undefined when they pass. */
export function checkClaims(jwt: DecodedJwt, expected: JwtExpectation, nowSeconds: number, skewSeconds = CLOCK_SKEW_SECONDS): string | undefined {
  if (jwt.iss !== expected.issuer) return JWT_REASONS.unknownIssuer;
  if (nowSeconds + skewSeconds < jwt.nbf) return JWT_REASONS.notYetValid;
  if (jwt.exp !== 0 && nowSeconds > jwt.exp + skewSeconds) return JWT_REASONS.expired;
  if (expected.audiences.length > 0) {
    const allowed = new Set(expected.audiences.map(sanitizeAudience));
    if (!jwt.audiences.some((a) => allowed.has(sanitizeAudience(a)))) return JWT_REASONS.audienceNotAllowed;
  }
  return undefined;
}

// === signature ===

const HASH: Readonly<Record<string, string>> = { '256': 'sha256', '384': 'sha384', '512': 'sha512' };
const EC_CURVE: Readonly<Record<string, string>> = { ES256: 'P-256', ES384: 'P-384', ES512: 'P-521' };

/** Whether a key of this type and curve can verify `alg` (jwt_verify_lib's per-kty checks). */
function keyFits(key: Jwk, alg: string): boolean {
  if (alg.startsWith('RS') || alg.startsWith('PS')) return key.kty === 'RSA';
  if (alg.startsWith('ES')) return key.kty === 'EC' && key.crv === EC_CURVE[alg];
  if (alg === 'EdDSA') return key.kty === 'OKP' && key.crv === 'Ed25519';
  return false; // HS*: symmetric keys are never loaded.
}

function signatureValid(jwt: DecodedJwt, key: Jwk): boolean {
  const { alg, signingInput: data, signature } = jwt;
  try {
    if (alg === 'EdDSA') return cryptoVerify(null, data, key.key, signature);
    const hash = HASH[alg.slice(2)]!;
    if (alg.startsWith('RS')) return cryptoVerify(hash, data, { key: key.key, padding: constants.RSA_PKCS1_PADDING }, signature);
    if (alg.startsWith('PS')) {
      return cryptoVerify(hash, data, { key: key.key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST }, signature);
    }
    return cryptoVerify(hash, data, { key: key.key, dsaEncoding: 'ieee-p1363' }, signature);
  } catch {
    return false;
  }
}

/**
 * jwt_verify_lib verifyJwt: every key whose `kid` (when both have one) and `alg` (when the key
 * has one) and type fit is tried; any valid signature passes.
 */
export function verifySignature(jwt: DecodedJwt, jwks: JwkSet): string | undefined {
  let matched = false;
  for (const key of jwks.keys) {
    if (jwt.kid !== undefined && key.kid !== undefined && key.kid !== jwt.kid) continue;
    if (key.alg !== undefined && key.alg !== jwt.alg) continue;
    if (!keyFits(key, jwt.alg)) continue;
    matched = true;
    if (signatureValid(jwt, key)) return undefined;
  }
  return matched ? JWT_REASONS.verificationFails : JWT_REASONS.kidAlgMismatch;
}

/** Parse (when given the compact form), then claims, then signature. */
export function verifyJwt(token: string | DecodedJwt, expected: JwtExpectation, jwks: JwkSet, nowSeconds = Math.floor(Date.now() / 1000)): JwtVerdict {
  let jwt: DecodedJwt;
  if (typeof token === 'string') {
    const d = decodeJwt(token);
    if (!d.ok) return d;
    jwt = d.jwt;
  } else {
    jwt = token;
  }
  const reason = checkClaims(jwt, expected, nowSeconds) ?? verifySignature(jwt, jwks);
  return reason === undefined ? { ok: true, payload: jwt.payload } : { ok: false, reason };
}
