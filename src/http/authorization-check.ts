/**
 * Inbound HTTP authorization (Envoy's RBAC filter as Istio configures it from
 * AuthorizationPolicy): the request's attributes checked against the snapshot's compiled
 * policies before routing. A denied request gets Envoy's `403 RBAC: access denied`.
 */
import type { AuthzAttributes, CompiledAuthorization } from '../compile/authorization.js';
import type { JwtResult } from '../compile/request-authentication.js';
import { pseudoHeaderValue } from '../compile/request-view.js';
import type { DownstreamStream } from './stream.js';

/** The attributes of an inbound HTTP request. */
export function requestAttributes(stream: DownstreamStream, jwt: JwtResult): AuthzAttributes {
  const info = stream.info;
  const peer = info.downstreamPeer;
  const query = stream.path.indexOf('?');
  return {
    sourceIp: info.downstreamRemoteAddress,
    remoteIp: info.downstreamRemoteAddress,
    principal: peer?.identity,
    destinationIp: info.downstreamLocalAddress,
    destinationPort: info.downstreamLocalPort,
    ...(info.connection.requestedServerName !== undefined ? { sni: info.connection.requestedServerName } : {}),
    ...(jwt.kind === 'valid' ? { requestPrincipal: jwt.principal, claims: jwt.claims } : {}),
    http: {
      method: stream.method,
      path: query < 0 ? stream.path : stream.path.slice(0, query),
      host: stream.authority,
      header: (name) => pseudoHeaderValue(stream, name) ?? stream.headers.getJoined(name),
    },
  };
}

/** Answers 403 and returns false when the policies deny the request. */
export function authorizeRequest(stream: DownstreamStream, authorization: CompiledAuthorization, jwt: JwtResult): boolean {
  if (!authorization.enabled) return true;
  const decision = authorization.check(requestAttributes(stream, jwt));
  if (decision.allowed) return true;
  stream.sendLocalReply(403, 'RBAC: access denied', { details: `rbac_access_denied_matched_policy[${decision.policy ?? 'none'}]` });
  return false;
}
