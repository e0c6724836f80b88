/**
 * JWT verification as Envoy's jwt_authn does it (jwt_verify_lib): parse, issuer, time with 60 s
 * skew, audiences, key selection by kid/alg, signatures (RS/PS/ES/EdDSA), refusals of `none` and
 * HS*, and JWKS parsing. Keys are generated here and tokens signed with node:crypto.
 */
import { generateKeyPairSync, sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseJwks, type JwkSet } from '../../src/core/jwks.js';
import { decodeJwt, JWT_REASONS, verifyJwt } from '../../src/security/jwt.js';
import { ecKey, hmacJwt, jwksJson, noneJwt, noneJwtWithSig, now, rsaKey, signJwt, type TestKey } from '../helpers/jwt.js';

const ISS = 'https://issuer.example.com';
const rsa = rsaKey('rsa-1');
const ec = ecKey('ec-1');
const other = rsaKey('rsa-2');

function keys(...k: TestKey[]): JwkSet {
  const p = parseJwks(jwksJson(...k));
  if (!p.ok) throw new Error(p.reason);
  return p.jwks;
}

const claims = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({ iss: ISS, sub: 'alice', exp: now() + 600, ...extra });
const verify = (token: string, o: { audiences?: string[]; jwks?: JwkSet; at?: number } = {}) =>
  verifyJwt(token, { issuer: ISS, audiences: o.audiences ?? [] }, o.jwks ?? keys(rsa, ec), o.at);
const reason = (token: string, o: Parameters<typeof verify>[1] = {}): string | undefined => {
  const v = verify(token, o);
  return v.ok ? undefined : v.reason;
};

describe('jwt: signatures', () => {
  it('accepts RS256 and ES256 tokens signed by a key of the set, returning the payload', () => {
    const v = verify(signJwt(rsa, claims({ scope: 'read write' })));
    expect(v).toEqual({ ok: true, payload: expect.objectContaining({ iss: ISS, sub: 'alice', scope: 'read write' }) });
    expect(verify(signJwt(ec, claims())).ok).toBe(true);
  });

  it('accepts RS384/RS512/PS256/ES384 and EdDSA', () => {
    const rs384 = rsaKey('k384', 'RS384');
    const ps256 = rsaKey('kps', 'PS256');
    const es384 = ecKey('e384', 'P-384');
    const set = keys(rs384, ps256, es384);
    expect(verify(signJwt(rs384, claims()), { jwks: set }).ok).toBe(true);
    // The key's alg (RS384) must be the token's.
    expect(verify(signJwt(rs384, claims(), { alg: 'RS512' }), { jwks: set })).toEqual({ ok: false, reason: JWT_REASONS.kidAlgMismatch });
    expect(verify(signJwt(ps256, claims()), { jwks: set }).ok).toBe(true);
    expect(verify(signJwt(es384, claims()), { jwks: set }).ok).toBe(true);
    const rsNoAlg = rsaKey('plain');
    expect(verify(signJwt(rsNoAlg, claims(), { alg: 'RS512' }), { jwks: keys(rsNoAlg) }).ok).toBe(true);
    expect(verify(signJwt(rsNoAlg, claims(), { alg: 'PS256' }), { jwks: keys(rsNoAlg) }).ok).toBe(true);

    const ed = generateKeyPairSync('ed25519');
    const edKey: TestKey = { alg: 'EdDSA', kid: 'ed', privateKey: ed.privateKey, jwk: { ...ed.publicKey.export({ format: 'jwk' }), kid: 'ed' } };
    const input = `${Buffer.from(JSON.stringify({ alg: 'EdDSA', kid: 'ed' })).toString('base64url')}.${Buffer.from(JSON.stringify(claims())).toString('base64url')}`;
    const token = `${input}.${sign(null, Buffer.from(input), ed.privateKey).toString('base64url')}`;
    expect(verify(token, { jwks: keys(edKey) }).ok).toBe(true);
  });

  it('a bad signature fails verification', () => {
    const good = signJwt(rsa, claims());
    const forged = signJwt(other, claims(), { kid: 'rsa-1' });
    expect(reason(forged)).toBe(JWT_REASONS.verificationFails);
    // A tampered payload under the original signature.
    const [h, , s] = good.split('.');
    const tampered = `${h}.${Buffer.from(JSON.stringify(claims({ sub: 'mallory' }))).toString('base64url')}.${s}`;
    expect(reason(tampered)).toBe(JWT_REASONS.verificationFails);
  });

  it('an unknown kid finds no key; without a kid every key is tried', () => {
    expect(reason(signJwt(other, claims()))).toBe(JWT_REASONS.kidAlgMismatch);
    expect(verify(signJwt(rsa, claims(), { kid: false }), { jwks: keys(other, ec, rsa) }).ok).toBe(true);
    expect(reason(signJwt(other, claims(), { kid: false }))).toBe(JWT_REASONS.verificationFails);
    // A key without kid matches a token with any kid.
    const anon = rsaKey(null);
    expect(verify(signJwt(anon, claims(), { kid: 'whatever' }), { jwks: keys(anon) }).ok).toBe(true);
  });

  it('the algorithm must fit the key: ES256 header against RSA keys only finds none', () => {
    expect(reason(signJwt(rsa, claims(), { alg: 'ES256', kid: false }), { jwks: keys(rsa) })).toBe(JWT_REASONS.kidAlgMismatch);
  });

  it('refuses alg none, with or without a signature', () => {
    expect(reason(noneJwt(claims()))).toBe(JWT_REASONS.badFormat);
    expect(reason(noneJwtWithSig(claims()))).toBe(JWT_REASONS.headerAlgNotSupported);
  });

  it('refuses HS256: symmetric keys are never loaded, even when the JWKS has one', () => {
    const secret = 'c2VjcmV0';
    const withOct = parseJwks(JSON.stringify({ keys: [{ kty: 'oct', k: secret, kid: 'h' }, rsa.jwk] }));
    expect(withOct.ok && withOct.jwks.skipped).toEqual([expect.stringContaining('symmetric (oct) keys are not used')]);
    expect(reason(hmacJwt('secret', claims()), { jwks: withOct.ok ? withOct.jwks : undefined })).toBe(JWT_REASONS.kidAlgMismatch);
    // Nor can an RSA public key be used as an HMAC secret (algorithm confusion).
    expect(reason(hmacJwt(JSON.stringify(rsa.jwk), claims()))).toBe(JWT_REASONS.kidAlgMismatch);
  });
});

describe('jwt: claims', () => {
  it('exp: expired past the 60 s clock skew, accepted within it; absent exp never expires', () => {
    const t = now();
    expect(reason(signJwt(rsa, claims({ exp: t - 61 })), { at: t })).toBe('Jwt is expired');
    expect(verify(signJwt(rsa, claims({ exp: t - 60 })), { at: t }).ok).toBe(true);
    const { exp: _exp, ...noExp } = claims();
    expect(verify(signJwt(rsa, noExp)).ok).toBe(true);
  });

  it('nbf: not yet valid beyond the skew', () => {
    const t = now();
    expect(reason(signJwt(rsa, claims({ nbf: t + 61 })), { at: t })).toBe('Jwt not yet valid');
    expect(verify(signJwt(rsa, claims({ nbf: t + 60 })), { at: t }).ok).toBe(true);
  });

  it('iss must equal the issuer', () => {
    expect(reason(signJwt(rsa, claims({ iss: 'https://evil.example.com' })))).toBe('Jwt issuer is not configured');
    const { iss: _iss, ...noIss } = claims();
    expect(reason(signJwt(rsa, noIss))).toBe('Jwt issuer is not configured');
  });

  it('aud must intersect the audiences when some are configured (scheme and trailing slash ignored)', () => {
    const aud = { audiences: ['api.example.com', 'other'] };
    expect(verify(signJwt(rsa, claims({ aud: 'api.example.com' })), aud).ok).toBe(true);
    expect(verify(signJwt(rsa, claims({ aud: ['x', 'https://api.example.com/'] })), aud).ok).toBe(true);
    expect(reason(signJwt(rsa, claims({ aud: 'nope' })), aud)).toBe('Audiences in Jwt are not allowed');
    expect(reason(signJwt(rsa, claims()), aud)).toBe('Audiences in Jwt are not allowed');
    expect(verify(signJwt(rsa, claims({ aud: 'anything' }))).ok).toBe(true);
  });

  it('checks run in Envoy order: issuer, then time, then audience, then signature', () => {
    const bad = signJwt(other, claims({ iss: 'x', exp: 1, aud: 'nope' }), { kid: 'rsa-1' });
    expect(reason(bad, { audiences: ['a'] })).toBe('Jwt issuer is not configured');
    expect(reason(signJwt(other, claims({ exp: 1, aud: 'nope' }), { kid: 'rsa-1' }), { audiences: ['a'] })).toBe('Jwt is expired');
    expect(reason(signJwt(other, claims({ aud: 'nope' }), { kid: 'rsa-1' }), { audiences: ['a'] })).toBe('Audiences in Jwt are not allowed');
  });
});

describe('jwt: malformed tokens', () => {
  it.each([
    ['abc', JWT_REASONS.badFormat],
    ['a.b.c.d', JWT_REASONS.badFormat],
    ['!!.e30.AAAA', JWT_REASONS.headerBadBase64],
    [`${Buffer.from('nope').toString('base64url')}.e30.AAAA`, JWT_REASONS.headerBadJson],
    [`${Buffer.from('{"typ":"JWT"}').toString('base64url')}.e30.AAAA`, JWT_REASONS.headerBadAlg],
    [`${Buffer.from('{"alg":"RS256","kid":7}').toString('base64url')}.e30.AAAA`, JWT_REASONS.headerBadKid],
    [`${Buffer.from('{"alg":"RS256"}').toString('base64url')}.%%.AAAA`, JWT_REASONS.payloadBadBase64],
    [`${Buffer.from('{"alg":"RS256"}').toString('base64url')}.${Buffer.from('[1]').toString('base64url')}.AAAA`, JWT_REASONS.payloadBadJson],
    [`${Buffer.from('{"alg":"RS256"}').toString('base64url')}.${Buffer.from('{"exp":"soon"}').toString('base64url')}.AAAA`, 'Jwt payload [exp] field is not an integer'],
    [`${Buffer.from('{"alg":"RS256"}').toString('base64url')}.${Buffer.from('{"aud":[1]}').toString('base64url')}.AAAA`, 'Jwt payload [aud] field is not a string or string list'],
    [`${Buffer.from('{"alg":"RS256"}').toString('base64url')}.e30.A+/=`, JWT_REASONS.signatureBadBase64],
  ])('%s → %s', (token, why) => {
    expect(decodeJwt(token)).toEqual({ ok: false, reason: why });
  });
});

describe('jwks parsing', () => {
  it('keeps RSA, EC and OKP public keys; refuses what has no usable key', () => {
    const p = parseJwks(jwksJson(rsa, ec));
    expect(p.ok && p.jwks.keys.map((k) => [k.kty, k.kid])).toEqual([['RSA', 'rsa-1'], ['EC', 'ec-1']]);
    expect(parseJwks('nope')).toEqual({ ok: false, reason: 'Jwks is an invalid JSON' });
    expect(parseJwks('{}')).toEqual({ ok: false, reason: 'Jwks does not have [keys] field' });
    expect(parseJwks('{"keys":{}}')).toEqual({ ok: false, reason: '[keys] in Jwks is not an array' });
    expect(parseJwks('{"keys":[]}')).toEqual({ ok: false, reason: "Jwks doesn't have any valid public key" });
    const broken = parseJwks('{"keys":[{"kty":"RSA","n":"AQAB"}]}');
    expect(broken.ok).toBe(false);
    const priv = parseJwks(JSON.stringify({ keys: [rsa.privateKey.export({ format: 'jwk' })] }));
    expect(!priv.ok && priv.reason).toContain('a private key must not be published');
  });
});
