/**
 * The RequestAuthentication (security.istio.io) schema and Istio's validation of it
 * (IST:pkg/config/validation validateJwtRule). request-authn-policy.ts resolves which policies
 * apply to this proxy and merges their rules into the model.
 *
 * Refusals that would otherwise fail open or silently differ: targetRef(s) (sidecars use
 * selector). A rule with neither `jwks` nor `jwksUri` finds its key set as istiod does, through
 * `<issuer>/.well-known/openid-configuration`, so its issuer must be an http(s) URL.
 */
import { parseJwks } from '../../core/jwks.js';
import { array, boolean, duration, object, string, type Infer, type Path, type Schema } from '../schema.js';
import { workloadSelectorSchema } from './common.js';

/** RFC 7230 token, as Istio ValidateStrictHTTPHeaderName checks an output header name. */
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Istio ParseJwksURI: an absolute http or https URL with a host. */
/** Where OpenID discovery finds an issuer's configuration (its `jwks_uri`). */
export function openIdConfigurationUri(issuer: string): string {
  return `${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
}

export function jwksUriError(v: string): string | undefined {
  let url: URL;
  try {
    url = new URL(v);
  } catch {
    return `invalid jwksUri ${JSON.stringify(v)}: not an absolute URL`;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return `invalid jwksUri ${JSON.stringify(v)}: the scheme must be http or https`;
  if (url.hostname === '') return `invalid jwksUri ${JSON.stringify(v)}: no host`;
  return undefined;
}

/** A non-empty string; `what` names it in Istio's message ("audience must be non-empty string"). */
function nonEmpty(what: string): Schema<string> {
  return {
    expected: 'a string',
    parse(v, path, issues) {
      const s = string().parse(v, path, issues);
      if (s === '') {
        issues.error(path, `${what} must be non-empty string`);
        return undefined;
      }
      return s;
    },
  };
}

const headerLocationSchema = object(
  {
    name: nonEmpty('location header name'),
    prefix: string(),
  },
  { required: ['name'] },
);

const claimToHeaderSchema = object(
  {
    header: nonEmpty('outputClaimToHeaders header'),
    claim: nonEmpty('outputClaimToHeaders claim'),
  },
  {
    required: ['header', 'claim'],
    check(c, path, issues) {
      if (!HEADER_NAME.test(c.header!)) issues.error([...path, 'header'], `invalid header name ${JSON.stringify(c.header)}`);
    },
  },
);

export const jwtRuleSchema = object(
  {
    issuer: nonEmpty('issuer'),
    audiences: array(nonEmpty('audience')),
    jwksUri: string(),
    jwks: string(),
    fromHeaders: array(headerLocationSchema),
    fromParams: array(nonEmpty('location query')),
    fromCookies: array(nonEmpty('cookie name')),
    outputPayloadToHeader: string(),
    forwardOriginalToken: boolean(),
    outputClaimToHeaders: array(claimToHeaderSchema),
    timeout: duration({ minMs: 1 }),
    spaceDelimitedClaims: array(nonEmpty('space-delimited claim')),
  },
  {
    required: ['issuer'],
    check(r, path, issues) {
      const jwks = r.jwks ?? '';
      const uri = r.jwksUri ?? '';
      if (uri !== '') {
        const problem = jwksUriError(uri);
        if (problem !== undefined) issues.error([...path, 'jwksUri'], problem);
      }
      if (jwks !== '') {
        const parsed = parseJwks(jwks);
        if (!parsed.ok) issues.error([...path, 'jwks'], `jwks parse error: ${parsed.reason}`);
        else for (const s of parsed.jwks.skipped) issues.warn([...path, 'jwks'], `${s}; the key is ignored`);
        if (uri !== '') issues.warn([...path, 'jwksUri'], 'both jwks and jwksUri are set: the inline jwks is used and jwksUri is ignored');
      }
      if (jwks === '' && uri === '' && r.issuer !== undefined && r.issuer !== '') {
        // OpenID discovery: the issuer must be a URL its configuration can be fetched from.
        if (jwksUriError(openIdConfigurationUri(r.issuer)) !== undefined) {
          issues.error([...path, 'issuer'], `without jwks or jwksUri the issuer must be an http(s) URL to discover the key set from (${JSON.stringify(r.issuer)} is not)`);
        }
      }
      const out = r.outputPayloadToHeader;
      if (out !== undefined && out !== '' && !HEADER_NAME.test(out)) issues.error([...path, 'outputPayloadToHeader'], `invalid header name ${JSON.stringify(out)}`);
    },
  },
);
export type JwtRuleSpec = Infer<typeof jwtRuleSchema>;

const notSupportedTarget = (): Schema<unknown> => ({
  expected: 'a value',
  parse(_v: unknown, path: Path, issues) {
    issues.error(path, 'not supported (sidecars use selector)');
    return undefined;
  },
});

export const requestAuthenticationSpecSchema = object({
  selector: workloadSelectorSchema,
  targetRef: notSupportedTarget(),
  targetRefs: notSupportedTarget(),
  jwtRules: array(jwtRuleSchema),
});
export type RequestAuthenticationSpec = Infer<typeof requestAuthenticationSpecSchema>;
