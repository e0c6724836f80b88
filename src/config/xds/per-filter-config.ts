/**
 * Per-route HTTP filter configuration of an Envoy v3 RouteConfiguration → the route model's
 * policies: `typed_per_filter_config` (at route configuration, virtual host and route level) and
 * the older `cors` fields.
 *
 * Filters are told apart by the config's type, not by the map key (the key names an HTTP filter
 * of the listener, which this translator does not see):
 * - HTTPFault → FaultPolicy; LocalRateLimit → LocalRateLimit (one token bucket per place it is
 *   configured, shared by the routes that inherit it, as Envoy's per-route config object is);
 *   CorsPolicy → CorsPolicy;
 * - RBACPerRoute → the route's authorization: its `rbac` replaces the listener's HTTP RBAC
 *   policies for the route, and an absent `rbac` turns them off (Envoy's meaning). The override
 *   applies to every RBAC filter of the listener, as Istio names them all alike
 *   (envoy.filters.http.rbac); every other filter is refused.
 * The most specific level wins per filter (route, then virtual host, then route configuration).
 */
import type { Authorization, CorsPolicy, FaultPolicy, LocalRateLimit } from '../../model/index.js';
import { translateHttpRbac } from './rbac.js';
import { FieldReader, isTypedStruct, typeName, type Spec } from './fields.js';

/** The filter policies one level (route configuration, virtual host or route) sets. */
export interface FilterPolicies {
  readonly fault?: FaultPolicy;
  readonly cors?: CorsPolicy;
  readonly rateLimit?: LocalRateLimit;
  /** RBACPerRoute: replacing policies, or null (RBAC off for the route). */
  readonly authorization?: Authorization | null;
}

const NO_RUNTIME = 'skiff has no runtime: the configured default applies';
const FAULT = 'envoy.extensions.filters.http.fault.v3.HTTPFault';
const LOCAL_RATE_LIMIT = 'envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit';
const CORS = 'envoy.extensions.filters.http.cors.v3.CorsPolicy';
const RBAC_PER_ROUTE = 'envoy.extensions.filters.http.rbac.v3.RBACPerRoute';

const HTTP_FAULT: Spec = {
  handled: ['delay', 'abort'],
  ignored: {
    delay_percent_runtime: NO_RUNTIME,
    abort_percent_runtime: NO_RUNTIME,
    delay_duration_runtime: NO_RUNTIME,
    abort_http_status_runtime: NO_RUNTIME,
    abort_grpc_status_runtime: NO_RUNTIME,
    max_active_faults_runtime: NO_RUNTIME,
    response_rate_limit_percent_runtime: NO_RUNTIME,
    disable_downstream_cluster_stats: 'names stats only',
    filter_metadata: 'opaque to routing',
  },
  refused: {
    upstream_cluster: 'faults limited to one upstream cluster are not supported',
    headers: 'faults limited by request headers are not supported',
    downstream_nodes: 'faults limited to downstream nodes are not supported',
    max_active_faults: 'a limit on active faults is not supported',
    response_rate_limit: 'response rate limiting faults are not supported',
  },
};
const FAULT_DELAY: Spec = {
  handled: ['fixed_delay', 'percentage'],
  refused: { header_delay: 'delays from a request header are not supported' },
};
const FAULT_ABORT: Spec = {
  handled: ['http_status', 'grpc_status', 'percentage'],
  refused: { header_abort: 'aborts from a request header are not supported' },
};

const DESCRIPTORS_ONLY = 'applies to rate-limit descriptors only, which are refused';
const LOCAL_RATE_LIMIT_SPEC: Spec = {
  handled: ['token_bucket', 'filter_enabled', 'filter_enforced', 'status', 'enable_x_ratelimit_headers'],
  ignored: {
    stat_prefix: 'names stats only',
    stage: DESCRIPTORS_ONLY,
    vh_rate_limits: DESCRIPTORS_ONLY,
    always_consume_default_token_bucket: DESCRIPTORS_ONLY,
    max_dynamic_descriptors: DESCRIPTORS_ONLY,
  },
  refused: {
    descriptors: 'rate-limit descriptors are not supported',
    rate_limits: 'rate-limit descriptors are not supported',
    request_headers_to_add_when_not_enforced: 'headers on requests that are not enforced are not supported',
    response_headers_to_add: 'headers on rate-limited responses are not supported',
    local_rate_limit_per_downstream_connection: 'per-connection token buckets are not supported',
    local_cluster_rate_limit: 'cluster-wide sharing of the token bucket is not supported',
    rate_limited_as_resource_exhausted: 'RESOURCE_EXHAUSTED for rate-limited gRPC calls is not supported',
  },
};
const TOKEN_BUCKET: Spec = { handled: ['max_tokens', 'tokens_per_fill', 'fill_interval'] };
const RUNTIME_FRACTION: Spec = { handled: ['default_value'], ignored: { runtime_key: NO_RUNTIME } };
const HTTP_STATUS: Spec = { handled: ['code'] };

const CORS_POLICY: Spec = {
  handled: [
    'allow_origin_string_match', 'allow_methods', 'allow_headers', 'expose_headers', 'max_age', 'allow_credentials',
    'forward_not_matching_preflights', 'filter_enabled', 'allow_private_network_access',
  ],
  ignored: { shadow_enabled: 'shadow evaluation changes stats only' },
  refused: {
    allow_origin: 'the deprecated allow_origin is not supported (use allow_origin_string_match)',
    allow_origin_regex: 'the deprecated allow_origin_regex is not supported (use allow_origin_string_match)',
    enabled: 'the deprecated enabled is not supported (use filter_enabled)',
  },
};

/** Envoy's local rate limit reply status. */
const RATE_LIMITED = 429;

// === impl PerFilterConfigReader ===

export class PerFilterConfigReader extends FieldReader {
  /**
   * A `typed_per_filter_config` map. `bucketKey` identifies this place for the rate-limit
   * bucket (unique across route configurations).
   */
  typedPerFilterConfig(v: unknown, path: string, bucketKey: string): FilterPolicies {
    if (v === undefined) return {};
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      this.problem(path, 'must be a map of filter name to config');
      return {};
    }
    let out: FilterPolicies = {};
    for (const [name, config] of Object.entries(v as Record<string, unknown>)) {
      // Map keys are filter names, not fields: they keep their spelling.
      const at = `${path}.${name}`;
      const any = this.any(config, at);
      if (any === undefined) continue;
      const type = typeName(any.typeUrl);
      const body = any.body;
      switch (type) {
        case FAULT: {
          const fault = this.#fault(body, at);
          if (fault !== undefined) out = { ...out, fault };
          break;
        }
        case LOCAL_RATE_LIMIT: {
          const rateLimit = this.#localRateLimit(body, at, bucketKey);
          if (rateLimit !== undefined) out = { ...out, rateLimit };
          break;
        }
        case CORS: {
          const cors = this.corsPolicy(body, at);
          if (cors !== undefined) out = { ...out, cors };
          break;
        }
        case RBAC_PER_ROUTE: {
          const authorization = this.#rbacPerRoute(body, at);
          if (authorization !== undefined) out = { ...out, authorization };
          break;
        }
        default: {
          // A TypedStruct names the real type inside.
          const inner = isTypedStruct(type) ? body['type_url'] ?? body['typeUrl'] : undefined;
          const shown = typeof inner === 'string' ? typeName(inner) : type;
          this.problem(at, `not supported: filter ${JSON.stringify(name)} has no per-route configuration in skiff (type ${shown})`);
        }
      }
    }
    return out;
  }

  /** RBACPerRoute: the replacing policies, null to turn RBAC off, undefined (and problems) when unreadable. */
  #rbacPerRoute(v: unknown, path: string): Authorization | null | undefined {
    const f = this.message(v, path, { handled: ['rbac'] });
    if (!f.has('rbac')) return null;
    const t = translateHttpRbac(f.get('rbac'));
    for (const p of t.problems) this.problem(`${path}.rbac${p.path === '' ? '' : `.${p.path}`}`, p.message);
    return t.authorization;
  }

  /**
   * Envoy CorsPolicy (the filter's per-route config, or the route/virtual host `cors` field);
   * undefined when filter_enabled is 0% (CORS off).
   */
  corsPolicy(v: unknown, path: string): CorsPolicy | undefined {
    const f = this.message(v, path, CORS_POLICY);
    const allowOrigins = this.list(f.get('allow_origin_string_match'), `${path}.allow_origin_string_match`).flatMap(
      (m, i) => this.stringMatcher(m, `${path}.allow_origin_string_match[${i}]`) ?? [],
    );
    if (this.bool(f.get('allow_private_network_access'), `${path}.allow_private_network_access`) === true) {
      this.problem(`${path}.allow_private_network_access`, 'not supported: private network access preflights are not answered');
    }
    const policy: CorsPolicy = {
      allowOrigins,
      allowMethods: this.string(f.get('allow_methods'), `${path}.allow_methods`) ?? '',
      allowHeaders: this.string(f.get('allow_headers'), `${path}.allow_headers`) ?? '',
      exposeHeaders: this.string(f.get('expose_headers'), `${path}.expose_headers`) ?? '',
      maxAge: this.string(f.get('max_age'), `${path}.max_age`) ?? '',
      allowCredentials: this.bool(f.get('allow_credentials'), `${path}.allow_credentials`) ?? false,
      forwardNotMatchingPreflights: this.bool(f.get('forward_not_matching_preflights'), `${path}.forward_not_matching_preflights`) ?? true,
    };
    // filter_enabled defaults to 100%.
    return this.#allOrNothing(f.get('filter_enabled'), `${path}.filter_enabled`, 100) ? policy : undefined;
  }

  /** HTTPFault → FaultPolicy; undefined when it injects nothing (an unset percentage is 0%). */
  #fault(v: unknown, path: string): FaultPolicy | undefined {
    const f = this.message(v, path, HTTP_FAULT);
    let delay: FaultPolicy['delay'];
    let abort: FaultPolicy['abort'];
    if (f.has('delay')) {
      const at = `${path}.delay`;
      const d = this.message(f.get('delay'), at, FAULT_DELAY);
      const fixedDelayMs = this.duration(d.get('fixed_delay'), `${at}.fixed_delay`);
      if (fixedDelayMs === undefined && !d.has('header_delay')) this.problem(`${at}.fixed_delay`, 'required');
      const percentage = this.fractionalPercent(d.get('percentage'), `${at}.percentage`);
      if (fixedDelayMs !== undefined && percentage > 0) delay = { fixedDelayMs, percentage };
    }
    if (f.has('abort')) {
      const at = `${path}.abort`;
      const a = this.message(f.get('abort'), at, FAULT_ABORT);
      const httpStatus = this.uint(a.get('http_status'), `${at}.http_status`);
      const grpcStatus = this.uint(a.get('grpc_status'), `${at}.grpc_status`);
      const kinds = ['http_status', 'grpc_status', 'header_abort'].filter((k) => a.has(k));
      if (kinds.length !== 1 && !(kinds.length === 0 && isHeaderAbort(f.get('abort')))) {
        this.problem(at, 'exactly one of http_status, grpc_status or header_abort is required');
      }
      if (httpStatus !== undefined && (httpStatus < 200 || httpStatus >= 600)) this.problem(`${at}.http_status`, 'must be 200–599');
      const percentage = this.fractionalPercent(a.get('percentage'), `${at}.percentage`);
      if (percentage > 0 && (httpStatus !== undefined || grpcStatus !== undefined)) {
        abort = { ...(httpStatus !== undefined ? { httpStatus } : { grpcStatus: grpcStatus! }), percentage };
      }
    }
    if (delay === undefined && abort === undefined) return undefined;
    return { ...(delay !== undefined ? { delay } : {}), ...(abort !== undefined ? { abort } : {}) };
  }

  /**
   * LocalRateLimit → LocalRateLimit. filter_enabled and filter_enforced default to 0% (Envoy,
   * "for safety"): below 100% of either nothing is limited (enabled but not enforced only
   * counts); fractions in between are refused, skiff has no random draw for them.
   */
  #localRateLimit(v: unknown, path: string, bucketKey: string): LocalRateLimit | undefined {
    const f = this.message(v, path, LOCAL_RATE_LIMIT_SPEC);
    if (f.has('status')) {
      const s = this.message(f.get('status'), `${path}.status`, HTTP_STATUS);
      const code = s.get('code');
      if (code !== RATE_LIMITED && code !== 'TooManyRequests') this.problem(`${path}.status.code`, 'not supported: rate-limited requests are answered 429');
    }
    const headers = f.get('enable_x_ratelimit_headers');
    if (headers !== undefined && headers !== 'OFF' && headers !== 0) {
      this.problem(`${path}.enable_x_ratelimit_headers`, 'not supported: x-ratelimit-* headers are not sent');
    }
    const at = `${path}.token_bucket`;
    if (!f.has('token_bucket')) this.problem(at, 'required');
    const b = this.message(f.get('token_bucket'), at, TOKEN_BUCKET);
    const maxTokens = this.uint(b.get('max_tokens'), `${at}.max_tokens`) ?? 0;
    if (maxTokens === 0) this.problem(`${at}.max_tokens`, 'required and greater than 0');
    const tokensPerFill = this.uint(b.get('tokens_per_fill'), `${at}.tokens_per_fill`) ?? 1;
    if (tokensPerFill === 0) this.problem(`${at}.tokens_per_fill`, 'must be greater than 0');
    const fillIntervalMs = this.duration(b.get('fill_interval'), `${at}.fill_interval`) ?? 0;
    if (fillIntervalMs <= 0) this.problem(`${at}.fill_interval`, 'required and greater than 0');
    const enabled = this.#allOrNothing(f.get('filter_enabled'), `${path}.filter_enabled`, 0);
    const enforced = this.#allOrNothing(f.get('filter_enforced'), `${path}.filter_enforced`, 0);
    if (!enabled || !enforced) return undefined;
    return { key: bucketKey, maxTokens, tokensPerFill, fillIntervalMs };
  }

  /** A RuntimeFractionalPercent that must be 0% (false) or 100% (true); `dflt` when unset. */
  #allOrNothing(v: unknown, path: string, dflt: 0 | 100): boolean {
    if (v === undefined) return dflt === 100;
    const f = this.message(v, path, RUNTIME_FRACTION);
    const pct = this.fractionalPercent(f.get('default_value'), `${path}.default_value`);
    if (pct > 0 && pct < 100) this.problem(path, `a ${pct}% fraction is not supported: only 0% and 100% are`);
    return pct >= 100;
  }
}

const isHeaderAbort = (v: unknown): boolean => typeof v === 'object' && v !== null && ('header_abort' in v || 'headerAbort' in v);
