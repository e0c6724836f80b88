/**
 * Compiled route actions: weighted forwarding with rewrites, redirects and direct responses.
 * Everything that does not depend on the request is prepared here.
 */
import { compileSearch } from '../core/re2.js';
import type { HashPolicy } from '../model/cluster.js';
import type {
  DirectResponseAction,
  ForwardAction,
  GrpcTimeoutPolicy,
  RedirectAction,
  RouteMatch,
  StringMatch,
} from '../model/route.js';
import { compileHeaderMutation, type HeaderMutator } from './header-mutation.js';
import { compileRetryPolicy, type CompiledMirror, type CompiledRetryPolicy } from './policies.js';
import { isAscii, utf8ByteString } from './string-matcher.js';
import type { RouteRequest } from './request-view.js';

export interface CompiledWeightedCluster {
  readonly name: string;
  readonly weight: number;
  readonly requestHeaders: HeaderMutator | null;
  readonly responseHeaders: HeaderMutator | null;
  readonly hostRewrite: string | undefined;
}

export interface CompiledForward {
  readonly kind: 'forward';
  readonly clusters: readonly CompiledWeightedCluster[];
  /** Picks a destination by weight (a single destination is always picked). */
  pick(): CompiledWeightedCluster;
  /** The path to send upstream, or undefined when no rewrite applies. */
  readonly rewritePath: ((req: RouteRequest) => string) | null;
  readonly hostRewrite: string | undefined;
  /** 0 disables the route timeout. */
  readonly timeoutMs: number;
  /** Null: a single attempt. */
  readonly retryPolicy: CompiledRetryPolicy | null;
  /** Shadow copies of the request; empty for most routes. */
  readonly mirrors: readonly CompiledMirror[];
  /** How `grpc-timeout` bounds the request; undefined: Istio's reading (see grpc-timeout.ts). */
  readonly grpcTimeout: GrpcTimeoutPolicy | undefined;
  /** The route's hash policy, used instead of the cluster's. */
  readonly hashPolicy: HashPolicy | undefined;
  /** Whether x-envoy-attempt-count goes upstream. */
  readonly requestAttemptCount: boolean;
}

export interface CompiledRedirect {
  readonly kind: 'redirect';
  readonly status: number;
  /** The Location header value for a request addressed to `destinationPort`. */
  location(req: RouteRequest, destinationPort: number): string;
}

export interface CompiledDirect {
  readonly kind: 'direct';
  readonly status: number;
  readonly body: Buffer;
  /**
   * For 201 and 3xx statuses, the Location Envoy adds (RFC 9110 §10.2.2): the request's own
   * URL, as a redirect without any redirect settings would build it. Null for other statuses.
   */
  readonly location: ((req: RouteRequest) => string) | null;
}

export type CompiledAction = CompiledForward | CompiledRedirect | CompiledDirect;

const NO_MIRRORS: readonly CompiledMirror[] = [];

/** Envoy's default route timeout when an xDS route leaves it unset. */
export const ENVOY_DEFAULT_ROUTE_TIMEOUT_MS = 15_000;

export function compileForward(a: ForwardAction, match: RouteMatch): CompiledForward {
  const clusters: CompiledWeightedCluster[] = a.clusters
    .filter((c) => c.weight > 0 || a.clusters.length === 1)
    .map((c) => ({
      name: c.cluster,
      weight: c.weight,
      requestHeaders: compileHeaderMutation(c.requestHeaders),
      responseHeaders: compileHeaderMutation(c.responseHeaders),
      hostRewrite: c.hostRewrite === undefined ? undefined : utf8ByteString(c.hostRewrite),
    }));
  if (clusters.length === 0) throw new Error('route has no destination with a positive weight');
  const total = clusters.reduce((s, c) => s + c.weight, 0);
  const pick =
    clusters.length === 1
      ? () => clusters[0]!
      : () => {
          let r = Math.random() * total;
          for (const c of clusters) {
            r -= c.weight;
            if (r < 0) return c;
          }
          return clusters[clusters.length - 1]!;
        };
  return {
    kind: 'forward',
    clusters,
    pick,
    rewritePath: compilePathRewrite(a, match.path),
    hostRewrite: a.hostRewrite === undefined ? undefined : utf8ByteString(a.hostRewrite),
    timeoutMs: a.timeoutMs ?? ENVOY_DEFAULT_ROUTE_TIMEOUT_MS,
    retryPolicy: a.retryPolicy === undefined ? null : compileRetryPolicy(a.retryPolicy),
    mirrors: a.mirrors ?? NO_MIRRORS,
    grpcTimeout: a.grpcTimeout,
    hashPolicy: a.hashPolicy,
    requestAttemptCount: a.requestAttemptCount ?? true,
  };
}

function splitQuery(path: string): [string, string] {
  const q = path.indexOf('?');
  return q === -1 ? [path, ''] : [path.slice(0, q), path.slice(q)];
}

function compilePathRewrite(a: ForwardAction, pathMatch: StringMatch | undefined): ((req: RouteRequest) => string) | null {
  if (a.regexRewrite !== undefined) {
    const re = compileSearch(a.regexRewrite.pattern);
    // Envoy substitutions use \1 for groups; JS uses $1 and needs literal $ doubled.
    const substitution = a.regexRewrite.substitution.replace(/\$/g, '$$$$').replace(/\\(\d)/g, '$$$1');
    return (req) => {
      const [path, query] = splitQuery(req.path);
      // The path is a byte string; RE2 reads it as UTF-8 text (see string-matcher.ts).
      if (isAscii(path)) return path.replace(re, substitution) + query;
      return utf8ByteString(Buffer.from(path, 'latin1').toString('utf8').replace(re, substitution)) + query;
    };
  }
  if (a.prefixRewrite === undefined) return null;
  const replacement = utf8ByteString(a.prefixRewrite);
  if (pathMatch === undefined || pathMatch.kind === 'prefix') {
    const prefixLength = pathMatch === undefined ? 1 : utf8ByteString(pathMatch.value).length;
    return (req) => replacement + req.path.slice(prefixLength);
  }
  // Exact and regex matches cover the whole path: the rewrite replaces it, keeping the query.
  return (req) => replacement + splitQuery(req.path)[1];
}

/**
 * Envoy's redirect URL (Http::Utility::newUri) for the RedirectAction Istio builds:
 * - scheme: the configured one, else the request's;
 * - port: `port`, or for derivePort FROM_REQUEST_PORT the service port the route table is for;
 *   Istio leaves out 80 for http and 443 for https, and FROM_PROTOCOL_DEFAULT sets no port;
 * - host: the configured authority, else the request's Host, whose port is dropped when a port
 *   is set, or when the scheme changes and it is the old scheme's default (processRequestHost);
 * - path: `uri` (keeping the request's query unless `uri` has its own), a prefix rewrite, or the
 *   request path.
 */
export function compileRedirect(a: RedirectAction, match: RouteMatch): CompiledRedirect {
  const prefixLength = match.path?.kind === 'prefix' ? utf8ByteString(match.path.value).length : 1;
  const wire = (s: string | undefined): string | undefined => (s === undefined ? undefined : utf8ByteString(s));
  const hostRedirect = wire(a.hostRedirect);
  const pathRedirect = wire(a.pathRedirect);
  const prefixRewrite = wire(a.prefixRewrite);
  return {
    kind: 'redirect',
    status: a.responseCode,
    location(req, destinationPort) {
      const scheme = a.schemeRedirect ?? req.scheme;
      let port: number | undefined = a.portRedirect;
      if (port === undefined && a.derivePort === 'FROM_REQUEST_PORT') port = destinationPort;
      if ((port === 80 && scheme === 'http') || (port === 443 && scheme === 'https')) port = undefined;
      const host = hostRedirect ?? requestHost(req, scheme, port !== undefined);
      let path: string;
      if (pathRedirect !== undefined) {
        path = pathRedirect.includes('?') ? pathRedirect : pathRedirect + splitQuery(req.path)[1];
      } else if (prefixRewrite !== undefined) {
        path = prefixRewrite + req.path.slice(prefixLength);
      } else {
        path = req.path;
      }
      return `${scheme}://${host}${port === undefined ? '' : `:${port}`}${path}`;
    },
  };
}

/** Envoy's processRequestHost: the request authority, without its port when that is replaced. */
function requestHost(req: RouteRequest, scheme: string, portReplaced: boolean): string {
  const [name, requestPort] = splitHostPort(req.authority);
  if (requestPort === '') return req.authority;
  if (portReplaced) return name;
  if (scheme !== req.scheme && ((requestPort === '80' && req.scheme === 'http') || (requestPort === '443' && req.scheme === 'https'))) {
    return name;
  }
  return req.authority;
}

export function compileDirect(a: DirectResponseAction): CompiledDirect {
  const withLocation = a.status === 201 || (a.status >= 300 && a.status < 400);
  return {
    kind: 'direct',
    status: a.status,
    body: a.body ?? Buffer.alloc(0),
    location: withLocation ? (req) => `${req.scheme}://${req.authority}${req.path}` : null,
  };
}

/** Splits `host:port` (IPv6 in brackets); the port is '' when absent. */
export function splitHostPort(authority: string): [string, string] {
  const colon = authority.lastIndexOf(':');
  if (colon === -1 || authority.indexOf(']', colon) !== -1) return [authority, ''];
  return [authority.slice(0, colon), authority.slice(colon + 1)];
}
