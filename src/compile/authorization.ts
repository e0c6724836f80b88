/**
 * Compiled AuthorizationPolicy: Istio's RBAC semantics as Envoy enforces the filters istiod
 * generates (IST:pilot/pkg/security/authz/{model,matcher}). Every matcher — string forms, path
 * templates, principal regexes, CIDR sets — is built here, once per snapshot; `check` only reads.
 *
 * Decision: any matching DENY policy denies; otherwise no ALLOW policy allows; otherwise an ALLOW
 * policy must match. AUDIT policies never change the decision (and are not evaluated).
 *
 * HTTP-only fields (hosts, methods, paths, requestPrincipals, `request.*` conditions) on a TCP
 * connection, as istiod builds the TCP filter: in a DENY (or AUDIT) rule the field is dropped, so
 * the rest of the rule decides (deny is wider); in an ALLOW rule the whole rule is dropped, so it
 * never matches (allow is narrower).
 *
 * Identity fields on a connection without a peer certificate (plaintext): `principals`,
 * `namespaces`, `serviceAccounts` and their conditions never match; their `notX` forms therefore
 * always match (Envoy's `not_id` of a principal matcher that fails without TLS).
 *
 * Envoy RBAC policies (`AuthzPolicy.rbac`, from xDS) compile to the same predicates, with
 * Envoy's semantics on HTTP and TCP alike (see RbacMatcher).
 */
import { BlockList, isIP } from 'node:net';
import { compileFullMatch } from '../core/re2.js';
import type { Authorization, AuthzCondition, AuthzField, AuthzOperation, AuthzPolicy, AuthzRule, AuthzSource, HeaderMatch, RbacMatcher, RbacPolicy } from '../model/index.js';
import { asciiLowerCase, compileStringMatch, utf8ByteString } from './string-matcher.js';

export interface AuthzAttributes {
  /** The connection's peer address. */
  readonly sourceIp: string;
  /** The original client address (from X-Forwarded-For with trusted proxies); the peer address, as Istio's default numTrustedProxies is 0. */
  readonly remoteIp: string;
  /**
   * Envoy's principal name of the peer certificate: its URI SAN (in the mesh a SPIFFE URI,
   * `spiffe://td/ns/NS/sa/SA`), else its DNS SAN, else its subject; undefined over plaintext.
   * Istio writes policy principals without `spiffe://` and matches them with it, so an identity
   * that is not a SPIFFE URI only ever matches the presence pattern `*`.
   */
  readonly principal: string | undefined;
  readonly destinationIp: string;
  readonly destinationPort: number;
  readonly sni?: string;
  /** Undefined for TCP connections. */
  readonly http?: {
    readonly method: string;
    /** Without the query. */
    readonly path: string;
    readonly host: string;
    header(name: string): string | undefined;
  };
  /** JWT request principal `iss/sub`; undefined without a validated token. */
  readonly requestPrincipal?: string;
  readonly claims?: Readonly<Record<string, unknown>>;
}


export interface AuthzDecision {
  readonly allowed: boolean;
  /** The DENY policy that denied, or the ALLOW policy that allowed (`ns.name`). */
  readonly policy?: string;
}

export interface CompiledAuthorization {
  /** False when no DENY or ALLOW policy applies: every check allows. */
  readonly enabled: boolean;
  check(attrs: AuthzAttributes): AuthzDecision;
}

type Pred = (a: AuthzAttributes) => boolean;
type StringPred = (s: string | undefined) => boolean;

/** A compiled field or condition; `httpOnly` ones are treated specially on TCP (see above). */
interface Term {
  readonly httpOnly: boolean;
  readonly test: Pred;
}

const ALWAYS: Pred = () => true;
const NEVER: Pred = () => false;

function all(preds: readonly Pred[]): Pred {
  if (preds.length === 0) return ALWAYS;
  if (preds.length === 1) return preds[0]!;
  return (a) => {
    for (const p of preds) if (!p(a)) return false;
    return true;
  };
}

function some(preds: readonly Pred[]): Pred {
  if (preds.length === 0) return NEVER;
  if (preds.length === 1) return preds[0]!;
  return (a) => {
    for (const p of preds) if (p(a)) return true;
    return false;
  };
}

// === string matching ===

interface StringOptions {
  /** `*` means "present" (Envoy present_match, headers) or "non-empty" (regex `.+`, elsewhere). */
  readonly star: 'present' | 'nonEmpty';
  readonly ignoreCase?: boolean;
  /** Compare in the wire's byte-string form (values read from HTTP heads). */
  readonly bytes?: boolean;
}

/** Istio's string forms (matcher.StringMatcher): `*`, `*suffix`, `prefix*`, exact — checked in that order. */
function stringMatch(value: string, o: StringOptions): StringPred {
  if (value === '*') return o.star === 'present' ? (s) => s !== undefined : (s) => s !== undefined && s !== '';
  const raw = value.startsWith('*') ? value.slice(1) : value.endsWith('*') ? value.slice(0, -1) : value;
  const bytes = o.bytes ? utf8ByteString(raw) : raw;
  const v = o.ignoreCase ? asciiLowerCase(bytes) : bytes;
  const fold = o.ignoreCase ? asciiLowerCase : (s: string): string => s;
  if (value.startsWith('*')) return (s) => s !== undefined && fold(s).endsWith(v);
  if (value.endsWith('*')) return (s) => s !== undefined && fold(s).startsWith(v);
  return (s) => s !== undefined && fold(s) === v;
}

/** A field: one of `values` (when any) and none of `notValues`. */
function fieldTerm(f: AuthzField, httpOnly: boolean, compile: (v: string) => Pred): Term {
  const yes = some(f.values.map(compile));
  const no = some(f.notValues.map(compile));
  const test: Pred = f.values.length === 0 ? (a) => !no(a) : f.notValues.length === 0 ? yes : (a) => yes(a) && !no(a);
  return { httpOnly, test };
}

// === identities ===

const SPIFFE = 'spiffe://';

/** Istio srcPrincipalGenerator: `spiffe://` + the value, matched against the peer's principal name. */
function principalPred(value: string): Pred {
  if (value === '*') return (a) => a.principal !== undefined && a.principal !== '';
  if (value.startsWith('*')) {
    // Istio emits the regex `spiffe://.*<rest>` without escaping <rest>; Envoy runs it as RE2.
    const re = compileFullMatch(`${SPIFFE}.*${value.slice(1)}`);
    return (a) => a.principal !== undefined && re.test(a.principal);
  }
  const m = stringMatch(SPIFFE + value, { star: 'nonEmpty' });
  return (a) => m(a.principal);
}

/** Istio srcNamespaceGenerator: the regex `.*\/ns/<value, * as .*>/.*` over the principal name. */
function namespacePred(value: string): Pred {
  const re = compileFullMatch(`.*/ns/${value.replaceAll('*', '.*')}/.*`);
  return (a) => a.principal !== undefined && re.test(a.principal);
}

/** Istio srcServiceAccountGenerator (`ns/sa`): trust domain and extra segments ignored. */
function serviceAccountPred(value: string): Pred {
  const slash = value.indexOf('/');
  const re = compileFullMatch(`spiffe://.+/ns/${value.slice(0, slash)}/(.+/|)sa/${value.slice(slash + 1)}(/.+)?`);
  return (a) => a.principal !== undefined && re.test(a.principal);
}

// === JWT ===

function claim(a: AuthzAttributes, path: readonly string[]): unknown {
  let v: unknown = a.claims;
  for (const k of path) {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
    v = (v as Record<string, unknown>)[k];
  }
  return v;
}

/** A string claim, or a list of strings of which one must match (other types never match). */
function claimPred(path: readonly string[], value: string): Pred {
  const m = stringMatch(value, { star: 'nonEmpty' });
  return (a) => {
    const v = claim(a, path);
    if (typeof v === 'string') return m(v);
    if (Array.isArray(v)) return v.some((x) => typeof x === 'string' && m(x));
    return false;
  };
}

function issuerAndSubject(a: AuthzAttributes): [string, string] | undefined {
  const p = a.requestPrincipal;
  if (p === undefined) return undefined;
  const iss = a.claims?.['iss'];
  const sub = a.claims?.['sub'];
  if (typeof iss === 'string' && typeof sub === 'string') return [iss, sub];
  const slash = p.lastIndexOf('/');
  return slash < 0 ? [p, ''] : [p.slice(0, slash), p.slice(slash + 1)];
}

/** Istio requestPrincipalGenerator: `iss/sub` split at the last `/`, each side matched on its claim. */
function requestPrincipalPred(value: string): Pred {
  const any: StringPred = (s) => s !== undefined && s !== '';
  const exact = (v: string): StringPred => (s) => s === v;
  const idx = value.lastIndexOf('/');
  const found = idx >= 0;
  const iss = found ? value.slice(0, idx) : value;
  const sub = found ? value.slice(idx + 1) : '';
  let matchIss: StringPred;
  let matchSub: StringPred;
  if (value === '*') {
    matchIss = any;
    matchSub = any;
  } else if (value.startsWith('*')) {
    if (found) {
      const suffix = iss.slice(1);
      matchIss = iss === '*' ? any : (s) => s !== undefined && s.endsWith(suffix);
      matchSub = exact(sub);
    } else {
      const suffix = value.slice(1);
      matchIss = any;
      matchSub = (s) => s !== undefined && s.endsWith(suffix);
    }
  } else if (value.endsWith('*')) {
    if (found) {
      const prefix = sub.slice(0, -1);
      matchIss = exact(iss);
      matchSub = sub === '*' ? any : (s) => s !== undefined && s.startsWith(prefix);
    } else {
      const prefix = value.slice(0, -1);
      matchIss = (s) => s !== undefined && s.startsWith(prefix);
      matchSub = any;
    }
  } else {
    matchIss = exact(iss);
    matchSub = exact(sub);
  }
  return (a) => {
    const id = issuerAndSubject(a);
    return id !== undefined && matchIss(id[0]) && matchSub(id[1]);
  };
}

// === addresses ===

/** `::ffff:a.b.c.d` → `a.b.c.d`, so dual-stack sockets compare like IPv4 ones. */
function unmapped(ip: string): string {
  return ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
}

function blockList(values: readonly string[]): (ip: string) => boolean {
  const list = new BlockList();
  for (const v of values) {
    const slash = v.indexOf('/');
    const address = unmapped(slash < 0 ? v : v.slice(0, slash));
    const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
    if (slash < 0) list.addAddress(address, family);
    else list.addSubnet(address, Number(v.slice(slash + 1)), family);
  }
  return (ip) => {
    const address = unmapped(ip);
    const family = isIP(address);
    return family !== 0 && list.check(address, family === 6 ? 'ipv6' : 'ipv4');
  };
}

/** CIDR sets are built once per field, not per value. */
function ipTerm(f: AuthzField, ip: (a: AuthzAttributes) => string): Term {
  const yes = f.values.length === 0 ? undefined : blockList(f.values);
  const no = f.notValues.length === 0 ? undefined : blockList(f.notValues);
  return { httpOnly: false, test: (a) => (yes === undefined || yes(ip(a))) && (no === undefined || !no(ip(a))) };
}

// === paths ===

const PCHAR = "a-zA-Z0-9\\-._~%!$&'()+,;:@=";

/** Envoy uri_template as Istio emits it: `{*}` one non-empty segment, `{**}` any (possibly empty) remainder. */
function pathTemplate(template: string): RegExp {
  const source = template
    .split(/(\{\*\*\}|\{\*\})/)
    .map((part) => (part === '{**}' ? `[${PCHAR}/]*` : part === '{*}' ? `[${PCHAR}]+` : part.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')))
    .join('');
  return new RegExp(`^${source}$`);
}

function pathPred(value: string): Pred {
  if (value.includes('{*}') || value.includes('{**}')) {
    const re = pathTemplate(value);
    return (a) => a.http !== undefined && re.test(a.http.path);
  }
  const m = stringMatch(value, { star: 'nonEmpty', bytes: true });
  return (a) => a.http !== undefined && m(a.http.path);
}

// === sources, operations, conditions ===

function sourceTerms(s: AuthzSource): Term[] {
  const terms: Term[] = [];
  if (s.principals) terms.push(fieldTerm(s.principals, false, principalPred));
  if (s.requestPrincipals) terms.push(fieldTerm(s.requestPrincipals, true, requestPrincipalPred));
  if (s.namespaces) terms.push(fieldTerm(s.namespaces, false, namespacePred));
  if (s.serviceAccounts) terms.push(fieldTerm(s.serviceAccounts, false, serviceAccountPred));
  if (s.ipBlocks) terms.push(ipTerm(s.ipBlocks, (a) => a.sourceIp));
  if (s.remoteIpBlocks) terms.push(ipTerm(s.remoteIpBlocks, (a) => a.remoteIp));
  return terms;
}

function operationTerms(o: AuthzOperation): Term[] {
  const terms: Term[] = [];
  if (o.hosts) {
    terms.push(
      fieldTerm(o.hosts, true, (v) => {
        const m = stringMatch(v, { star: 'present', ignoreCase: true, bytes: true });
        return (a) => a.http !== undefined && m(a.http.host);
      }),
    );
  }
  if (o.ports) terms.push(fieldTerm(o.ports, false, (v) => { const n = Number(v); return (a) => a.destinationPort === n; }));
  if (o.methods) {
    terms.push(
      fieldTerm(o.methods, true, (v) => {
        const m = stringMatch(v, { star: 'present', bytes: true });
        return (a) => a.http !== undefined && m(a.http.method);
      }),
    );
  }
  if (o.paths) terms.push(fieldTerm(o.paths, true, pathPred));
  return terms;
}

function conditionTerm(c: AuthzCondition): Term {
  const f: AuthzField = { values: c.values, notValues: c.notValues };
  const k = c.key;
  switch (k) {
    case 'source.ip':
      return ipTerm(f, (a) => a.sourceIp);
    case 'remote.ip':
      return ipTerm(f, (a) => a.remoteIp);
    case 'destination.ip':
      return ipTerm(f, (a) => a.destinationIp);
    case 'destination.port':
      return fieldTerm(f, false, (v) => { const n = Number(v); return (a) => a.destinationPort === n; });
    case 'connection.sni':
      return fieldTerm(f, false, (v) => { const m = stringMatch(v, { star: 'nonEmpty' }); return (a) => m(a.sni); });
    case 'source.principal':
      return fieldTerm(f, false, principalPred);
    case 'source.namespace':
      return fieldTerm(f, false, namespacePred);
    case 'source.serviceAccount':
      return fieldTerm(f, false, serviceAccountPred);
    case 'request.auth.principal':
      return fieldTerm(f, true, requestPrincipalPred);
    case 'request.auth.audiences':
      return fieldTerm(f, true, (v) => claimPred(['aud'], v));
    case 'request.auth.presenter':
      return fieldTerm(f, true, (v) => claimPred(['azp'], v));
  }
  if (k.startsWith('request.headers[') && k.endsWith(']')) {
    const name = k.slice('request.headers['.length, -1).toLowerCase();
    return fieldTerm(f, true, (v) => {
      const m = stringMatch(v, { star: 'present', bytes: true });
      return (a) => a.http !== undefined && m(a.http.header(name));
    });
  }
  if (k.startsWith('request.auth.claims[') && k.endsWith(']')) {
    const path = [...k.slice('request.auth.claims'.length).matchAll(/\[([^[\]]+)\]/g)].map((x) => x[1]!);
    return fieldTerm(f, true, (v) => claimPred(path, v));
  }
  // Config validation refuses every other key. Ignoring one could fail open, so refuse to compile.
  throw new Error(`authorization condition key ${JSON.stringify(k)} is not supported`);
}

// === Envoy RBAC matchers (xDS) ===

/** Envoy HeaderUtility::matchHeaders over the request's headers; a TCP connection has none. */
function rbacHeaderPred(h: HeaderMatch): Pred {
  const name = h.name.toLowerCase();
  const test = h.match === undefined ? undefined : compileStringMatch(h.match);
  const { invert, treatMissingAsEmpty } = h;
  const read = name === 'host' ? (a: AuthzAttributes): string | undefined => a.http?.host : (a: AuthzAttributes): string | undefined => a.http?.header(name);
  return (a) => {
    let value = read(a);
    if (value === undefined) {
      if (!treatMissingAsEmpty) return test === undefined ? invert : false;
      value = '';
    }
    return (test === undefined || test(value)) !== invert;
  };
}

function rbacPred(m: RbacMatcher): Pred {
  switch (m.kind) {
    case 'any':
      return ALWAYS;
    case 'and':
      return all(m.of.map(rbacPred));
    case 'or':
      return some(m.of.map(rbacPred));
    case 'not': {
      const p = rbacPred(m.of);
      return (a) => !p(a);
    }
    case 'header':
      return rbacHeaderPred(m.header);
    case 'path': {
      const test = compileStringMatch(m.match);
      return (a) => a.http !== undefined && test(a.http.path);
    }
    case 'pathTemplate': {
      const re = pathTemplate(m.template);
      return (a) => a.http !== undefined && re.test(a.http.path);
    }
    case 'ip': {
      const inRange = blockList([m.cidr]);
      if (m.of === 'source') return (a) => inRange(a.sourceIp);
      if (m.of === 'remote') return (a) => inRange(a.remoteIp);
      return (a) => inRange(a.destinationIp);
    }
    case 'port': {
      const { start, end } = m;
      return (a) => a.destinationPort >= start && a.destinationPort < end;
    }
    case 'sni': {
      const test = compileStringMatch(m.match);
      return (a) => test(a.sni ?? '');
    }
    case 'peer': {
      if (m.match === undefined) return (a) => a.principal !== undefined;
      const test = compileStringMatch(m.match);
      return (a) => a.principal !== undefined && test(a.principal);
    }
    case 'requestPrincipal': {
      const test = compileStringMatch(m.match);
      return (a) => a.requestPrincipal !== undefined && test(a.requestPrincipal);
    }
    case 'claim': {
      const test = compileStringMatch(m.match);
      const path = m.path;
      return (a) => {
        const v = claim(a, path);
        if (typeof v === 'string') return test(v);
        if (Array.isArray(v)) return v.some((x) => typeof x === 'string' && test(x));
        return false;
      };
    }
  }
}

/** One permission and one principal. */
function rbacPolicyPred(p: RbacPolicy): Pred {
  return all([some(p.permissions.map(rbacPred)), some(p.principals.map(rbacPred))]);
}

// === rules and policies ===

interface CompiledRule {
  /** The rule on an HTTP request. */
  readonly http: Pred;
  /** The rule on a TCP connection, HTTP-only terms dropped. */
  readonly tcp: Pred;
  /** Some term is HTTP-only: an ALLOW rule then never matches on TCP. */
  readonly hasHttpOnly: boolean;
}

function compileRule(r: AuthzRule): CompiledRule {
  const sources = r.from.map(sourceTerms);
  const operations = r.to.map(operationTerms);
  const conditions = r.when.map(conditionTerm);
  const build = (keep: (t: Term) => boolean): Pred => {
    const conj = (terms: readonly Term[]): Pred => all(terms.filter(keep).map((t) => t.test));
    const from = sources.length === 0 ? ALWAYS : some(sources.map(conj));
    const to = operations.length === 0 ? ALWAYS : some(operations.map(conj));
    return all([from, to, conj(conditions)].filter((p) => p !== ALWAYS));
  };
  const everyTerm = [...sources.flat(), ...operations.flat(), ...conditions];
  return { http: build(() => true), tcp: build((t) => !t.httpOnly), hasHttpOnly: everyTerm.some((t) => t.httpOnly) };
}

interface CompiledPolicy {
  readonly http: Pred;
  readonly tcp: Pred;
  readonly decision: AuthzDecision;
}

function compilePolicy(p: AuthzPolicy, action: 'ALLOW' | 'DENY'): CompiledPolicy {
  const rules = p.rules.map(compileRule);
  const rbac = p.rbac === undefined ? [] : [rbacPolicyPred(p.rbac)];
  return {
    http: some([...rules.map((r) => r.http), ...rbac]),
    tcp: some([...rules.filter((r) => action === 'DENY' || !r.hasHttpOnly).map((r) => r.tcp), ...rbac]),
    decision: Object.freeze({ allowed: action === 'ALLOW', policy: p.name }),
  };
}

const ALLOWED: AuthzDecision = Object.freeze({ allowed: true });
const DENIED: AuthzDecision = Object.freeze({ allowed: false });

export function compileAuthorization(model: Authorization): CompiledAuthorization {
  const deny = model.deny.map((p) => compilePolicy(p, 'DENY'));
  const allow = model.allow.map((p) => compilePolicy(p, 'ALLOW'));
  const enabled = deny.length > 0 || allow.length > 0;
  return {
    enabled,
    check(attrs) {
      const tcp = attrs.http === undefined;
      for (const p of deny) if (tcp ? p.tcp(attrs) : p.http(attrs)) return p.decision;
      if (allow.length === 0) return ALLOWED;
      for (const p of allow) if (tcp ? p.tcp(attrs) : p.http(attrs)) return p.decision;
      return DENIED;
    },
  };
}
