/**
 * Istio RequestAuthentication as the model holds it: the JWT rules in force for this proxy's
 * workload (inbound), merged from every policy that applies, in precedence order. Istio turns each
 * rule into one Envoy jwt_authn provider and requires "any provider, or no token at all"
 * (`requires_any` with `allow_missing`): a request without a token passes with no principal; a
 * request with a token must carry one that a rule verifies.
 */

/** Where a token is looked for in a header: the value after `prefix`. */
export interface JwtHeaderLocation {
  readonly name: string;
  /** Empty: the whole header value. */
  readonly prefix: string;
}

/**
 * Where the rule's public keys come from: inline, a jwksUri, or (neither given) the `jwks_uri`
 * of the issuer's OpenID discovery document, as istiod finds it.
 */
export type JwksSource =
  | { readonly kind: 'inline'; readonly json: string }
  | { readonly kind: 'remote'; readonly uri: string }
  | { readonly kind: 'discovery'; readonly documentUri: string };

export interface JwtClaimToHeader {
  readonly header: string;
  readonly claim: string;
}

export interface JwtRule {
  /** `namespace.name` of the RequestAuthentication it came from. */
  readonly policy: string;
  /** Must equal the token's `iss`. */
  readonly issuer: string;
  /** Empty: any audience (no `aud` check). */
  readonly audiences: readonly string[];
  readonly jwks: JwksSource;
  /** JWKS fetch timeout (remote only). */
  readonly timeoutMs: number;
  /**
   * Token locations as configured. All three empty: Envoy's defaults apply
   * (`Authorization: Bearer <token>`, then the `access_token` query parameter).
   */
  readonly fromHeaders: readonly JwtHeaderLocation[];
  readonly fromParams: readonly string[];
  readonly fromCookies: readonly string[];
  /** False (default): the token is removed from the request before it is forwarded. */
  readonly forwardOriginalToken: boolean;
  /** Header that receives the verified payload (base64url), if set. */
  readonly outputPayloadToHeader?: string;
  readonly outputClaimToHeaders: readonly JwtClaimToHeader[];
  /** Claims whose string value is split on spaces when matched (`scope`, `permission` always are). */
  readonly spaceDelimitedClaims: readonly string[];
}

export interface RequestAuthentication {
  /** Empty: no JWT is validated and no request is refused for its token. */
  readonly rules: readonly JwtRule[];
}

export const NO_REQUEST_AUTHENTICATION: RequestAuthentication = { rules: [] };

/** Istio's JWTRule.timeout default. */
export const DEFAULT_JWKS_TIMEOUT_MS = 5000;
