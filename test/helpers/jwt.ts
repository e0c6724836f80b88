/** Test tokens: real keys from node:crypto, compact JWS signed here (no JWT library). */
import { constants, createHmac, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';

export interface TestKey {
  readonly alg: string;
  readonly kid: string | undefined;
  readonly privateKey: KeyObject;
  /** The public JWK, with kid/alg when given. */
  readonly jwk: Record<string, unknown>;
}

/** An RSA key; `kid` null: the JWK has none. `alg`, when given, is also written into the JWK. */
export function rsaKey(kid: string | null = 'rsa-1', alg?: string): TestKey {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...publicKey.export({ format: 'jwk' }), ...(kid === null ? {} : { kid }), ...(alg === undefined ? {} : { alg }), use: 'sig' };
  return { alg: alg ?? 'RS256', kid: kid ?? undefined, privateKey, jwk };
}

export function ecKey(kid: string | null = 'ec-1', curve: 'P-256' | 'P-384' = 'P-256'): TestKey {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: curve });
  return { alg: curve === 'P-256' ? 'ES256' : 'ES384', kid: kid ?? undefined, privateKey, jwk: { ...publicKey.export({ format: 'jwk' }), ...(kid === null ? {} : { kid }) } };
}

export function jwksJson(...keys: TestKey[]): string {
  return JSON.stringify({ keys: keys.map((k) => k.jwk) });
}

const b64 = (v: unknown): string => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

export const now = (): number => Math.floor(Date.now() / 1000);

/** Signs `claims` with `key` (its alg unless `alg` overrides the header; `kid` false: no kid). */
export function signJwt(
  key: TestKey,
  claims: Record<string, unknown>,
  o: { alg?: string; kid?: string | false; header?: Record<string, unknown> } = {},
): string {
  const alg = o.alg ?? key.alg;
  const kid = o.kid === false ? undefined : (o.kid ?? key.kid);
  const header = { alg, typ: 'JWT', ...(kid === undefined ? {} : { kid }), ...o.header };
  const input = `${b64(header)}.${b64(claims)}`;
  const hash = `sha${alg.slice(2)}`;
  let sig: Buffer;
  if (alg.startsWith('ES')) sig = sign(hash, Buffer.from(input), { key: key.privateKey, dsaEncoding: 'ieee-p1363' });
  else if (alg.startsWith('PS')) sig = sign(hash, Buffer.from(input), { key: key.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST });
  else sig = sign(hash, Buffer.from(input), key.privateKey);
  return `${input}.${sig.toString('base64url')}`;
}

/** An HS256 token with `secret`. */
export function hmacJwt(secret: string, claims: Record<string, unknown>): string {
  const input = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

/** An unsigned `alg: none` token. */
export function noneJwt(claims: Record<string, unknown>): string {
  return `${b64({ alg: 'none' })}.${b64(claims)}.`;
}

export function noneJwtWithSig(claims: Record<string, unknown>): string {
  return `${b64({ alg: 'none' })}.${b64(claims)}.AAAA`;
}
