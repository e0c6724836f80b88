/**
 * Routes: a small typed subset of Envoy's RouteConfiguration (route_components.proto). Both
 * config sources produce these; `compile/` turns them into matchers.
 */
import type { HashPolicy } from './cluster.js';
import type { Authorization } from './authorization.js';
import type { CorsPolicy, FaultPolicy, LocalRateLimit, MirrorPolicy, RetryPolicy } from './policies.js';
import type { HeaderMatch, StringMatch } from './string-match.js';

export type { HeaderMatch, StringMatch } from './string-match.js';

/** Envoy QueryParameterMatcher. `match` absent means presence. */
export interface QueryParamMatch {
  readonly name: string;
  readonly match?: StringMatch;
}

export interface RouteMatch {
  /** Path match on `:path` without the query string; absent matches every path. */
  readonly path?: StringMatch;
  readonly headers: readonly HeaderMatch[];
  readonly queryParams: readonly QueryParamMatch[];
}

/** One Envoy HeaderValueOption. */
export interface HeaderToAdd {
  readonly name: string;
  readonly value: string;
  /** true: append to an existing value (APPEND_IF_EXISTS_OR_ADD); false: overwrite it. */
  readonly append: boolean;
}

/** Envoy's headers_to_remove then headers_to_add, each applied in list order. */
export interface HeaderMutation {
  readonly remove: readonly string[];
  readonly add: readonly HeaderToAdd[];
}

export const NO_HEADER_MUTATION: HeaderMutation = { remove: [], add: [] };

export interface WeightedCluster {
  readonly cluster: string;
  readonly weight: number;
  readonly requestHeaders: HeaderMutation;
  readonly responseHeaders: HeaderMutation;
  /** Host/:authority for requests sent to this destination (Envoy host_rewrite_literal). */
  readonly hostRewrite?: string;
}

export interface ForwardAction {
  readonly kind: 'forward';
  /** Relative weights; a single entry gets all traffic. Entries with weight 0 are dropped. */
  readonly clusters: readonly WeightedCluster[];
  /** Replace the matched path prefix (Envoy prefix_rewrite). */
  readonly prefixRewrite?: string;
  /** Replace every match of `pattern` (RE2) in the path (Envoy regex_rewrite). */
  readonly regexRewrite?: { readonly pattern: string; readonly substitution: string };
  /** Replace the Host/:authority sent upstream (Envoy host_rewrite_literal). */
  readonly hostRewrite?: string;
  /** Route timeout in ms, covering all retries; 0 disables (Istio default); undefined means Envoy's 15s. */
  readonly timeoutMs?: number;
  /** Undefined: no retries. */
  readonly retryPolicy?: RetryPolicy;
  readonly mirrors?: readonly MirrorPolicy[];
  /**
   * How the request's `grpc-timeout` header bounds it; undefined: Istio's reading (the header's
   * deadline, capped by `timeoutMs` when that is set).
   */
  readonly grpcTimeout?: GrpcTimeoutPolicy;
  /** What a consistent-hash cluster hashes the request on; overrides the cluster's hashPolicy. */
  readonly hashPolicy?: HashPolicy;
  /** Send `x-envoy-attempt-count` upstream (Envoy include_request_attempt_count); undefined: sent, as Istio sets it. */
  readonly requestAttemptCount?: boolean;
}

/**
 * Envoy's three readings of `grpc-timeout` (router.cc finalTimeout, conn_manager_impl.cc
 * refreshDurationTimeout). A deadline of 0 is none.
 * - `ignore`: the header is not read; the route timeout applies (neither field is set);
 * - `grpc` (max_grpc_timeout): for gRPC requests the route timeout is replaced by the header's
 *   deadline less `offsetMs` (when it is more), capped at `maxMs` (0: uncapped) — a gRPC request
 *   without the header gets `maxMs`;
 * - `stream` (max_stream_duration set, even to zeros): the route timeout does not apply at all;
 *   a request with the header gets its deadline capped at `headerMaxMs` (0: uncapped) less
 *   `offsetMs`, when `headerMaxMs` is set; any other request gets `streamMs` (0: none).
 */
export type GrpcTimeoutPolicy =
  | { readonly kind: 'ignore' }
  | { readonly kind: 'grpc'; readonly maxMs: number; readonly offsetMs: number }
  | { readonly kind: 'stream'; readonly streamMs: number; readonly headerMaxMs?: number; readonly offsetMs: number };

export interface RedirectAction {
  readonly kind: 'redirect';
  /** Replace the whole path. Exclusive with prefixRewrite. */
  readonly pathRedirect?: string;
  readonly prefixRewrite?: string;
  readonly hostRedirect?: string;
  readonly schemeRedirect?: string;
  readonly portRedirect?: number;
  /** Istio derivePort: FROM_PROTOCOL_DEFAULT (80/443) or FROM_REQUEST_PORT. */
  readonly derivePort?: 'FROM_PROTOCOL_DEFAULT' | 'FROM_REQUEST_PORT';
  readonly responseCode: 301 | 302 | 303 | 307 | 308;
}

export interface DirectResponseAction {
  readonly kind: 'direct';
  readonly status: number;
  readonly body?: Buffer;
}

export type RouteAction = ForwardAction | RedirectAction | DirectResponseAction;

export interface Route {
  /** Envoy route name (Istio: the HTTPRoute name, or empty). */
  readonly name: string;
  readonly match: RouteMatch;
  readonly action: RouteAction;
  readonly requestHeaders: HeaderMutation;
  readonly responseHeaders: HeaderMutation;
  readonly fault?: FaultPolicy;
  readonly cors?: CorsPolicy;
  readonly rateLimit?: LocalRateLimit;
  /**
   * xDS RBACPerRoute: policies that replace the listener's HTTP RBAC policies for this route, or
   * null when the route turns them off. Absent: the listener's apply.
   */
  readonly authorization?: Authorization | null;
}

export interface VirtualHost {
  readonly name: string;
  /** Exact names, `*.suffix` / `prefix.*` wildcards, or `*`. Lowercase; no port. */
  readonly domains: readonly string[];
  /** Ordered; the first route whose match succeeds wins. */
  readonly routes: readonly Route[];
}

export interface RouteConfig {
  /** Istio names outbound route configs by port: "9080". */
  readonly name: string;
  readonly virtualHosts: readonly VirtualHost[];
}
