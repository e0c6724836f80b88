/**
 * Inbound JWT authentication (Envoy's jwt_authn filter as Istio configures it from
 * RequestAuthentication): a request without a token passes with no request principal; a token
 * that fails verification gets `401` with the reason as the body; a valid token gives the
 * request principal and claims that authorization reads, and the token header is removed unless
 * the rule forwards it.
 */
import type { CompiledRequestAuthentication, JwtRequestView, JwtResult } from '../compile/request-authentication.js';
import type { DownstreamStream } from './stream.js';

const NO_TOKEN: JwtResult = { kind: 'none' };
const AUDIENCE_NOT_ALLOWED = 'Audiences in Jwt are not allowed';

function requestView(stream: DownstreamStream): JwtRequestView {
  let query: URLSearchParams | undefined;
  return {
    header: (name) => stream.headers.getJoined(name),
    query: (name) => {
      const q = stream.path.indexOf('?');
      if (q < 0) return undefined;
      query ??= new URLSearchParams(stream.path.slice(q + 1));
      return query.get(name) ?? undefined;
    },
  };
}

/**
 * Runs `next` with the authentication result, now or once the token's keys are fetched. An
 * invalid token is answered here (401) and `next` is not called.
 */
export function authenticateRequest(stream: DownstreamStream, authn: CompiledRequestAuthentication, next: (result: JwtResult) => void): void {
  if (!authn.enabled) return next(NO_TOKEN);
  for (const name of authn.outputHeaders) stream.headers.remove(name);
  const checked = authn.authenticate(requestView(stream));
  const proceed = (result: JwtResult): void => {
    if (result.kind === 'invalid') {
      // Envoy: 403 for a token meant for someone else, 401 otherwise; the realm is the request URI.
      const status = result.reason === AUDIENCE_NOT_ALLOWED ? 403 : 401;
      const realm = `${stream.scheme}://${stream.authority}${stream.path}`.slice(0, 256);
      stream.sendLocalReply(status, result.reason, {
        details: `jwt_authn_access_denied{${result.reason.replace(/ /g, '_')}}`,
        headers: [['www-authenticate', `Bearer realm="${realm}", error="invalid_token"`]],
      });
      return;
    }
    if (result.kind === 'valid') {
      if (result.removeHeader !== undefined) stream.headers.remove(result.removeHeader);
      for (const [name, value] of result.setHeaders) stream.headers.set(name, value);
    }
    next(result);
  };
  if (!(checked instanceof Promise)) return proceed(checked);
  // The token's keys are being fetched: a client that leaves meanwhile is not served at all.
  let aborted = false;
  stream.onAbort = () => {
    aborted = true;
  };
  const settle = (result: JwtResult): void => {
    stream.onAbort = null;
    if (!aborted) proceed(result);
  };
  void checked.then(settle, () => settle({ kind: 'invalid', reason: 'Jwks remote fetch is failed' }));
}
