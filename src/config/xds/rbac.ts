/**
 * Envoy RBAC filters → the model's Authorization: `envoy.extensions.filters.http.rbac.v3.RBAC`
 * (checked per request) and `envoy.extensions.filters.network.rbac.v3.RBAC` (checked per
 * connection), as istiod generates them from AuthorizationPolicy
 * (IST:pilot/pkg/security/authz/builder).
 *
 * Contract: as for every xDS translator (fields.ts) — each field is translated, accepted with a
 * reason, or refused with its path; any problem refuses the resource. A policy is translated
 * whole into an Envoy-form `AuthzPolicy.rbac` (Permission/Principal trees kept as they are, so
 * `and_*`, `or_*`, `not_*` nest freely); a matcher skiff cannot evaluate exactly is refused,
 * never dropped, so a filter is enforced as Envoy would enforce it or not accepted at all.
 *
 * One filter fills one list of the Authorization it yields, by its action:
 * - `rules` absent: the filter enforces nothing → every list empty.
 * - ALLOW: allow only when a policy matches → `allow`. With no policies (Istio's deny-all
 *   `rules: {}`) it denies everything: `allow` then holds one policy that matches nothing,
 *   because the model allows everything when `allow` is empty.
 * - DENY: deny when a policy matches → `deny`.
 * - LOG: never changes the decision → `audit` (not evaluated; skiff writes no RBAC log hint).
 * `shadow_rules` (Istio's dry-run policies, and CUSTOM policies' shadow copy) are never
 * enforced by Envoy; their policy names are recorded in `shadow` and their matchers not read.
 *
 * A chain of RBAC filters (Istio: DENY, then ALLOW, then LOG) allows a request iff every filter
 * does: no DENY policy matches and, per ALLOW filter, one of its policies matches. Order does
 * not change that decision. The model's evaluation (compile/authorization.ts: any matching DENY
 * denies; else no ALLOW policy allows; else one ALLOW policy must match) is exactly this when the
 * chain holds at most one enforcing ALLOW filter; `combineRbacFilters` merges a chain's filters
 * and refuses a second ALLOW filter (an AND of ORs the model's single allow list cannot hold).
 */
import { isIP } from 'node:net';
import type { Authorization, AuthzPolicy, RbacMatcher, StringMatch } from '../../model/index.js';
import { FieldReader, isObject, typeName, type Fields, type Spec, type XdsProblem } from './fields.js';

export type RbacAction = 'ALLOW' | 'DENY' | 'AUDIT';

/** A filter's `shadow_rules`: what Envoy would only have recorded (stats, dynamic metadata). */
export interface RbacShadow {
  readonly action: RbacAction;
  /** Policy names, sorted as Envoy evaluates them. */
  readonly policies: readonly string[];
}

export interface RbacResult {
  /** What the filter enforces (see the module comment); absent when there are problems. */
  readonly authorization?: Authorization;
  /** The filter's dry-run policies, recorded only. */
  readonly shadow?: RbacShadow;
  readonly problems: readonly XdsProblem[];
}

export const HTTP_RBAC_TYPE = 'envoy.extensions.filters.http.rbac.v3.RBAC';
export const NETWORK_RBAC_TYPE = 'envoy.extensions.filters.network.rbac.v3.RBAC';

/** The HTTP RBAC filter's typed_config (with or without `@type`). */
export function translateHttpRbac(json: unknown): RbacResult {
  return translate(json, false);
}

/**
 * The network RBAC filter's typed_config (with or without `@type`). HTTP-only matchers (header,
 * url_path, uri_template, request metadata) are refused: istiod never puts them in a network
 * filter, and a connection has none of those attributes.
 */
export function translateNetworkRbac(json: unknown): RbacResult {
  return translate(json, true);
}

/**
 * A filter chain's RBAC filters, in chain order, as one Authorization (see the module comment).
 * `path` names each filter in problems, e.g. `filter_chains[1].filters[2]`.
 */
export function combineRbacFilters(filters: ReadonlyArray<{ readonly path: string; readonly authorization: Authorization }>): {
  readonly authorization?: Authorization;
  readonly problems: readonly XdsProblem[];
} {
  const allowing = filters.filter((f) => f.authorization.allow.length > 0);
  if (allowing.length > 1) {
    return {
      problems: allowing.slice(1).map((f) => ({
        path: f.path,
        message: `a second enforcing ALLOW RBAC filter in one chain (the first is ${allowing[0]!.path}) is not supported: each must allow, which skiff's single allow list cannot express`,
      })),
    };
  }
  return {
    authorization: {
      deny: filters.flatMap((f) => f.authorization.deny),
      allow: filters.flatMap((f) => f.authorization.allow),
      audit: filters.flatMap((f) => f.authorization.audit),
    },
    problems: [],
  };
}

function translate(json: unknown, network: boolean): RbacResult {
  const t = new RbacTranslator(network);
  const out = t.filter(json);
  return t.problems.length === 0 ? { ...out, problems: [] } : { problems: t.problems };
}

// === specs ===

const STATS = 'names stats only';
const SHADOW = 'dry-run policies are never enforced (Envoy only records them); skiff records their names';

const HTTP_RBAC: Spec = {
  handled: ['rules', 'shadow_rules'],
  ignored: {
    '@type': 'the filter type',
    shadow_rules_stat_prefix: STATS,
    rules_stat_prefix: STATS,
    track_per_rule_stats: STATS,
    shadow_matcher: SHADOW,
  },
  refused: { matcher: 'the unified matcher API is not supported; use rules' },
};
const NETWORK_RBAC: Spec = {
  handled: ['rules', 'shadow_rules'],
  ignored: {
    '@type': 'the filter type',
    stat_prefix: STATS,
    shadow_rules_stat_prefix: STATS,
    shadow_matcher: SHADOW,
    enforcement_type:
      'skiff checks a connection when it is accepted, before its first byte, and again after each config change; CONTINUOUS differs only for dynamic metadata, which skiff’s matchers never read',
  },
  refused: { matcher: 'the unified matcher API is not supported; use rules', delay_deny: 'skiff closes a denied connection at once' },
};
const RULES: Spec = {
  handled: ['action', 'policies'],
  ignored: { audit_logging_options: 'skiff writes no RBAC audit log' },
};
const POLICY: Spec = {
  handled: ['permissions', 'principals'],
  refused: { condition: 'CEL conditions are not supported', checked_condition: 'CEL conditions are not supported', cel_config: 'CEL conditions are not supported' },
};
const PERMISSION: Spec = {
  handled: [
    'and_rules', 'or_rules', 'any', 'header', 'url_path', 'destination_ip', 'destination_port', 'destination_port_range',
    'metadata', 'not_rule', 'requested_server_name', 'uri_template',
  ],
  refused: { matcher: 'custom permission matchers are not supported' },
};
const PRINCIPAL: Spec = {
  handled: [
    'and_ids', 'or_ids', 'any', 'authenticated', 'source_ip', 'direct_remote_ip', 'remote_ip', 'header', 'url_path',
    'metadata', 'filter_state', 'not_id',
  ],
  refused: { custom: 'custom principal matchers are not supported', sourced_metadata: 'metadata from other sources is not supported' },
};
const PERMISSION_SET: Spec = { handled: ['rules'] };
const PRINCIPAL_SET: Spec = { handled: ['ids'] };
const AUTHENTICATED: Spec = { handled: ['principal_name'] };
const CIDR_RANGE: Spec = { handled: ['address_prefix', 'prefix_len'] };
const PATH_MATCHER: Spec = { handled: ['path'] };
const INT64_RANGE: Spec = { handled: ['start', 'end'] };
const METADATA_MATCHER: Spec = { handled: ['filter', 'path', 'value', 'invert'] };
const PATH_SEGMENT: Spec = { handled: ['key'] };
const VALUE_MATCHER: Spec = {
  handled: ['string_match', 'list_match'],
  refused: {
    null_match: 'Istio metadata holds no nulls',
    double_match: 'Istio metadata holds no numbers skiff matches',
    bool_match: 'Istio metadata holds no booleans skiff matches',
    present_match: 'metadata presence is not supported',
    or_match: 'not supported',
  },
};
const LIST_MATCHER: Spec = { handled: ['one_of'] };
const FILTER_STATE: Spec = { handled: ['key', 'string_match'] };
const TYPED_EXTENSION: Spec = { handled: ['name', 'typed_config'] };
const URI_TEMPLATE_CONFIG: Spec = { handled: ['path_template'] };
const ACTIONS = ['ALLOW', 'DENY', 'LOG'] as const;
const URI_TEMPLATE_TYPE = 'envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig';
/** The dynamic metadata namespace istiod's RBAC reads the request's authentication from. */
const ISTIO_AUTHN = 'istio_authn';
/** The filter state key holding the peer principal (Istio ≥ 1.20's RBAC, instead of `authenticated`). */
const PEER_PRINCIPAL_KEY = 'io.istio.peer_principal';
/** The policy that stands for an ALLOW filter with no policies: it never matches. */
const NO_POLICY = '(no policies: deny all)';
/** RFC 3986 pchar, what a path template's literal segments may hold (as Istio checks them). */
const LITERAL_SEGMENT = /^[a-zA-Z0-9\-._~%!$&'()+,;:@=]+$/;

// === impl RbacTranslator ===

class RbacTranslator extends FieldReader {
  readonly #network: boolean;

  constructor(network: boolean) {
    super();
    this.#network = network;
  }

  filter(json: unknown): { authorization: Authorization; shadow?: RbacShadow } {
    if (isObject(json) && typeof json['@type'] === 'string') {
      const expected = this.#network ? NETWORK_RBAC_TYPE : HTTP_RBAC_TYPE;
      if (typeName(json['@type']) !== expected) this.problem('@type', `expected ${expected}`);
    }
    const f = this.message(json, '', this.#network ? NETWORK_RBAC : HTTP_RBAC);
    const shadow = f.has('shadow_rules') ? this.#shadow(f.get('shadow_rules')) : undefined;
    const authorization: Authorization = f.has('rules') ? this.#rules(f.get('rules'), 'rules') : { deny: [], allow: [], audit: [] };
    return { authorization, ...(shadow !== undefined ? { shadow } : {}) };
  }

  #rules(v: unknown, path: string): Authorization {
    const f = this.message(v, path, RULES);
    const action = this.enum(f.get('action'), `${path}.action`, ACTIONS) ?? 0;
    const policies = this.#policies(f.get('policies'), `${path}.policies`);
    if (action === 0) return { deny: [], allow: policies.length > 0 ? policies : [{ name: NO_POLICY, rules: [] }], audit: [] };
    if (action === 1) return { deny: policies, allow: [], audit: [] };
    return { deny: [], allow: [], audit: policies };
  }

  /** Envoy keeps policies in a std::map: evaluated (and the first match reported) in name order. */
  #policies(v: unknown, path: string): AuthzPolicy[] {
    if (v === undefined) return [];
    if (!isObject(v)) {
      this.problem(path, 'must be a map of policy name to policy');
      return [];
    }
    return Object.keys(v)
      .sort()
      .map((name) => {
        const at = `${path}[${JSON.stringify(name)}]`;
        const f = this.message(v[name], at, POLICY);
        const permissions = this.#nonEmpty(f.get('permissions'), `${at}.permissions`, (p, i) => this.#permission(p, i));
        const principals = this.#nonEmpty(f.get('principals'), `${at}.principals`, (p, i) => this.#principal(p, i));
        return { name, rules: [], rbac: { permissions, principals } };
      });
  }

  #shadow(v: unknown): RbacShadow | undefined {
    // Read leniently: nothing here is enforced, so nothing here can refuse the filter.
    if (!isObject(v)) return undefined;
    const raw = v['action'];
    const action = (typeof raw === 'number' ? ACTIONS[raw] : ACTIONS.find((a) => a === raw)) ?? 'ALLOW';
    const policies = isObject(v['policies']) ? Object.keys(v['policies']).sort() : [];
    return { action: action === 'LOG' ? 'AUDIT' : action, policies };
  }

  /** A repeated field Envoy requires non-empty (validate min_items: 1). */
  #nonEmpty(v: unknown, path: string, item: (v: unknown, path: string) => RbacMatcher | undefined): RbacMatcher[] {
    const items = this.list(v, path);
    if (items.length === 0) {
      this.problem(path, 'at least one is required');
      return [];
    }
    return items.flatMap((x, i) => item(x, `${path}[${i}]`) ?? []);
  }

  /** The one field set in a oneof, or a problem. */
  #oneOf(f: Fields, path: string, what: string): string | undefined {
    const set = [...f.keys()];
    if (set.length === 1) return set[0];
    this.problem(path, set.length === 0 ? `${what} must set one rule` : `${what} sets more than one of ${set.join(', ')}`);
    return undefined;
  }

  #httpOnly(path: string): void {
    if (this.#network) this.problem(path, 'an HTTP attribute in a network RBAC filter is not supported (a connection has no request)');
  }

  // --- permissions ---

  #permission(v: unknown, path: string): RbacMatcher | undefined {
    const f = this.message(v, path, PERMISSION);
    const kind = this.#oneOf(f, path, 'a permission');
    if (kind === undefined) return undefined;
    const value = f.get(kind);
    const at = `${path}.${kind}`;
    switch (kind) {
      case 'and_rules':
      case 'or_rules': {
        const set = this.message(value, at, PERMISSION_SET);
        const of = this.#nonEmpty(set.get('rules'), `${at}.rules`, (p, i) => this.#permission(p, i));
        return { kind: kind === 'and_rules' ? 'and' : 'or', of };
      }
      case 'not_rule': {
        const of = this.#permission(value, at);
        return of === undefined ? undefined : { kind: 'not', of };
      }
      case 'destination_port': {
        const port = this.uint(value, at);
        if (port === undefined) return undefined;
        if (port > 65535) this.problem(at, 'must be a port (0-65535)');
        return { kind: 'port', start: port, end: port + 1 };
      }
      case 'destination_port_range': {
        const r = this.message(value, at, INT64_RANGE);
        const start = this.uint(r.get('start') ?? 0, `${at}.start`);
        const end = this.uint(r.get('end') ?? 0, `${at}.end`);
        if (start === undefined || end === undefined) return undefined;
        if (start > end) this.problem(at, 'start must not exceed end');
        return { kind: 'port', start, end };
      }
      case 'destination_ip':
        return this.#cidr(value, at, 'destination');
      case 'requested_server_name': {
        const match = this.stringMatcher(value, at);
        return match === undefined ? undefined : { kind: 'sni', match };
      }
      case 'uri_template':
        return this.#uriTemplate(value, at);
      default:
        return this.#common(kind, value, at);
    }
  }

  /** Envoy's uri_template matcher, in the forms Istio emits for path templates (`{*}`, `{**}`). */
  #uriTemplate(v: unknown, path: string): RbacMatcher | undefined {
    this.#httpOnly(path);
    const f = this.message(v, path, TYPED_EXTENSION);
    const config = this.any(f.get('typed_config'), `${path}.typed_config`);
    if (config === undefined) return undefined;
    if (typeName(config.typeUrl) !== URI_TEMPLATE_TYPE) {
      this.problem(`${path}.typed_config`, `only ${URI_TEMPLATE_TYPE} is supported`);
      return undefined;
    }
    const c = this.message(config.body, `${path}.typed_config`, URI_TEMPLATE_CONFIG);
    const at = `${path}.typed_config.path_template`;
    const template = this.string(c.get('path_template'), at);
    if (template === undefined || !template.startsWith('/')) {
      this.problem(at, 'a path template starting with "/" is required');
      return undefined;
    }
    // Named variables (`{name}`, `{name=*}`) bind nothing an RBAC decision reads, but their
    // grammar is Envoy's; skiff evaluates only Istio's operators.
    let sawAny = false;
    for (const segment of template.slice(1).split('/')) {
      if (segment === '{*}' || segment === '{**}') {
        if (sawAny) this.problem(at, '{**} must be the last operator');
        sawAny ||= segment === '{**}';
      } else if (!LITERAL_SEGMENT.test(segment)) {
        this.problem(at, `segment ${JSON.stringify(segment)} is not supported: only literal segments, {*} and {**}`);
      }
    }
    return { kind: 'pathTemplate', template };
  }

  // --- principals ---

  #principal(v: unknown, path: string): RbacMatcher | undefined {
    const f = this.message(v, path, PRINCIPAL);
    const kind = this.#oneOf(f, path, 'a principal');
    if (kind === undefined) return undefined;
    const value = f.get(kind);
    const at = `${path}.${kind}`;
    switch (kind) {
      case 'and_ids':
      case 'or_ids': {
        const set = this.message(value, at, PRINCIPAL_SET);
        const of = this.#nonEmpty(set.get('ids'), `${at}.ids`, (p, i) => this.#principal(p, i));
        return { kind: kind === 'and_ids' ? 'and' : 'or', of };
      }
      case 'not_id': {
        const of = this.#principal(value, at);
        return of === undefined ? undefined : { kind: 'not', of };
      }
      case 'authenticated': {
        const a = this.message(value, at, AUTHENTICATED);
        if (!a.has('principal_name')) return { kind: 'peer' };
        const match = this.stringMatcher(a.get('principal_name'), `${at}.principal_name`);
        return match === undefined ? undefined : { kind: 'peer', match };
      }
      // source_ip is the deprecated name of direct_remote_ip.
      case 'source_ip':
      case 'direct_remote_ip':
        return this.#cidr(value, at, 'source');
      case 'remote_ip':
        return this.#cidr(value, at, 'remote');
      case 'filter_state': {
        const s = this.message(value, at, FILTER_STATE);
        const key = this.string(s.get('key'), `${at}.key`);
        if (key !== PEER_PRINCIPAL_KEY) {
          this.problem(`${at}.key`, `only ${PEER_PRINCIPAL_KEY} (the peer principal) is supported`);
          return undefined;
        }
        const match = this.stringMatcher(s.get('string_match'), `${at}.string_match`);
        return match === undefined ? undefined : { kind: 'peer', match };
      }
      default:
        return this.#common(kind, value, at);
    }
  }

  // --- matchers shared by permissions and principals ---

  #common(kind: string, value: unknown, path: string): RbacMatcher | undefined {
    switch (kind) {
      case 'any':
        // Envoy validates `any` as const true.
        if (this.bool(value, path) !== true) this.problem(path, 'must be true');
        return { kind: 'any' };
      case 'header': {
        this.#httpOnly(path);
        const header = this.headerMatcher(value, path);
        return header === undefined ? undefined : { kind: 'header', header };
      }
      case 'url_path': {
        this.#httpOnly(path);
        const p = this.message(value, path, PATH_MATCHER);
        if (!p.has('path')) {
          this.problem(`${path}.path`, 'required');
          return undefined;
        }
        const match = this.stringMatcher(p.get('path'), `${path}.path`);
        return match === undefined ? undefined : { kind: 'path', match };
      }
      case 'metadata':
        return this.#metadata(value, path);
    }
    this.problem(path, 'unknown field');
    return undefined;
  }

  #cidr(v: unknown, path: string, of: 'source' | 'remote' | 'destination'): RbacMatcher | undefined {
    const c = this.message(v, path, CIDR_RANGE);
    const address = this.string(c.get('address_prefix'), `${path}.address_prefix`);
    const bits = this.uint(c.get('prefix_len') ?? 0, `${path}.prefix_len`);
    if (address === undefined || bits === undefined) {
      if (address === undefined) this.problem(`${path}.address_prefix`, 'required');
      return undefined;
    }
    const family = isIP(address);
    if (family === 0) {
      this.problem(`${path}.address_prefix`, `invalid IP address ${JSON.stringify(address)}`);
      return undefined;
    }
    if (bits > (family === 4 ? 32 : 128)) {
      this.problem(`${path}.prefix_len`, `must be at most ${family === 4 ? 32 : 128}`);
      return undefined;
    }
    return { kind: 'ip', of, cidr: `${address}/${bits}` };
  }

  /**
   * Istio's request authentication in dynamic metadata (`filter: istio_authn`):
   * `request.auth.principal` (string), `request.auth.audiences` / `request.auth.presenter` (the
   * `aud` / `azp` claims) and `request.auth.claims` + claim path (a list of strings, or a string).
   */
  #metadata(v: unknown, path: string): RbacMatcher | undefined {
    this.#httpOnly(path);
    const m = this.message(v, path, METADATA_MATCHER);
    const filter = this.string(m.get('filter'), `${path}.filter`);
    if (filter !== ISTIO_AUTHN) {
      this.problem(`${path}.filter`, `only Istio's request authentication (${ISTIO_AUTHN}) is supported`);
      return undefined;
    }
    const keys = this.list(m.get('path'), `${path}.path`).map((s, i) => {
      const seg = this.message(s, `${path}.path[${i}]`, PATH_SEGMENT);
      return this.string(seg.get('key'), `${path}.path[${i}].key`) ?? '';
    });
    const invert = this.bool(m.get('invert'), `${path}.invert`) ?? false;
    const at = `${path}.value`;
    let leaf: RbacMatcher | undefined;
    const [first, ...rest] = keys;
    if (first === 'request.auth.principal' && rest.length === 0) {
      const match = this.#valueString(m.get('value'), at, false);
      if (match !== undefined) leaf = { kind: 'requestPrincipal', match };
    } else if ((first === 'request.auth.audiences' || first === 'request.auth.presenter') && rest.length === 0) {
      const match = this.#valueString(m.get('value'), at, true);
      if (match !== undefined) leaf = { kind: 'claim', path: [first === 'request.auth.audiences' ? 'aud' : 'azp'], match };
    } else if (first === 'request.auth.claims' && rest.length > 0 && rest.every((k) => k !== '')) {
      const match = this.#valueString(m.get('value'), at, true);
      if (match !== undefined) leaf = { kind: 'claim', path: rest, match };
    } else {
      this.problem(`${path}.path`, `unsupported ${ISTIO_AUTHN} key ${JSON.stringify(keys.join('.'))}: expected request.auth.principal, request.auth.audiences, request.auth.presenter or request.auth.claims with a claim name`);
    }
    if (leaf === undefined) return undefined;
    return invert ? { kind: 'not', of: leaf } : leaf;
  }

  /**
   * A ValueMatcher that compares strings: `string_match`, or (`list` allowed) `list_match` with
   * `one_of.string_match`. A claim leaf accepts a string claim or a list of them either way.
   */
  #valueString(v: unknown, path: string, list: boolean): StringMatch | undefined {
    const f = this.message(v, path, VALUE_MATCHER);
    if (f.has('string_match') === f.has('list_match')) {
      this.problem(path, list ? 'exactly one of string_match or list_match is required' : 'string_match is required');
      return undefined;
    }
    if (f.has('string_match')) return this.stringMatcher(f.get('string_match'), `${path}.string_match`);
    if (!list) {
      this.problem(`${path}.list_match`, 'not supported: the value is a string');
      return undefined;
    }
    const l = this.message(f.get('list_match'), `${path}.list_match`, LIST_MATCHER);
    const one = this.message(l.get('one_of'), `${path}.list_match.one_of`, VALUE_MATCHER);
    if (!one.has('string_match') || one.has('list_match')) {
      this.problem(`${path}.list_match.one_of`, 'string_match is required');
      return undefined;
    }
    return this.stringMatcher(one.get('string_match'), `${path}.list_match.one_of.string_match`);
  }
}
