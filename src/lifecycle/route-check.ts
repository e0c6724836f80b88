/**
 * Route check: Envoy's router_check_tool over skiff's own route matching. A test names a request
 * (authority, path, method, random_value, ssl, internal, extra headers) and what routing should
 * make of it; the request is routed through the compiled route table exactly as the router does
 * (domain table → first matching route → weighted pick → rewrites / redirect / direct answer),
 * without sockets, and each expectation is compared with what skiff would do.
 *
 * Request as the tool builds it: `:authority`, `:path`, `:method`, `x-forwarded-proto`
 * (https when ssl), `x-envoy-internal: true` when internal, then the additional headers. The
 * downstream peer is 127.0.0.1. A weighted route picks `random_value % total_weight` against
 * the cumulative weights, so a test is deterministic.
 *
 * `require_tls` reaches the model as a first redirect route (see the xDS translator), so it is
 * routed like any other. The model has no `virtual_clusters` (stats only); this tool reads them
 * from the raw RouteConfiguration (see `RawVirtualHostExtras`) to check virtual_cluster_name.
 */
import { splitAuthority } from '../http/router/request-view.js';
import { compileRouteConfig, RouteTables } from '../compile/route-table.js';
import type { CompiledRoute, CompiledVirtualHost } from '../compile/route-table.js';
import type { CompiledForward, CompiledWeightedCluster } from '../compile/route-action.js';
import type { MutableHeaders, RouteRequest } from '../compile/request-view.js';
import type { HeaderContext } from '../compile/header-mutation.js';
import { compileStringMatch, type StringPredicate } from '../compile/string-matcher.js';
import type { DomainTable } from '../compile/domain-table.js';
import type { Model } from '../model/index.js';
import type { RouteConfig, StringMatch } from '../model/route.js';
import { translateRouteConfiguration, type XdsProblem } from '../config/xds/route-configuration.js';

// === test file ===

export interface RouteCheckInput {
  readonly authority: string;
  readonly path: string;
  readonly method: string;
  readonly randomValue: number;
  readonly ssl: boolean;
  readonly internal: boolean;
  readonly headers: readonly (readonly [string, string])[];
}

export interface RouteCheckTest {
  readonly name: string;
  readonly input: RouteCheckInput;
  /** The `validate` object as written; checked field by field. */
  readonly validate: Readonly<Record<string, unknown>>;
}

/** One field whose actual value differs from the expected one. */
export interface CheckFailure {
  readonly field: string;
  readonly expected: string;
  readonly actual: string;
}

export interface TestResult {
  readonly name: string;
  readonly failures: readonly CheckFailure[];
  /** What routing made of the request. */
  readonly outcome: RouteOutcome;
  /** The route that matched: its name is the Istio HTTPRoute name. */
  readonly routeName: string | undefined;
}

/** A problem in the route config or in the test file, at a field path. */
export interface RouteCheckProblem extends XdsProblem {
  readonly source: 'config' | 'tests';
}

export interface RouteCheckReport {
  /** Config or test-file problems; non-empty means the run failed (no test ran for config ones). */
  readonly problems: readonly RouteCheckProblem[];
  readonly results: readonly TestResult[];
}

const VALIDATE_FIELDS = new Set([
  'cluster_name',
  'virtual_cluster_name',
  'virtual_host_name',
  'path_rewrite',
  'host_rewrite',
  'path_redirect',
  'code_redirect',
  'timeout',
  'request_header_matches',
  'response_header_matches',
  // Older spellings of the header checks (key/field + value, exact match).
  'header_fields',
  'custom_header_fields',
]);

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Parses a router_check_tool test file: `{tests: [...]}`, or (older form) a bare list. */
export function parseRouteCheckTests(doc: unknown): { tests: RouteCheckTest[]; problems: XdsProblem[] } {
  const problems: XdsProblem[] = [];
  const list = Array.isArray(doc) ? doc : isRecord(doc) ? doc['tests'] : undefined;
  if (!Array.isArray(list)) return { tests: [], problems: [{ path: 'tests', message: 'expected a list of tests' }] };
  const tests: RouteCheckTest[] = [];
  list.forEach((t: unknown, i) => {
    const at = `tests[${i}]`;
    if (!isRecord(t)) return problems.push({ path: at, message: 'expected an object' });
    const name = t['test_name'];
    if (typeof name !== 'string') problems.push({ path: `${at}.test_name`, message: 'required string' });
    const input = t['input'];
    if (!isRecord(input)) return problems.push({ path: `${at}.input`, message: 'required object' });
    const str = (key: string, old: string, required: boolean): string => {
      const v = input[key] ?? input[old];
      if (typeof v === 'string') return v;
      if (v !== undefined || required) problems.push({ path: `${at}.input.${key}`, message: v === undefined ? 'required string' : 'expected a string' });
      return '';
    };
    const authority = str('authority', ':authority', true);
    const path = str('path', ':path', true);
    const method = str('method', ':method', false) || 'GET';
    const rv = input['random_value'] ?? 0;
    const randomValue = typeof rv === 'string' ? Number(rv) : rv;
    if (typeof randomValue !== 'number' || !Number.isInteger(randomValue) || randomValue < 0) {
      problems.push({ path: `${at}.input.random_value`, message: 'expected a non-negative integer' });
    }
    const headers: [string, string][] = [];
    const extra = input['additional_request_headers'] ?? input['additional_headers'];
    if (extra !== undefined) {
      if (!Array.isArray(extra)) problems.push({ path: `${at}.input.additional_request_headers`, message: 'expected a list' });
      else
        extra.forEach((h: unknown, j) => {
          const key = isRecord(h) ? (h['key'] ?? h['field']) : undefined;
          const value = isRecord(h) ? h['value'] : undefined;
          if (typeof key !== 'string' || typeof value !== 'string') {
            problems.push({ path: `${at}.input.additional_request_headers[${j}]`, message: 'expected {key, value} strings' });
          } else headers.push([key.toLowerCase(), value]);
        });
    }
    const validate = t['validate'];
    if (!isRecord(validate)) return problems.push({ path: `${at}.validate`, message: 'required object' });
    for (const k of Object.keys(validate)) {
      if (!VALIDATE_FIELDS.has(k)) problems.push({ path: `${at}.validate.${k}`, message: 'unknown field' });
    }
    tests.push({
      name: typeof name === 'string' ? name : `#${i}`,
      input: {
        authority,
        path,
        method,
        randomValue: typeof randomValue === 'number' ? randomValue : 0,
        ssl: input['ssl'] === true,
        internal: input['internal'] === true,
        headers,
      },
      validate,
    });
    return undefined;
  });
  return { tests, problems };
}

// === raw extras ===

/** Per virtual host, what the model does not carry. */
interface RawVirtualHostExtras {
  readonly virtualClusters: readonly { readonly name: string; readonly headers: readonly HeaderCheck[] }[];
}

function readExtras(rc: unknown, problems: XdsProblem[]): Map<string, RawVirtualHostExtras> {
  const out = new Map<string, RawVirtualHostExtras>();
  const vhosts = isRecord(rc) ? rc['virtual_hosts'] : undefined;
  if (!Array.isArray(vhosts)) return out;
  vhosts.forEach((vh: unknown, i) => {
    if (!isRecord(vh) || typeof vh['name'] !== 'string') return;
    const vcs: { name: string; headers: HeaderCheck[] }[] = [];
    const raw = vh['virtual_clusters'];
    if (Array.isArray(raw)) {
      raw.forEach((vc: unknown, j) => {
        const at = `virtual_hosts[${i}].virtual_clusters[${j}]`;
        if (!isRecord(vc) || typeof vc['name'] !== 'string') return problems.push({ path: at, message: 'expected {name, headers}' });
        const headers = Array.isArray(vc['headers']) ? vc['headers'] : [];
        const checks: HeaderCheck[] = [];
        headers.forEach((h: unknown, k) => {
          const c = compileHeaderCheck(h, `${at}.headers[${k}]`, problems);
          if (c !== null) checks.push(c);
        });
        vcs.push({ name: vc['name'], headers: checks });
        return undefined;
      });
    }
    out.set(vh['name'], { virtualClusters: vcs });
  });
  return out;
}

// === header matchers (Envoy HeaderMatcher, v2 and v3 spellings) ===

export type HeaderCheck = (headers: HeaderBag) => boolean;

function stringMatchOf(m: Record<string, unknown>): StringMatch | string {
  const ignoreCase = m['ignore_case'] === true;
  for (const kind of ['exact', 'prefix', 'suffix', 'contains'] as const) {
    const v = m[kind];
    if (typeof v === 'string') return { kind, value: v, ignoreCase };
  }
  const re = m['safe_regex'];
  if (isRecord(re) && typeof re['regex'] === 'string') return { kind: 'regex', value: re['regex'] };
  return 'unsupported string_match';
}

/** Compiles one HeaderMatcher; null (with a problem) when it cannot be read. */
export function compileHeaderCheck(raw: unknown, at: string, problems: XdsProblem[]): HeaderCheck | null {
  if (!isRecord(raw) || typeof raw['name'] !== 'string') {
    problems.push({ path: at, message: 'expected a header matcher with a name' });
    return null;
  }
  const name = raw['name'].toLowerCase();
  const invert = raw['invert_match'] === true;
  const missingAsEmpty = raw['treat_missing_header_as_empty'] === true;
  let test: ((v: string) => boolean) | undefined;
  let presence = true;
  let sm: StringMatch | string | undefined;
  if (isRecord(raw['string_match'])) sm = stringMatchOf(raw['string_match']);
  else if (typeof raw['exact_match'] === 'string') sm = { kind: 'exact', value: raw['exact_match'] };
  else if (typeof raw['prefix_match'] === 'string') sm = { kind: 'prefix', value: raw['prefix_match'] };
  else if (typeof raw['suffix_match'] === 'string') sm = { kind: 'suffix', value: raw['suffix_match'] };
  else if (typeof raw['contains_match'] === 'string') sm = { kind: 'contains', value: raw['contains_match'] };
  else if (isRecord(raw['safe_regex_match']) && typeof raw['safe_regex_match']['regex'] === 'string') {
    sm = { kind: 'regex', value: raw['safe_regex_match']['regex'] };
  } else if (isRecord(raw['range_match'])) {
    const start = Number(raw['range_match']['start'] ?? 0);
    const end = Number(raw['range_match']['end'] ?? 0);
    // Envoy: the value must be a whole integer in [start, end).
    test = (v) => /^-?\d+$/.test(v) && Number(v) >= start && Number(v) < end;
  } else if (raw['present_match'] !== undefined) {
    presence = raw['present_match'] === true;
  }
  if (typeof sm === 'string') {
    problems.push({ path: `${at}.string_match`, message: sm });
    return null;
  }
  if (sm !== undefined) {
    let p: StringPredicate;
    try {
      p = compileStringMatch(sm);
    } catch (err) {
      problems.push({ path: at, message: (err as Error).message });
      return null;
    }
    test = p;
  }
  // Envoy HeaderUtility::matchHeaders: an absent header fails a value match (even inverted)
  // unless treated as empty; a presence match is inverted by invert_match.
  return (headers) => {
    let value = headers.getJoined(name);
    if (value === undefined) {
      if (test === undefined) return presence === invert;
      if (!missingAsEmpty) return false;
      value = '';
    }
    const matched = test === undefined ? presence : test(value);
    return matched !== invert;
  };
}

// === a request and response without sockets ===

/** Header map with Envoy's matching view: repeated values joined by ",". */
export class HeaderBag implements MutableHeaders {
  readonly #map = new Map<string, string[]>();

  constructor(entries: readonly (readonly [string, string])[] = []) {
    for (const [n, v] of entries) {
      const name = n.toLowerCase();
      const list = this.#map.get(name);
      if (list === undefined) this.#map.set(name, [v]);
      else list.push(v);
    }
  }

  get(name: string): string | undefined {
    return this.#map.get(name.toLowerCase())?.[0];
  }
  getJoined(name: string): string | undefined {
    return this.#map.get(name.toLowerCase())?.join(',');
  }
  set(name: string, value: string): void {
    this.#map.set(name.toLowerCase(), [value]);
  }
  addValue(name: string, value: string): void {
    const n = name.toLowerCase();
    const list = this.#map.get(n);
    if (list === undefined) this.#map.set(n, [value]);
    else list.push(value);
  }
  remove(name: string): void {
    this.#map.delete(name.toLowerCase());
  }
}

/**
 * The tool's stand-in for a request's record, what header values' %COMMAND%s read: the
 * downstream peer and the listener are 127.0.0.1, as in Envoy's tool.
 */
function checkContext(req: CheckRequest, headers: HeaderBag = req.headers): HeaderContext {
  return {
    downstreamRemoteAddress: '127.0.0.1',
    downstreamRemotePort: 0,
    downstreamLocalAddress: '127.0.0.1',
    downstreamLocalPort: 0,
    request: { method: req.method, path: req.path, authority: req.authority, scheme: req.scheme, httpVersion: '1.1', headers },
  };
}

class CheckRequest implements RouteRequest {
  readonly method: string;
  readonly authority: string;
  readonly scheme: string;
  readonly headers: HeaderBag;
  /** The non-pseudo headers as sent, in order. */
  readonly entries: readonly (readonly [string, string])[];
  readonly path: string;
  readonly pathOnly: string;
  readonly query: string;

  constructor(input: RouteCheckInput) {
    this.method = input.method;
    this.authority = input.authority;
    this.scheme = input.ssl ? 'https' : 'http';
    const entries: [string, string][] = [['x-forwarded-proto', this.scheme]];
    if (input.internal) entries.push(['x-envoy-internal', 'true']);
    this.entries = [...entries, ...input.headers];
    this.headers = new HeaderBag(this.entries);
    this.path = input.path;
    const q = input.path.indexOf('?');
    this.pathOnly = q === -1 ? input.path : input.path.slice(0, q);
    this.query = q === -1 ? '' : input.path.slice(q + 1);
  }
}

// === evaluation ===

/** What routing makes of one request; '' where the tool reports nothing. */
export interface RouteOutcome {
  readonly clusterName: string;
  readonly virtualHostName: string;
  readonly virtualClusterName: string;
  readonly pathRewrite: string;
  readonly hostRewrite: string;
  readonly pathRedirect: string;
  /** 0 when the route answers no redirect or direct response. */
  readonly codeRedirect: number;
  /** Route timeout in ms; undefined without a forwarding route. */
  readonly timeoutMs: number | undefined;
  readonly requestHeaders: HeaderBag;
  readonly responseHeaders: HeaderBag;
}

/**
 * Envoy's weighted pick with a given random value: `random % total` against the cumulative
 * weights, in order.
 */
export function pickWeighted(clusters: readonly CompiledWeightedCluster[], randomValue: number): CompiledWeightedCluster {
  if (clusters.length === 1) return clusters[0]!;
  const total = clusters.reduce((s, c) => s + c.weight, 0);
  const v = total === 0 ? 0 : randomValue % total;
  let end = 0;
  for (const c of clusters) {
    end += c.weight;
    if (v < end) return c;
  }
  return clusters[clusters.length - 1]!;
}

/** The virtual host for a lowercase host and the port the authority named (if any). */
export type VirtualHostResolver = (host: string, port: number | undefined) => CompiledVirtualHost | undefined;

export class RouteChecker {
  readonly #resolve: VirtualHostResolver;
  readonly #extras: ReadonlyMap<string, RawVirtualHostExtras>;

  constructor(resolve: VirtualHostResolver, extras: ReadonlyMap<string, RawVirtualHostExtras> = new Map()) {
    this.#resolve = resolve;
    this.#extras = extras;
  }

  /** From a raw Envoy RouteConfiguration; problems non-empty means the config is unusable. */
  static fromRouteConfiguration(rc: unknown): { checker: RouteChecker | null; problems: readonly XdsProblem[] } {
    const translated = translateRouteConfiguration(rc);
    const problems: XdsProblem[] = [...translated.problems];
    const extras = readExtras(rc, problems);
    if (problems.length > 0) return { checker: null, problems };
    return RouteChecker.#compile(translated.config, extras, problems);
  }

  static #compile(rc: RouteConfig, extras: ReadonlyMap<string, RawVirtualHostExtras>, problems: XdsProblem[]) {
    try {
      const table: DomainTable<CompiledVirtualHost> = compileRouteConfig(rc);
      return { checker: new RouteChecker((host) => table.find(host), extras), problems };
    } catch (err) {
      return { checker: null, problems: [...problems, { path: '', message: (err as Error).message }] };
    }
  }

  /** Routes one request as the router would, reporting what the tool compares. */
  evaluate(input: RouteCheckInput): RouteOutcome & { readonly route: CompiledRoute | undefined } {
    const req = new CheckRequest(input);
    const none = {
      clusterName: '',
      virtualHostName: '',
      virtualClusterName: '',
      pathRewrite: '',
      hostRewrite: '',
      pathRedirect: '',
      codeRedirect: 0,
      timeoutMs: undefined,
      requestHeaders: requestHeadersOf(req, req.authority, req.path),
      responseHeaders: new HeaderBag(),
      route: undefined,
    };
    // The router's own reading of Host, so the check resolves exactly as requests do.
    const { host, port } = splitAuthority(input.authority);
    const vhost = this.#resolve(host, port);
    if (vhost === undefined) return none;
    const extras = this.#extras.get(vhost.name);
    const route = vhost.select(req);
    if (route === undefined) return none;
    const action = route.action;
    if (action.kind === 'redirect') {
      const location = action.location(req, port ?? (req.scheme === 'https' ? 443 : 80));
      const response = new HeaderBag([[':status', String(action.status)]]);
      route.responseHeaders?.(response, checkContext(req));
      return { ...none, route, pathRedirect: location, codeRedirect: action.status, responseHeaders: response };
    }
    if (action.kind === 'direct') {
      // As Envoy's local reply: a body brings content-type text/plain and its length.
      const response = new HeaderBag([[':status', String(action.status)]]);
      if (action.body.length > 0) {
        response.set('content-type', 'text/plain');
        response.set('content-length', String(action.body.length));
      }
      if (action.location !== null) response.set('location', action.location(req));
      route.responseHeaders?.(response, checkContext(req));
      return {
        ...none,
        route,
        pathRedirect: `${req.scheme}://${req.authority}${req.path}`,
        codeRedirect: action.status,
        responseHeaders: response,
      };
    }
    return this.#forward(req, vhost, extras, route, action, input.randomValue);
  }

  #forward(
    req: CheckRequest,
    vhost: CompiledVirtualHost,
    extras: RawVirtualHostExtras | undefined,
    route: CompiledRoute,
    action: CompiledForward,
    randomValue: number,
  ): RouteOutcome & { readonly route: CompiledRoute } {
    const target = pickWeighted(action.clusters, randomValue);
    const path = action.rewritePath === null ? req.path : action.rewritePath(req);
    // As the router: the route's host rewrite wins over the weighted cluster's.
    const authority = action.hostRewrite ?? target.hostRewrite ?? req.authority;
    const headers = requestHeadersOf(req, authority, path);
    // As the router: commands read the request headers being sent.
    const context = checkContext(req, headers);
    target.requestHeaders?.(headers, context);
    route.requestHeaders?.(headers, context);
    const response = new HeaderBag([[':status', '200']]);
    target.responseHeaders?.(response, context);
    route.responseHeaders?.(response, context);
    let virtualClusterName = '';
    if (extras !== undefined && extras.virtualClusters.length > 0) {
      // Envoy matches virtual clusters on the request as received; unmatched is "other".
      const original = requestHeadersOf(req, req.authority, req.path);
      virtualClusterName = extras.virtualClusters.find((vc) => vc.headers.every((h) => h(original)))?.name ?? 'other';
    }
    return {
      route,
      clusterName: target.name,
      virtualHostName: vhost.name,
      virtualClusterName,
      pathRewrite: headers.get(':path') ?? path,
      hostRewrite: headers.get(':authority') ?? authority,
      pathRedirect: '',
      codeRedirect: 0,
      timeoutMs: action.timeoutMs,
      requestHeaders: headers,
      responseHeaders: response,
    };
  }

  /** Runs each test, returning the fields that differ. */
  check(tests: readonly RouteCheckTest[]): { results: TestResult[]; problems: XdsProblem[] } {
    const problems: XdsProblem[] = [];
    const results = tests.map((t, i) => {
      const outcome = this.evaluate(t.input);
      const failures = compare(t.validate, outcome, `tests[${i}].validate`, problems);
      return { name: t.name, failures, outcome, routeName: outcome.route?.name };
    });
    return { results, problems };
  }
}

function requestHeadersOf(req: CheckRequest, authority: string, path: string): HeaderBag {
  return new HeaderBag([[':authority', authority], [':path', path], [':method', req.method], ...req.entries]);
}


// === comparison ===

/** Envoy Duration in JSON ("1.5s") or YAML ({seconds, nanos}) form, in ms; undefined if unreadable. */
function durationMs(v: unknown): number | undefined {
  if (typeof v === 'string') {
    const m = /^(\d+(?:\.\d+)?)s$/.exec(v.trim());
    return m === null ? undefined : Math.round(Number(m[1]) * 1000);
  }
  if (isRecord(v)) {
    const s = Number(v['seconds'] ?? 0);
    const n = Number(v['nanos'] ?? 0);
    return Number.isFinite(s) && Number.isFinite(n) ? s * 1000 + Math.round(n / 1e6) : undefined;
  }
  return undefined;
}

function formatMs(ms: number | undefined): string {
  return ms === undefined ? '' : `${ms / 1000}s`;
}

function compare(validate: Readonly<Record<string, unknown>>, o: RouteOutcome, at: string, problems: XdsProblem[]): CheckFailure[] {
  const failures: CheckFailure[] = [];
  const text = (field: string, actual: string): void => {
    const expected = validate[field];
    if (expected === undefined) return;
    const e = typeof expected === 'string' ? expected : String(expected);
    if (e !== actual) failures.push({ field, expected: e, actual });
  };
  text('cluster_name', o.clusterName);
  text('virtual_cluster_name', o.virtualClusterName);
  text('virtual_host_name', o.virtualHostName);
  text('path_rewrite', o.pathRewrite);
  text('host_rewrite', o.hostRewrite);
  text('path_redirect', o.pathRedirect);
  if (validate['code_redirect'] !== undefined) {
    const e = Number(validate['code_redirect']);
    if (e !== o.codeRedirect) failures.push({ field: 'code_redirect', expected: String(validate['code_redirect']), actual: String(o.codeRedirect) });
  }
  if (validate['timeout'] !== undefined) {
    const e = durationMs(validate['timeout']);
    if (e === undefined) problems.push({ path: `${at}.timeout`, message: 'expected a duration such as "15s"' });
    else if (e !== o.timeoutMs) failures.push({ field: 'timeout', expected: formatMs(e), actual: formatMs(o.timeoutMs) });
  }
  const headerChecks = (field: string, bag: HeaderBag, list: unknown): void => {
    if (list === undefined) return;
    if (!Array.isArray(list)) return void problems.push({ path: `${at}.${field}`, message: 'expected a list' });
    list.forEach((m: unknown, i) => {
      const check = compileHeaderCheck(m, `${at}.${field}[${i}]`, problems);
      if (check === null || check(bag)) return;
      const name = (m as { name: string }).name;
      failures.push({ field, expected: describeMatcher(m as Record<string, unknown>), actual: `${name}: ${bag.getJoined(name) ?? '(absent)'}` });
    });
  };
  headerChecks('request_header_matches', o.requestHeaders, validate['request_header_matches']);
  headerChecks('response_header_matches', o.responseHeaders, validate['response_header_matches']);
  // Older forms: {key|field, value} exact matches.
  const legacy = (field: string, bag: HeaderBag): void => {
    const list = validate[field];
    if (list === undefined) return;
    if (!Array.isArray(list)) return void problems.push({ path: `${at}.${field}`, message: 'expected a list' });
    for (const h of list) {
      const key = isRecord(h) ? (h['key'] ?? h['field']) : undefined;
      const value = isRecord(h) ? h['value'] : undefined;
      if (typeof key !== 'string' || typeof value !== 'string') {
        problems.push({ path: `${at}.${field}`, message: 'expected {key, value} strings' });
        continue;
      }
      const actual = bag.getJoined(key) ?? '';
      if (actual !== value) failures.push({ field, expected: `${key}: ${value}`, actual: `${key}: ${actual}` });
    }
  };
  legacy('header_fields', o.requestHeaders);
  legacy('custom_header_fields', o.requestHeaders);
  return failures;
}

function describeMatcher(m: Record<string, unknown>): string {
  const { name, ...rest } = m;
  return `${String(name)} ${JSON.stringify(rest)}`;
}

// === whole run ===

/** Translates `rc`, parses `testsDoc` and runs every test. */
export function runRouteCheck(rc: unknown, testsDoc: unknown): RouteCheckReport {
  const parsed = parseRouteCheckTests(testsDoc);
  const { checker, problems } = RouteChecker.fromRouteConfiguration(rc);
  return runWith(checker, problems, parsed);
}

/**
 * Skiff's own outbound route tables for a model translated from Istio YAML, resolved as the
 * outbound listener does (by the authority's port, else the one port the host is served on).
 * Route names are the VirtualService HTTPRoute names.
 */
export function modelRouteChecker(model: Model): RouteChecker {
  const tables = new RouteTables(model.routeConfigs, model.fallbackRouteConfig);
  return new RouteChecker((host, port) => tables.resolve(host, port).vhost);
}

/** Runs the tests against any resolver (skiff's own route tables for Istio YAML). */
export function runRouteCheckWith(checker: RouteChecker, testsDoc: unknown): RouteCheckReport {
  return runWith(checker, [], parseRouteCheckTests(testsDoc));
}

function runWith(
  checker: RouteChecker | null,
  configProblems: readonly XdsProblem[],
  parsed: { tests: RouteCheckTest[]; problems: XdsProblem[] },
): RouteCheckReport {
  const problems: RouteCheckProblem[] = [
    ...configProblems.map((p) => ({ ...p, source: 'config' as const })),
    ...parsed.problems.map((p) => ({ ...p, source: 'tests' as const })),
  ];
  if (checker === null || problems.length > 0) return { problems, results: [] };
  const { results, problems: checkProblems } = checker.check(parsed.tests);
  return { problems: checkProblems.map((p) => ({ ...p, source: 'tests' as const })), results };
}
