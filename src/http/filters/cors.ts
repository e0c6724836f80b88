/**
 * The CORS filter (Envoy envoy.filters.http.cors, as Istio configures it from corsPolicy):
 * - a preflight (OPTIONS with Origin and Access-Control-Request-Method) from an allowed origin
 *   is answered here: 200 with the allowed origin, credentials, methods, headers and max age;
 * - a preflight from another origin goes upstream (FORWARD) or gets a bare 200 (IGNORE);
 * - any other request with an allowed Origin gets allow-origin, allow-credentials and
 *   expose-headers added to its response, whoever produces it.
 */
import type { CompiledCors } from '../../compile/policies.js';
import type { DownstreamStream } from '../stream.js';

/** Returns false when the filter answered the request itself. */
export function corsFilter(stream: DownstreamStream, cors: CompiledCors): boolean {
  const origin = stream.headers.get('origin');
  if (origin === undefined || origin === '') return true;
  const allowed = cors.allowsOrigin(origin);
  if (stream.method === 'OPTIONS' && (stream.headers.get('access-control-request-method') ?? '') !== '') {
    if (!allowed) {
      if (cors.forwardNotMatchingPreflights) return true;
      stream.sendLocalReply(200, '', { details: 'cors_origin_not_allowed' });
      return false;
    }
    const headers: Array<[string, string]> = [['access-control-allow-origin', origin]];
    if (cors.allowCredentials) headers.push(['access-control-allow-credentials', 'true']);
    if (cors.allowMethods !== '') headers.push(['access-control-allow-methods', cors.allowMethods]);
    if (cors.allowHeaders !== '') headers.push(['access-control-allow-headers', cors.allowHeaders]);
    if (cors.maxAge !== '') headers.push(['access-control-max-age', cors.maxAge]);
    stream.sendLocalReply(200, '', { details: 'cors_response', headers });
    return false;
  }
  if (allowed) {
    stream.onResponseHeaders = (h) => {
      h.set('access-control-allow-origin', origin);
      if (cors.allowCredentials) h.set('access-control-allow-credentials', 'true');
      if (cors.exposeHeaders !== '') h.set('access-control-expose-headers', cors.exposeHeaders);
    };
  }
  return true;
}
