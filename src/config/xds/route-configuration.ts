/**
 * Envoy v3 `envoy.config.route.v3.RouteConfiguration` → the route model.
 *
 * Input is the resource already parsed from YAML or proto3 JSON: fields may be spelled in
 * snake_case or lowerCamelCase, durations are `"1.5s"` strings or `{seconds, nanos}`, wrapped
 * integers are numbers or decimal strings (int64 JSON form).
 *
 * Contract: every field is either translated, accepted because it cannot change how a request is
 * routed or answered (each such field says why below), or reported as an `XdsProblem` naming its
 * snake_case path. Unknown fields are problems too (Envoy rejects them). A result with problems
 * is a NACK: its `config` must not be used.
 *
 * Envoy semantics that are folded into the model here, because the model has no field for them:
 * - virtual-host and route-config header mutations are folded into every route, in Envoy's
 *   order (route, then virtual host, then route config; reversed by
 *   most_specific_header_mutations_wins);
 * - `require_tls` becomes a first route that redirects requests whose x-forwarded-proto is not
 *   `https` (and, for EXTERNAL_ONLY, that lack `x-envoy-internal: true`) to https, 301;
 * - `internal_only_headers` doubles each route: one copy for internal requests
 *   (`x-envoy-internal: true`) and one for the others that removes those headers first;
 * - a route `runtime_fraction` of 0% drops the route and of 100% is no condition (skiff has no
 *   runtime and no random route match, so fractions in between are refused);
 * - `path_separated_prefix` becomes an RE2 full match `prefix(/.*)?`; `grpc` becomes a
 *   content-type match;
 * - per-filter configs (per-filter-config.ts), mirror policies and retry policies are inherited
 *   from the virtual host and the route configuration by the routes that set none, the most
 *   specific winning (Envoy's mostSpecificPerFilterConfig and policy precedence);
 * - `include_request_attempt_count` of the virtual host is set on each of its forwarding routes.
 *
 * Timeouts, hash policies and upgrades of a route action are read in route-action-policies.ts.
 */
import type {
  CorsPolicy,
  ForwardAction,
  HeaderMatch,
  HeaderMutation,
  HeaderToAdd,
  MirrorPolicy,
  QueryParamMatch,
  RedirectAction,
  RetryPolicy,
  Route,
  RouteAction,
  RouteConfig,
  RouteMatch,
  StringMatch,
  VirtualHost,
  WeightedCluster,
} from '../../model/index.js';
import { parseHeaderFormat } from '../../core/header-format.js';
import { FieldReader, isObject, isSet, type Fields, type Spec, type XdsProblem } from './fields.js';
import { PerFilterConfigReader, type FilterPolicies } from './per-filter-config.js';
import { RouteActionPolicyReader } from './route-action-policies.js';

export type { XdsProblem } from './fields.js';


/** `problems` non-empty means the configuration must not be used (a NACK). */
export type RouteConfigurationResult = { readonly config: RouteConfig; readonly problems: readonly XdsProblem[] };

export function translateRouteConfiguration(rc: unknown, fallbackName?: string): RouteConfigurationResult {
  const t = new Translator();
  const config = t.routeConfiguration(rc, fallbackName ?? '');
  return { config, problems: t.problems };
}

// === field specs ===


const NO_RUNTIME = 'skiff has no runtime: the configured default applies';
const STATS_ONLY = 'names stats only';
const TYPED_PER_FILTER = 'per-filter configuration of a weighted cluster is not supported';

const ROUTE_CONFIGURATION: Spec = {
  handled: [
    'name', 'virtual_hosts', 'internal_only_headers', 'request_headers_to_add', 'request_headers_to_remove',
    'response_headers_to_add', 'response_headers_to_remove', 'most_specific_header_mutations_wins',
    'max_direct_response_body_size_bytes', 'typed_per_filter_config', 'request_mirror_policies',
  ],
  ignored: {
    // Only makes Envoy check at load time that routed clusters exist in CDS; routing is unchanged.
    validate_clusters: 'a load-time check only',
    metadata: 'opaque to routing',
    // Istio sets it on every route configuration. skiff matches domains without the Host's port
    // whatever it says (virtual host domains lose their port below).
    ignore_port_in_host_matching: 'skiff always matches the host without its port',
  },
  refused: {
    vhds: 'on-demand virtual hosts (VHDS) are not supported',
    cluster_specifier_plugins: 'cluster specifier plugins are not supported',
    ignore_path_parameters_in_path_matching: 'path parameters are not stripped before matching',
  },
};

const VIRTUAL_HOST: Spec = {
  handled: [
    'name', 'domains', 'routes', 'require_tls', 'request_headers_to_add', 'request_headers_to_remove',
    'response_headers_to_add', 'response_headers_to_remove', 'retry_policy', 'include_request_attempt_count',
    'cors', 'typed_per_filter_config', 'request_mirror_policies',
  ],
  ignored: {
    virtual_clusters: STATS_ONLY,
    metadata: 'opaque to routing',
  },
  refused: {
    matcher: 'the generic matcher tree is not supported',
    rate_limits: 'global rate limiting is not supported',
    include_attempt_count_in_response: 'x-envoy-attempt-count in responses is not supported',
    retry_policy_typed_config: 'typed retry policies are not supported',
    hedge_policy: 'request hedging is not supported',
    per_request_buffer_limit_bytes: 'per-route buffer limits are not supported',
    request_body_buffer_limit: 'per-route buffer limits are not supported',
  },
};

const ROUTE: Spec = {
  handled: [
    'name', 'match', 'route', 'redirect', 'direct_response', 'request_headers_to_add', 'request_headers_to_remove',
    'response_headers_to_add', 'response_headers_to_remove', 'typed_per_filter_config',
  ],
  ignored: {
    // Istio sets it on every route; it names the tracing span only.
    decorator: 'names the tracing span only',
    stat_prefix: STATS_ONLY,
    metadata: 'opaque to routing',
  },
  refused: {
    filter_action: 'filter actions are not supported',
    non_forwarding_action: 'non-forwarding actions are not supported',
    tracing: 'per-route tracing overrides are not supported',
    per_request_buffer_limit_bytes: 'per-route buffer limits are not supported',
    request_body_buffer_limit: 'per-route buffer limits are not supported',
  },
};

const ROUTE_MATCH: Spec = {
  handled: [
    'prefix', 'path', 'safe_regex', 'path_separated_prefix', 'case_sensitive', 'headers', 'query_parameters',
    'runtime_fraction', 'grpc', 'connect_matcher',
  ],
  refused: {
    path_match_policy: 'path match policies (URI templates) are not supported',
    tls_context: 'TLS context matching is not supported',
    dynamic_metadata: 'dynamic metadata matching is not supported',
    filter_state: 'filter state matching is not supported',
    cookies: 'cookie matching is not supported',
  },
};

const QUERY_PARAMETER_MATCHER: Spec = { handled: ['name', 'string_match', 'present_match'] };
const RUNTIME_FRACTION: Spec = { handled: ['default_value'], ignored: { runtime_key: NO_RUNTIME } };

const ROUTE_ACTION: Spec = {
  handled: [
    'cluster', 'weighted_clusters', 'prefix_rewrite', 'regex_rewrite', 'host_rewrite_literal', 'timeout',
    'retry_policy', 'request_mirror_policies', 'priority', 'cluster_not_found_response_code',
    'internal_redirect_action', 'hash_policy', 'cors', 'max_grpc_timeout', 'grpc_timeout_offset',
    'max_stream_duration', 'upgrade_configs',
  ],
  ignored: { include_vh_rate_limits: 'rate limits are refused where they are configured' },
  refused: {
    cluster_header: 'routing by a header-named cluster is not supported',
    cluster_specifier_plugin: 'cluster specifier plugins are not supported',
    inline_cluster_specifier_plugin: 'cluster specifier plugins are not supported',
    metadata_match: 'endpoint metadata matching (subsets) is not supported',
    path_rewrite_policy: 'path rewrite policies are not supported',
    auto_host_rewrite: 'auto host rewrite is not supported',
    host_rewrite_header: 'host rewrite from a header is not supported',
    host_rewrite_path_regex: 'host rewrite from the path is not supported',
    append_x_forwarded_host: 'x-forwarded-host is not appended',
    idle_timeout: 'per-route idle timeouts are not supported',
    early_data_policy: 'early data policies are not supported',
    retry_policy_typed_config: 'typed retry policies are not supported',
    rate_limits: 'global rate limiting is not supported',
    internal_redirect_policy: 'internal redirects are not supported',
    max_internal_redirects: 'internal redirects are not supported',
    hedge_policy: 'request hedging is not supported',
  },
};

const WEIGHTED_CLUSTERS: Spec = {
  handled: ['clusters', 'total_weight'],
  ignored: { runtime_key_prefix: NO_RUNTIME },
  refused: {
    header_name: 'picking a cluster by a header is not supported',
    random_value_specifier: 'random value specifiers are not supported',
  },
};

const CLUSTER_WEIGHT: Spec = {
  handled: [
    'name', 'weight', 'request_headers_to_add', 'request_headers_to_remove', 'response_headers_to_add',
    'response_headers_to_remove', 'host_rewrite_literal',
  ],
  refused: {
    cluster_header: 'routing by a header-named cluster is not supported',
    metadata_match: 'endpoint metadata matching (subsets) is not supported',
    typed_per_filter_config: TYPED_PER_FILTER,
  },
};

const RETRY_POLICY: Spec = {
  handled: [
    'retry_on', 'num_retries', 'per_try_timeout', 'retry_host_predicate', 'host_selection_retry_max_attempts',
    'retriable_status_codes', 'retry_back_off',
  ],
  refused: {
    per_try_idle_timeout: 'per-try idle timeouts are not supported',
    retry_priority: 'retry priority plugins are not supported',
    retry_options_predicates: 'retry options predicates are not supported',
    rate_limited_retry_back_off: 'rate-limited retry back-off is not supported',
    retriable_headers: 'retriable response headers are not supported',
    retriable_request_headers: 'retriable request headers are not supported',
  },
};
const RETRY_BACK_OFF: Spec = { handled: ['base_interval', 'max_interval'] };
const RETRY_HOST_PREDICATE: Spec = { handled: ['name', 'typed_config'] };

const MIRROR_POLICY: Spec = {
  handled: ['cluster', 'runtime_fraction'],
  // Only sets the sampling decision of the shadow's trace.
  ignored: { trace_sampled: 'tracing sampling of the shadow only' },
  refused: {
    cluster_header: 'mirroring to a header-named cluster is not supported',
    disable_shadow_host_suffix_append: 'the -shadow host suffix cannot be disabled',
  },
};

const REDIRECT_ACTION: Spec = {
  handled: ['host_redirect', 'port_redirect', 'scheme_redirect', 'https_redirect', 'path_redirect', 'prefix_rewrite', 'response_code', 'strip_query'],
  refused: { regex_rewrite: 'regex rewrites in redirects are not supported' },
};
const DIRECT_RESPONSE: Spec = { handled: ['status', 'body'] };
const DATA_SOURCE: Spec = {
  handled: ['inline_string', 'inline_bytes'],
  refused: {
    filename: 'direct response bodies from files are not supported',
    environment_variable: 'direct response bodies from environment variables are not supported',
  },
};
const HEADER_VALUE_OPTION: Spec = { handled: ['header', 'append', 'append_action', 'keep_empty_value'] };
const HEADER_VALUE: Spec = { handled: ['key', 'value', 'raw_value'] };
const REGEX_MATCH_AND_SUBSTITUTE: Spec = { handled: ['pattern', 'substitution'] };

const REDIRECT_CODES = ['MOVED_PERMANENTLY', 'FOUND', 'SEE_OTHER', 'TEMPORARY_REDIRECT', 'PERMANENT_REDIRECT'] as const;
const REDIRECT_STATUS: readonly RedirectAction['responseCode'][] = [301, 302, 303, 307, 308];
const APPEND_ACTIONS = ['APPEND_IF_EXISTS_OR_ADD', 'ADD_IF_ABSENT', 'OVERWRITE_IF_EXISTS_OR_ADD', 'OVERWRITE_IF_EXISTS'] as const;
const TLS_REQUIREMENTS = ['NONE', 'EXTERNAL_ONLY', 'ALL'] as const;
const PREVIOUS_HOSTS = 'envoy.retry_host_predicates.previous_hosts';
const PREVIOUS_HOSTS_TYPE = 'type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate';
/** Envoy's default for max_direct_response_body_size_bytes. */
const DEFAULT_MAX_DIRECT_BODY = 4096;
/** Envoy's RetryPolicy defaults. */
const DEFAULT_RETRY_BASE_MS = 25;
const DEFAULT_NUM_RETRIES = 1;
const DEFAULT_HOST_SELECTION_ATTEMPTS = 1;

const NONE: HeaderMutation = { remove: [], add: [] };


/** RE2 quoting of a literal. */
const quoteRe2 = (s: string): string => s.replace(/[\\.+*?()|[\]{}^$]/g, (c) => `\\${c}`);

/** Header mutations in the order Envoy applies them, as one remove-then-add mutation. */
function foldMutations(levels: readonly HeaderMutation[]): HeaderMutation {
  // A later level's remove undoes an earlier level's add of that header; otherwise removes commute
  // with earlier adds of other headers, so all removes can go first.
  const remove: string[] = [];
  let add: HeaderToAdd[] = [];
  for (const level of levels) {
    const removed = new Set(level.remove.map((n) => n.toLowerCase()));
    add = add.filter((h) => !removed.has(h.name.toLowerCase()));
    remove.push(...level.remove);
    add.push(...level.add);
  }
  return remove.length === 0 && add.length === 0 ? NONE : { remove, add };
}

interface Mutations {
  readonly request: HeaderMutation;
  readonly response: HeaderMutation;
}

// === impl Translator ===

class Translator extends FieldReader {
  readonly #filters = new PerFilterConfigReader();
  readonly #policies = new RouteActionPolicyReader();

  /** Moves the sub-readers' problems here, keeping their order; returns `v`. */
  #take<T>(v: T): T {
    this.problems.push(...this.#filters.problems.splice(0), ...this.#policies.problems.splice(0));
    return v;
  }

  // --- route configuration ---

  routeConfiguration(rc: unknown, fallbackName: string): RouteConfig {
    const f = this.message(rc, '', ROUTE_CONFIGURATION);
    const name = this.string(f.get('name'), 'name') || fallbackName;
    const maxBody = this.uint(f.get('max_direct_response_body_size_bytes'), 'max_direct_response_body_size_bytes') ?? DEFAULT_MAX_DIRECT_BODY;
    const internalOnly = this.strings(f.get('internal_only_headers'), 'internal_only_headers').map((h) => h.toLowerCase());
    const ctx: ConfigContext = {
      name,
      mutations: this.#mutations(f, ''),
      mostSpecificWins: this.bool(f.get('most_specific_header_mutations_wins'), 'most_specific_header_mutations_wins') ?? false,
      maxBody,
      internalOnly,
      filters: this.#take(this.#filters.typedPerFilterConfig(f.get('typed_per_filter_config'), 'typed_per_filter_config', `${name}|`)),
      mirrors: this.#mirrors(f.get('request_mirror_policies'), 'request_mirror_policies'),
    };
    const seen = new Map<string, string>();
    const virtualHosts = this.list(f.get('virtual_hosts'), 'virtual_hosts').map((vh, i) => this.#virtualHost(vh, `virtual_hosts[${i}]`, ctx, seen));
    return { name, virtualHosts };
  }

  #mutations(f: Fields, path: string): Mutations {
    const at = (n: string): string => (path === '' ? n : `${path}.${n}`);
    return {
      request: {
        remove: this.#removals(f.get('request_headers_to_remove'), at('request_headers_to_remove')),
        add: this.#additions(f.get('request_headers_to_add'), at('request_headers_to_add')),
      },
      response: {
        remove: this.#removals(f.get('response_headers_to_remove'), at('response_headers_to_remove')),
        add: this.#additions(f.get('response_headers_to_add'), at('response_headers_to_add')),
      },
    };
  }

  #removals(v: unknown, path: string): string[] {
    const names = this.strings(v, path);
    names.forEach((n, i) => this.#checkMutable(n, `${path}[${i}]`));
    return names;
  }

  /** Envoy refuses to mutate pseudo-headers and Host through header lists. */
  #checkMutable(name: string, path: string): void {
    if (name === '') this.problem(path, 'header name must not be empty');
    else if (name.startsWith(':') || name.toLowerCase() === 'host') this.problem(path, `${name} may not be modified (Envoy: ":-prefixed or host headers may not be modified")`);
  }

  /** HeaderValueOption list. `append` defaults to true; `append_action` to APPEND_IF_EXISTS_OR_ADD. */
  #additions(v: unknown, path: string): HeaderToAdd[] {
    const out: HeaderToAdd[] = [];
    this.list(v, path).forEach((o, i) => {
      const at = `${path}[${i}]`;
      const f = this.message(o, at, HEADER_VALUE_OPTION);
      const h = this.message(f.get('header'), `${at}.header`, HEADER_VALUE);
      const name = this.string(h.get('key'), `${at}.header.key`) ?? '';
      this.#checkMutable(name, `${at}.header.key`);
      let value = this.string(h.get('value'), `${at}.header.value`);
      const raw = this.string(h.get('raw_value'), `${at}.header.raw_value`);
      if (raw !== undefined) {
        if (value !== undefined) this.problem(`${at}.header`, 'value and raw_value are exclusive');
        value = Buffer.from(raw, 'base64').toString('latin1');
      }
      const appendFlag = this.bool(f.get('append'), `${at}.append`);
      const action = this.enum(f.get('append_action'), `${at}.append_action`, APPEND_ACTIONS);
      let append = appendFlag ?? true;
      if (appendFlag !== undefined && f.get('append_action') !== undefined) {
        this.problem(`${at}.append_action`, 'append and append_action are exclusive');
      } else if (action !== undefined) {
        if (action === 1 || action === 3) {
          this.problem(`${at}.append_action`, `${APPEND_ACTIONS[action]} is not supported: the model only appends or overwrites`);
        }
        append = action === 0;
      }
      const format = value === undefined ? undefined : parseHeaderFormat(value);
      if (format !== undefined && 'error' in format) this.problem(`${at}.header.${raw !== undefined ? 'raw_value' : 'value'}`, format.error);
      // Envoy drops headers whose value is empty unless keep_empty_value.
      const keepEmpty = this.bool(f.get('keep_empty_value'), `${at}.keep_empty_value`) ?? false;
      if ((value ?? '') === '' && !keepEmpty) return;
      out.push({ name, value: value ?? '', append });
    });
    return out;
  }

  // --- virtual hosts ---

  #virtualHost(v: unknown, path: string, ctx: ConfigContext, seen: Map<string, string>): VirtualHost {
    const f = this.message(v, path, VIRTUAL_HOST);
    const name = this.string(f.get('name'), `${path}.name`) ?? '';
    if (name === '') this.problem(`${path}.name`, 'required');
    const domains: string[] = [];
    const raw = this.strings(f.get('domains'), `${path}.domains`);
    if (raw.length === 0) this.problem(`${path}.domains`, 'at least one domain is required');
    raw.forEach((d, i) => {
      // The model's domains have no port; skiff matches the Host without its port.
      const lower = d.toLowerCase();
      const host = /^(\[[^\]]*\]|[^:]*):\d+$/.test(lower) ? lower.slice(0, lower.lastIndexOf(':')) : lower;
      const owner = seen.get(host);
      if (owner === name || domains.includes(host)) return;
      if (owner !== undefined) {
        this.problem(`${path}.domains[${i}]`, `domain ${JSON.stringify(d)} is also in virtual host ${JSON.stringify(owner)} (domains are matched without their port)`);
        return;
      }
      seen.set(host, name);
      domains.push(host);
    });
    const requestAttemptCount = this.bool(f.get('include_request_attempt_count'), `${path}.include_request_attempt_count`) ?? false;
    const own = this.#take(this.#filters.typedPerFilterConfig(f.get('typed_per_filter_config'), `${path}.typed_per_filter_config`, `${ctx.name}|${path}`));
    const cors = f.has('cors') ? this.#take(this.#filters.corsPolicy(f.get('cors'), `${path}.cors`)) : undefined;
    const mirrors = this.#mirrors(f.get('request_mirror_policies'), `${path}.request_mirror_policies`);
    const vh: VhostContext = {
      mutations: this.#mutations(f, path),
      ...(f.has('retry_policy') ? { retryPolicy: this.#retryPolicy(f.get('retry_policy'), `${path}.retry_policy`) } : {}),
      requestAttemptCount,
      // The older `cors` field and the CORS filter's config are the same policy at this level.
      filters: { ...ctx.filters, ...(cors !== undefined ? { cors } : {}), ...own },
      mirrors: mirrors.length > 0 ? mirrors : ctx.mirrors,
    };
    const routes: Route[] = [];
    const tls = this.enum(f.get('require_tls'), `${path}.require_tls`, TLS_REQUIREMENTS) ?? 0;
    if (tls !== 0) routes.push(sslRedirectRoute(tls === 1));
    this.list(f.get('routes'), `${path}.routes`).forEach((r, i) => {
      routes.push(...this.#route(r, `${path}.routes[${i}]`, ctx, vh));
    });
    return { name, domains, routes };
  }

  // --- routes ---

  #route(v: unknown, path: string, ctx: ConfigContext, vh: VhostContext): Route[] {
    const f = this.message(v, path, ROUTE);
    const name = this.string(f.get('name'), `${path}.name`) ?? '';
    if (!f.has('match')) this.problem(`${path}.match`, 'required');
    const match = this.#routeMatch(f.get('match'), `${path}.match`);
    const actions = ['route', 'redirect', 'direct_response'].filter((a) => f.has(a));
    if (actions.length !== 1) this.problem(path, 'exactly one of route, redirect or direct_response is required');
    let action: RouteAction;
    let actionCors: CorsPolicy | undefined;
    if (f.has('redirect')) action = this.#redirect(f.get('redirect'), `${path}.redirect`);
    else if (f.has('direct_response')) action = this.#direct(f.get('direct_response'), `${path}.direct_response`, ctx.maxBody);
    else if (f.has('route')) [action, actionCors] = this.#forward(f.get('route'), `${path}.route`, vh);
    else action = { kind: 'direct', status: 404 }; // unused: the missing action is a problem
    const ownFilters = this.#take(this.#filters.typedPerFilterConfig(f.get('typed_per_filter_config'), `${path}.typed_per_filter_config`, `${ctx.name}|${path}`));
    const filters: FilterPolicies = { ...vh.filters, ...(actionCors !== undefined ? { cors: actionCors } : {}), ...ownFilters };
    const own = this.#mutations(f, path);
    const levels = ctx.mostSpecificWins ? [ctx.mutations, vh.mutations, own] : [own, vh.mutations, ctx.mutations];
    const requestHeaders = foldMutations(levels.map((l) => l.request));
    const responseHeaders = foldMutations(levels.map((l) => l.response));
    if (match === 'never') return [];
    const route: Route = {
      name,
      match,
      action,
      requestHeaders,
      responseHeaders,
      ...(filters.fault !== undefined ? { fault: filters.fault } : {}),
      ...(filters.cors !== undefined ? { cors: filters.cors } : {}),
      ...(filters.rateLimit !== undefined ? { rateLimit: filters.rateLimit } : {}),
      ...(filters.authorization !== undefined ? { authorization: filters.authorization } : {}),
    };
    if (ctx.internalOnly.length === 0) return [route];
    // Envoy removes internal-only headers from external requests before routing.
    match.headers.forEach((h, i) => {
      if (ctx.internalOnly.includes(h.name.toLowerCase())) {
        this.problem(`${path}.match.headers[${i}]`, `matching on internal-only header ${h.name} is not supported`);
      }
    });
    const internal: HeaderMatch = { name: 'x-envoy-internal', match: { kind: 'exact', value: 'true' }, invert: false, treatMissingAsEmpty: false };
    return [
      { ...route, match: { ...match, headers: [...match.headers, internal] } },
      {
        ...route,
        match: { ...match, headers: [...match.headers, { ...internal, invert: true, treatMissingAsEmpty: true }] },
        requestHeaders: foldMutations([{ remove: ctx.internalOnly, add: [] }, requestHeaders]),
      },
    ];
  }

  /** The route match, or 'never' for a 0% runtime fraction. */
  #routeMatch(v: unknown, path: string): RouteMatch | 'never' {
    const f = this.message(v, path, ROUTE_MATCH);
    // An empty message is set: `connect_matcher: {}` is how it is always written.
    if (f.has('connect_matcher')) this.problem(`${path}.connect_matcher`, 'not supported: CONNECT requests are not routed by route configurations (skiff tunnels CONNECT itself)');
    const specifiers = ['prefix', 'path', 'safe_regex', 'path_separated_prefix'].filter((s) => f.has(s));
    if (specifiers.length !== 1 && !f.has('connect_matcher')) this.problem(path, 'exactly one of prefix, path, safe_regex or path_separated_prefix is required');
    const ignoreCase = !(this.bool(f.get('case_sensitive'), `${path}.case_sensitive`) ?? true);
    let pathMatch: StringMatch | undefined;
    const prefix = this.string(f.get('prefix'), `${path}.prefix`);
    const exact = this.string(f.get('path'), `${path}.path`);
    const separated = this.string(f.get('path_separated_prefix'), `${path}.path_separated_prefix`);
    if (prefix !== undefined) {
      // An empty prefix matches every path.
      if (prefix !== '') pathMatch = { kind: 'prefix', value: prefix, ignoreCase };
    } else if (exact !== undefined) {
      pathMatch = { kind: 'exact', value: exact, ignoreCase };
    } else if (f.has('safe_regex')) {
      // case_sensitive does not apply to safe_regex (Envoy).
      const regex = this.regex(f.get('safe_regex'), `${path}.safe_regex`);
      if (regex !== undefined) pathMatch = { kind: 'regex', value: regex };
    } else if (separated !== undefined) {
      if (separated.endsWith('/') || /[?#]/.test(separated) || !separated.startsWith('/')) {
        this.problem(`${path}.path_separated_prefix`, 'must start with "/", not end with "/" and contain no "?" or "#"');
      } else {
        pathMatch = { kind: 'regex', value: `(?s)${ignoreCase ? '(?i)' : ''}${quoteRe2(separated)}(?:/.*)?` };
      }
    }
    const headers = this.list(f.get('headers'), `${path}.headers`).flatMap((h, i) => this.headerMatcher(h, `${path}.headers[${i}]`) ?? []);
    if (f.has('grpc')) {
      this.message(f.get('grpc'), `${path}.grpc`, { handled: [] });
      // Envoy's isGrpcRequestHeaders: application/grpc, optionally followed by "+…" or ";…".
      headers.push({ name: 'content-type', match: { kind: 'regex', value: 'application/grpc([+;].*)?' }, invert: false, treatMissingAsEmpty: false });
    }
    const queryParams = this.list(f.get('query_parameters'), `${path}.query_parameters`).flatMap(
      (q, i) => this.#queryMatch(q, `${path}.query_parameters[${i}]`) ?? [],
    );
    if (f.has('runtime_fraction')) {
      const pct = this.#runtimeFraction(f.get('runtime_fraction'), `${path}.runtime_fraction`);
      if (pct === 0) return 'never';
      if (pct !== undefined && pct < 100) {
        this.problem(`${path}.runtime_fraction`, `a ${pct}% route match is not supported: the model has no random route match (only 0% and 100% are)`);
      }
    }
    return { ...(pathMatch !== undefined ? { path: pathMatch } : {}), headers, queryParams };
  }

  /** RuntimeFractionalPercent → a percentage 0–100 (capped). */
  #runtimeFraction(v: unknown, path: string): number | undefined {
    const f = this.message(v, path, RUNTIME_FRACTION);
    return this.fractionalPercent(f.get('default_value'), `${path}.default_value`);
  }

  #queryMatch(v: unknown, path: string): QueryParamMatch | undefined {
    const f = this.message(v, path, QUERY_PARAMETER_MATCHER);
    const name = this.string(f.get('name'), `${path}.name`) ?? '';
    if (name === '') this.problem(`${path}.name`, 'required');
    if (f.has('string_match') && f.has('present_match')) this.problem(path, 'string_match and present_match are exclusive');
    if (this.bool(f.get('present_match'), `${path}.present_match`) === false) {
      this.problem(`${path}.present_match`, 'present_match: false is not supported');
    }
    const match = f.has('string_match') ? this.stringMatcher(f.get('string_match'), `${path}.string_match`) : undefined;
    return { name, ...(match !== undefined ? { match } : {}) };
  }

  // --- actions ---

  /** The action, and the route's policy from the deprecated RouteAction `cors`. */
  #forward(v: unknown, path: string, vh: VhostContext): [ForwardAction, CorsPolicy | undefined] {
    const f = this.message(v, path, ROUTE_ACTION);
    const clusters: WeightedCluster[] = [];
    const cluster = this.string(f.get('cluster'), `${path}.cluster`);
    if (cluster !== undefined && f.has('weighted_clusters')) this.problem(path, 'cluster and weighted_clusters are exclusive');
    if (cluster !== undefined) {
      if (cluster === '') this.problem(`${path}.cluster`, 'must not be empty');
      clusters.push({ cluster, weight: 1, requestHeaders: NONE, responseHeaders: NONE });
    } else if (f.has('weighted_clusters')) {
      clusters.push(...this.#weightedClusters(f.get('weighted_clusters'), `${path}.weighted_clusters`));
    } else if (!['clusterHeader', 'cluster_header', 'clusterSpecifierPlugin', 'cluster_specifier_plugin', 'inlineClusterSpecifierPlugin', 'inline_cluster_specifier_plugin'].some((k) => isObject(v) && isSet(v[k]))) {
      // (A refused cluster specifier is reported already.)
      this.problem(path, 'a cluster is required: cluster or weighted_clusters');
    }
    const notFound = this.enum(f.get('cluster_not_found_response_code'), `${path}.cluster_not_found_response_code`, ['SERVICE_UNAVAILABLE', 'NOT_FOUND', 'INTERNAL_SERVER_ERROR']);
    if (notFound !== undefined && notFound !== 0) this.problem(`${path}.cluster_not_found_response_code`, 'only SERVICE_UNAVAILABLE (503) is supported');
    const priority = this.enum(f.get('priority'), `${path}.priority`, ['DEFAULT', 'HIGH']);
    if (priority === 1) this.problem(`${path}.priority`, 'HIGH priority routing is not supported');
    const redirectAction = this.enum(f.get('internal_redirect_action'), `${path}.internal_redirect_action`, ['PASS_THROUGH_INTERNAL_REDIRECT', 'HANDLE_INTERNAL_REDIRECT']);
    if (redirectAction === 1) this.problem(`${path}.internal_redirect_action`, 'internal redirects are not supported');
    const prefixRewrite = this.string(f.get('prefix_rewrite'), `${path}.prefix_rewrite`);
    let regexRewrite: { pattern: string; substitution: string } | undefined;
    if (f.has('regex_rewrite')) {
      const at = `${path}.regex_rewrite`;
      if (prefixRewrite !== undefined) this.problem(path, 'prefix_rewrite and regex_rewrite are exclusive');
      const r = this.message(f.get('regex_rewrite'), at, REGEX_MATCH_AND_SUBSTITUTE);
      const pattern = this.regex(r.get('pattern'), `${at}.pattern`);
      const substitution = this.string(r.get('substitution'), `${at}.substitution`) ?? '';
      if (pattern !== undefined) regexRewrite = { pattern, substitution };
    }
    const hostRewrite = this.string(f.get('host_rewrite_literal'), `${path}.host_rewrite_literal`);
    const timeoutMs = this.duration(f.get('timeout'), `${path}.timeout`);
    // A route retry policy replaces the virtual host's entirely.
    const retryPolicy = f.has('retry_policy') ? this.#retryPolicy(f.get('retry_policy'), `${path}.retry_policy`) : vh.retryPolicy;
    // Mirror policies are not merged: the most specific non-empty list wins.
    const own = this.#mirrors(f.get('request_mirror_policies'), `${path}.request_mirror_policies`);
    const mirrors = own.length > 0 ? own : vh.mirrors;
    const grpcTimeout = this.#take(this.#policies.grpcTimeout(f, path));
    const hashPolicy = this.#take(this.#policies.hashPolicy(f.get('hash_policy'), `${path}.hash_policy`));
    this.#take(this.#policies.upgradeConfigs(f.get('upgrade_configs'), `${path}.upgrade_configs`));
    const cors = f.has('cors') ? this.#take(this.#filters.corsPolicy(f.get('cors'), `${path}.cors`)) : undefined;
    const action: ForwardAction = {
      kind: 'forward',
      clusters,
      ...(prefixRewrite !== undefined ? { prefixRewrite } : {}),
      ...(regexRewrite !== undefined ? { regexRewrite } : {}),
      ...(hostRewrite !== undefined && hostRewrite !== '' ? { hostRewrite } : {}),
      ...(timeoutMs !== undefined ? { timeoutMs } : {}),
      ...(retryPolicy !== undefined ? { retryPolicy } : {}),
      ...(mirrors.length > 0 ? { mirrors } : {}),
      grpcTimeout,
      ...(hashPolicy !== undefined ? { hashPolicy } : {}),
      requestAttemptCount: vh.requestAttemptCount,
    };
    return [action, cors];
  }

  #mirrors(v: unknown, path: string): MirrorPolicy[] {
    return this.list(v, path).flatMap((m, i) => this.#mirror(m, `${path}[${i}]`) ?? []);
  }

  #weightedClusters(v: unknown, path: string): WeightedCluster[] {
    const f = this.message(v, path, WEIGHTED_CLUSTERS);
    const list = this.list(f.get('clusters'), `${path}.clusters`);
    if (list.length === 0) this.problem(`${path}.clusters`, 'at least one cluster is required');
    let sum = 0;
    const out: WeightedCluster[] = [];
    list.forEach((c, i) => {
      const at = `${path}.clusters[${i}]`;
      const cf = this.message(c, at, CLUSTER_WEIGHT);
      const name = this.string(cf.get('name'), `${at}.name`) ?? '';
      if (name === '') this.problem(`${at}.name`, 'required');
      const weight = this.uint(cf.get('weight'), `${at}.weight`) ?? 0;
      sum += weight;
      const m = this.#mutations(cf, at);
      const hostRewrite = this.string(cf.get('host_rewrite_literal'), `${at}.host_rewrite_literal`);
      // The model drops weight-0 entries; so does Envoy's pick.
      if (weight === 0) return;
      out.push({
        cluster: name,
        weight,
        requestHeaders: foldMutations([m.request]),
        responseHeaders: foldMutations([m.response]),
        ...(hostRewrite !== undefined && hostRewrite !== '' ? { hostRewrite } : {}),
      });
    });
    if (list.length > 0 && sum === 0) this.problem(`${path}.clusters`, 'the sum of weights must be greater than 0');
    const total = this.uint(f.get('total_weight'), `${path}.total_weight`);
    if (total !== undefined && total !== 0 && total !== sum) {
      this.problem(`${path}.total_weight`, `the weights sum to ${sum}, not the total_weight ${total}`);
    }
    return out;
  }

  /** Envoy RetryPolicy → the model; the defaults are Envoy's (1 retry, 25ms base back-off). */
  #retryPolicy(v: unknown, path: string): RetryPolicy | undefined {
    const f = this.message(v, path, RETRY_POLICY);
    const retryOn = (this.string(f.get('retry_on'), `${path}.retry_on`) ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');
    const numRetries = this.uint(f.get('num_retries'), `${path}.num_retries`) ?? DEFAULT_NUM_RETRIES;
    const perTry = this.duration(f.get('per_try_timeout'), `${path}.per_try_timeout`);
    const statuses = this.list(f.get('retriable_status_codes'), `${path}.retriable_status_codes`).flatMap(
      (s, i) => this.uint(s, `${path}.retriable_status_codes[${i}]`) ?? [],
    );
    let avoidPreviousHosts = false;
    this.list(f.get('retry_host_predicate'), `${path}.retry_host_predicate`).forEach((p, i) => {
      const at = `${path}.retry_host_predicate[${i}]`;
      const pf = this.message(p, at, RETRY_HOST_PREDICATE);
      const name = this.string(pf.get('name'), `${at}.name`);
      const tc = pf.get('typed_config');
      const type = isObject(tc) ? tc['@type'] : undefined;
      if (name === PREVIOUS_HOSTS || type === PREVIOUS_HOSTS_TYPE) avoidPreviousHosts = true;
      else this.problem(at, `retry host predicate ${JSON.stringify(name ?? type)} is not supported (only ${PREVIOUS_HOSTS})`);
    });
    const attempts = this.uint(f.get('host_selection_retry_max_attempts'), `${path}.host_selection_retry_max_attempts`) ?? DEFAULT_HOST_SELECTION_ATTEMPTS;
    let base = DEFAULT_RETRY_BASE_MS;
    let max: number | undefined;
    if (f.has('retry_back_off')) {
      const at = `${path}.retry_back_off`;
      const b = this.message(f.get('retry_back_off'), at, RETRY_BACK_OFF);
      const baseMs = this.duration(b.get('base_interval'), `${at}.base_interval`);
      if (baseMs === undefined || baseMs <= 0) this.problem(`${at}.base_interval`, 'required and greater than 0');
      else base = baseMs;
      max = this.duration(b.get('max_interval'), `${at}.max_interval`);
      if (max !== undefined && max < base) this.problem(`${at}.max_interval`, 'must not be less than base_interval');
    }
    return {
      numRetries,
      retryOn,
      retriableStatusCodes: statuses,
      // per_try_timeout 0 disables it.
      ...(perTry !== undefined && perTry > 0 ? { perTryTimeoutMs: perTry } : {}),
      backoffBaseMs: base,
      backoffMaxMs: max ?? base * 10,
      avoidPreviousHosts,
      hostSelectionRetryMaxAttempts: attempts,
    };
  }

  #mirror(v: unknown, path: string): MirrorPolicy | undefined {
    const f = this.message(v, path, MIRROR_POLICY);
    const cluster = this.string(f.get('cluster'), `${path}.cluster`) ?? '';
    if (cluster === '') this.problem(`${path}.cluster`, 'required');
    const percentage = f.has('runtime_fraction') ? this.#runtimeFraction(f.get('runtime_fraction'), `${path}.runtime_fraction`) ?? 0 : 100;
    return percentage > 0 ? { cluster, percentage } : undefined;
  }

  #redirect(v: unknown, path: string): RouteAction {
    const f = this.message(v, path, REDIRECT_ACTION);
    const hostRedirect = this.string(f.get('host_redirect'), `${path}.host_redirect`);
    const port = this.uint(f.get('port_redirect'), `${path}.port_redirect`);
    if (port !== undefined && port > 65535) this.problem(`${path}.port_redirect`, 'must be a port number');
    if (f.has('scheme_redirect') && f.has('https_redirect')) this.problem(path, 'scheme_redirect and https_redirect are exclusive');
    const scheme = this.bool(f.get('https_redirect'), `${path}.https_redirect`) ? 'https' : this.string(f.get('scheme_redirect'), `${path}.scheme_redirect`)?.toLowerCase();
    if (f.has('path_redirect') && f.has('prefix_rewrite')) this.problem(path, 'path_redirect and prefix_rewrite are exclusive');
    const pathRedirect = this.string(f.get('path_redirect'), `${path}.path_redirect`);
    const prefixRewrite = this.string(f.get('prefix_rewrite'), `${path}.prefix_rewrite`);
    const code = this.enum(f.get('response_code'), `${path}.response_code`, REDIRECT_CODES) ?? 0;
    if (this.bool(f.get('strip_query'), `${path}.strip_query`) === true) {
      this.problem(`${path}.strip_query`, 'not supported: redirects keep the query string');
    }
    return {
      kind: 'redirect',
      ...(pathRedirect !== undefined && pathRedirect !== '' ? { pathRedirect } : {}),
      ...(prefixRewrite !== undefined ? { prefixRewrite } : {}),
      ...(hostRedirect !== undefined && hostRedirect !== '' ? { hostRedirect } : {}),
      ...(scheme !== undefined && scheme !== '' ? { schemeRedirect: scheme } : {}),
      ...(port !== undefined && port !== 0 ? { portRedirect: port } : {}),
      responseCode: REDIRECT_STATUS[code]!,
    };
  }

  #direct(v: unknown, path: string, maxBody: number): RouteAction {
    const f = this.message(v, path, DIRECT_RESPONSE);
    const status = this.uint(f.get('status'), `${path}.status`);
    if (status === undefined || status < 200 || status > 599) this.problem(`${path}.status`, 'required, 200–599');
    let body: Buffer | undefined;
    if (f.has('body')) {
      const b = this.message(f.get('body'), `${path}.body`, DATA_SOURCE);
      const text = this.string(b.get('inline_string'), `${path}.body.inline_string`);
      const bytes = this.string(b.get('inline_bytes'), `${path}.body.inline_bytes`);
      if (text !== undefined && bytes !== undefined) this.problem(`${path}.body`, 'inline_string and inline_bytes are exclusive');
      body = text !== undefined ? Buffer.from(text) : bytes !== undefined ? Buffer.from(bytes, 'base64') : undefined;
      if (body !== undefined && body.length > maxBody) {
        this.problem(`${path}.body`, `the body is ${body.length} bytes, more than max_direct_response_body_size_bytes (${maxBody})`);
      }
    }
    return { kind: 'direct', status: status ?? 0, ...(body !== undefined ? { body } : {}) };
  }
}

interface ConfigContext {
  readonly name: string;
  readonly mutations: Mutations;
  readonly filters: FilterPolicies;
  readonly mirrors: readonly MirrorPolicy[];
  readonly mostSpecificWins: boolean;
  readonly maxBody: number;
  /** Lowercase names. */
  readonly internalOnly: readonly string[];
}

interface VhostContext {
  readonly mutations: Mutations;
  readonly retryPolicy?: RetryPolicy | undefined;
  readonly requestAttemptCount: boolean;
  /** The virtual host's filter policies over the route configuration's. */
  readonly filters: FilterPolicies;
  /** The virtual host's mirror policies, or the route configuration's when it has none. */
  readonly mirrors: readonly MirrorPolicy[];
}

/**
 * Envoy's SSL redirect for `require_tls`: a 301 to https with the request's host and path. Envoy
 * decides on x-forwarded-proto, which the connection manager sets from the connection before
 * routing; EXTERNAL_ONLY spares requests marked `x-envoy-internal: true`. The virtual host's and
 * route configuration's header mutations do not apply to it.
 *
 * One difference: Envoy keeps an explicit `:80` in the host verbatim, skiff's redirect drops it.
 */
function sslRedirectRoute(externalOnly: boolean): Route {
  const headers: HeaderMatch[] = [{ name: 'x-forwarded-proto', match: { kind: 'exact', value: 'https' }, invert: true, treatMissingAsEmpty: true }];
  if (externalOnly) headers.push({ name: 'x-envoy-internal', match: { kind: 'exact', value: 'true' }, invert: true, treatMissingAsEmpty: true });
  return {
    name: '',
    match: { headers, queryParams: [] },
    action: { kind: 'redirect', schemeRedirect: 'https', responseCode: 301 },
    requestHeaders: NONE,
    responseHeaders: NONE,
  };
}
