/**
 * The AuthorizationPolicy (security.istio.io) schema and Istio's validation of it
 * (IST:pkg/config/validation ValidateAuthorizationPolicy, pkg/config/security). authz-policy.ts
 * resolves which policies apply to this proxy and normalises them into the model.
 *
 * Refusals that would otherwise fail open: CUSTOM (ext_authz) and targetRef(s) are errors, as is
 * any `when` key skiff does not evaluate.
 */
import { isIP } from 'node:net';
import { didYouMean } from '../../core/did-you-mean.js';
import { translateRe2 } from '../../core/re2.js';
import { array, enumOf, object, string, type Infer, type Path, type Schema } from '../schema.js';
import { workloadSelectorSchema } from './common.js';

// === value lists ===

/** A list of non-empty strings (Istio CheckEmptyValues), each further checked by `check`. */
function values(check?: (v: string) => string | undefined): Schema<string[]> {
  return array({
    expected: 'a string',
    parse(v, path, issues) {
      if (typeof v !== 'string') {
        issues.error(path, `expected a string, got ${typeof v === 'number' ? `number ${v} (quote it)` : Array.isArray(v) ? 'a list' : typeof v}`);
        return undefined;
      }
      if (v === '') {
        issues.error(path, 'empty value not allowed');
        return undefined;
      }
      const problem = check?.(v);
      if (problem !== undefined) {
        issues.error(path, problem);
        return undefined;
      }
      return v;
    },
  });
}

/** Istio ValidateIPs: an address, or a CIDR prefix `address/bits`. */
export function ipError(v: string): string | undefined {
  const slash = v.indexOf('/');
  if (slash < 0) return isIP(v) === 0 ? `bad IP address (${v})` : undefined;
  const address = v.slice(0, slash);
  const bits = v.slice(slash + 1);
  const family = isIP(address);
  if (family === 0 || !/^\d{1,3}$/.test(bits) || Number(bits) > (family === 4 ? 32 : 128)) return `bad CIDR range (${v})`;
  if (address.toLowerCase().startsWith('::ffff:')) return `write IPv4 ranges in IPv4 form (${v})`;
  return undefined;
}

/** Istio ValidatePorts: a decimal port 0-65535, written as a string. */
export function portError(v: string): string | undefined {
  return /^\d{1,5}$/.test(v) && Number(v) <= 65535 ? undefined : `bad port (${v}): must be a number 0-65535 written as a string`;
}

/** Envoy compiles these values into RE2 regexes (Istio's generators do not escape them). */
function regexError(pattern: string): string | undefined {
  const t = translateRe2(pattern);
  return 'error' in t ? `not usable: Istio turns it into the invalid regex ${JSON.stringify(pattern)} (${t.error})` : undefined;
}

/** The RE2 pattern Istio builds for a principal (`spiffe://` prefixed) suffix match. */
export function principalSuffixRegex(value: string): string {
  return `spiffe://.*${value.slice(1)}`;
}

/** The RE2 pattern Istio builds for `namespaces` (srcNamespaceGenerator), matched against the SPIFFE URI. */
export function namespaceRegex(value: string): string {
  return `.*/ns/${value.replaceAll('*', '.*')}/.*`;
}

/** The RE2 pattern Istio builds for `serviceAccounts` (`ns/sa`), matched against the SPIFFE URI. */
export function serviceAccountRegex(namespace: string, serviceAccount: string): string {
  return `spiffe://.+/ns/${namespace}/(.+/|)sa/${serviceAccount}(/.+)?`;
}

function principalError(v: string): string | undefined {
  return v !== '*' && v.startsWith('*') ? regexError(principalSuffixRegex(v)) : undefined;
}

function namespaceError(v: string): string | undefined {
  return regexError(namespaceRegex(v));
}

/** Istio CheckServiceAccount: `sa` or `ns/sa`, no wildcards. */
function serviceAccountError(v: string): string | undefined {
  if (v.includes('*')) return 'wildcard not allowed';
  const parts = v.split('/');
  if (parts.length > 2 || parts.some((p) => p === '')) return `expected format 'serviceAccount' or 'namespace/serviceAccount', found ${JSON.stringify(v)}`;
  if (v.length > 320) return 'value cannot exceed 320 characters';
  return regexError(serviceAccountRegex(parts.length === 2 ? parts[0]! : 'x', parts[parts.length - 1]!));
}

// === path templates ===

export const MATCH_ONE_TEMPLATE = '{*}';
export const MATCH_ANY_TEMPLATE = '{**}';
/** RFC 3986 pchar, as Istio and Envoy's uri_template accept in a template's literal segments. */
export const PCHAR = "a-zA-Z0-9\\-._~%!$&'()+,;:@=";
const LITERAL_SEGMENT = new RegExp(`^[${PCHAR}]+$`);

export function isPathTemplate(v: string): boolean {
  return v.includes(MATCH_ONE_TEMPLATE) || v.includes(MATCH_ANY_TEMPLATE);
}

/** Istio CheckValidPathTemplate: `{*}` / `{**}` as whole segments, `{**}` the last operator. */
function pathError(v: string): string | undefined {
  if (!v.includes('{') && !v.includes('}')) return undefined;
  const template = isPathTemplate(v);
  let sawAny = false;
  for (const glob of v.replace(/^\/+|\/+$/g, '').split('/')) {
    if (glob === MATCH_ONE_TEMPLATE || glob === MATCH_ANY_TEMPLATE) {
      if (sawAny) return `invalid path template ${JSON.stringify(v)}: {**} must be the last operator`;
      sawAny = glob === MATCH_ANY_TEMPLATE;
      continue;
    }
    if (glob.includes('{') || glob.includes('}')) {
      return `invalid path template ${JSON.stringify(v)}: only {*} and {**} are supported, each as a whole path segment`;
    }
    if (template && !LITERAL_SEGMENT.test(glob)) return `invalid path template ${JSON.stringify(v)}: segment ${JSON.stringify(glob)} is not a valid literal`;
  }
  return undefined;
}

// === conditions ===

/** `when` keys skiff evaluates (Istio's conditions reference), exact or as `prefix[...]`. */
export const CONDITION_KEYS = [
  'source.ip', 'remote.ip', 'source.namespace', 'source.principal', 'source.serviceAccount',
  'destination.ip', 'destination.port', 'connection.sni',
  'request.auth.principal', 'request.auth.audiences', 'request.auth.presenter',
] as const;
export const HEADER_KEY_PREFIX = 'request.headers';
export const CLAIMS_KEY_PREFIX = 'request.auth.claims';

/** `request.headers[name]` → name; undefined when the key is not of that form (Istio validateMapKey). */
export function bracketed(key: string, prefix: string): string | undefined {
  if (!key.startsWith(`${prefix}[`) || !key.endsWith(']') || key.length < prefix.length + 3) return undefined;
  return key.slice(prefix.length + 1, -1);
}

/** `request.auth.claims[a][b]` → ['a', 'b']; undefined when malformed. */
export function claimPath(key: string): string[] | undefined {
  const rest = key.slice(CLAIMS_KEY_PREFIX.length);
  const m = rest.match(/^(\[[^\[\]]+\])+$/);
  if (m === null) return undefined;
  return [...rest.matchAll(/\[([^\[\]]+)\]/g)].map((x) => x[1]!);
}

/** Why a `when` key is refused, or undefined when skiff evaluates it. */
export function conditionKeyError(key: string): string | undefined {
  if ((CONDITION_KEYS as readonly string[]).includes(key)) return undefined;
  if (key.startsWith(HEADER_KEY_PREFIX)) {
    return bracketed(key, HEADER_KEY_PREFIX) === undefined ? `bad key (${key}): should have format request.headers[name]` : undefined;
  }
  if (key.startsWith(CLAIMS_KEY_PREFIX)) {
    return claimPath(key) === undefined ? `bad key (${key}): should have format request.auth.claims[name] or request.auth.claims[a][b]` : undefined;
  }
  if (key.startsWith('experimental.envoy.filters.')) return `${key}: Envoy filter metadata conditions are not supported`;
  if (key.startsWith('request.experimental.inline.headers')) return `${key} is not supported`;
  if (key === 'destination.namespace') return `attribute ${key} is replaced by the metadata.namespace`;
  if (key.startsWith('destination.labels')) return `attribute ${key} is replaced by the workload selector`;
  if (key === 'destination.name' || key === 'destination.user') return `deprecated attribute ${key}: only supported in v1alpha1`;
  return `unknown attribute "${key}"${didYouMean(key, [...CONDITION_KEYS, 'request.headers[]', 'request.auth.claims[]'])}`;
}

/** Per-key checks of condition values (Istio ValidateAttribute). */
function conditionValueError(key: string, v: string): string | undefined {
  switch (key) {
    case 'source.ip':
    case 'remote.ip':
    case 'destination.ip':
      return ipError(v);
    case 'destination.port':
      return portError(v);
    case 'source.serviceAccount':
      return serviceAccountError(v);
    case 'source.namespace':
      return namespaceError(v);
    case 'source.principal':
      return principalError(v);
    default:
      return undefined;
  }
}

const conditionSchema = object(
  {
    key: string({ nonEmpty: true }),
    values: array(string()),
    notValues: array(string()),
  },
  {
    required: ['key'],
    check(c, path, issues) {
      const keyProblem = conditionKeyError(c.key!);
      if (keyProblem !== undefined) {
        issues.error([...path, 'key'], keyProblem);
        return;
      }
      if ((c.values?.length ?? 0) === 0 && (c.notValues?.length ?? 0) === 0) {
        issues.error(path, `at least one of values or notValues must be set for key ${c.key}`);
      }
      for (const field of ['values', 'notValues'] as const) {
        c[field]?.forEach((v, i) => {
          const problem = v === '' ? 'empty value not allowed' : conditionValueError(c.key!, v);
          if (problem !== undefined) issues.error([...path, field, i], problem);
        });
      }
    },
  },
);

// === sources and operations ===

const sourceSchema = object(
  {
    principals: values(principalError),
    notPrincipals: values(principalError),
    requestPrincipals: values(),
    notRequestPrincipals: values(),
    namespaces: values(namespaceError),
    notNamespaces: values(namespaceError),
    serviceAccounts: values(serviceAccountError),
    notServiceAccounts: values(serviceAccountError),
    ipBlocks: values(ipError),
    notIpBlocks: values(ipError),
    remoteIpBlocks: values(ipError),
    notRemoteIpBlocks: values(ipError),
  },
  {
    check(s, path, issues) {
      const n = (k: keyof typeof s): number => s[k]?.length ?? 0;
      if (Object.keys(s).every((k) => n(k as keyof typeof s) === 0)) issues.error(path, 'source must not be empty');
      const identity = n('principals') + n('notPrincipals') + n('namespaces') + n('notNamespaces');
      if (identity > 0 && n('serviceAccounts') + n('notServiceAccounts') > 0) {
        issues.error([...path, n('serviceAccounts') > 0 ? 'serviceAccounts' : 'notServiceAccounts'], 'cannot set serviceAccounts with namespaces or principals');
      }
      for (const k of ['serviceAccounts', 'notServiceAccounts'] as const) {
        if (n(k) > 16) issues.error([...path, k], 'may not have more than 16 values');
      }
    },
  },
);

const operationSchema = object(
  {
    hosts: values(),
    notHosts: values(),
    ports: values(portError),
    notPorts: values(portError),
    methods: values(),
    notMethods: values(),
    paths: values(pathError),
    notPaths: values(pathError),
  },
  {
    check(o, path, issues) {
      if (Object.values(o).every((v) => v === undefined || v.length === 0)) issues.error(path, 'operation must not be empty');
    },
  },
);

const fromSchema = object({ source: sourceSchema }, { required: ['source'] });
const toSchema = object({ operation: operationSchema }, { required: ['operation'] });

const ruleSchema = object(
  {
    // Istio: `from: []` / `to: []` are errors (omit the field to match any source or operation).
    from: array(fromSchema, { minItems: 1 }),
    to: array(toSchema, { minItems: 1 }),
    when: array(conditionSchema),
  },
);
export type AuthorizationRuleSpec = Infer<typeof ruleSchema>;
export type AuthorizationSourceSpec = Infer<typeof sourceSchema>;
export type AuthorizationOperationSpec = Infer<typeof operationSchema>;

// === the policy ===

const notSupportedTarget = (): Schema<unknown> => ({
  expected: 'a value',
  parse(_v: unknown, path: Path, issues) {
    issues.error(path, 'not supported (sidecars use selector)');
    return undefined;
  },
});

export const authorizationPolicySpecSchema = object(
  {
    selector: workloadSelectorSchema,
    targetRef: notSupportedTarget(),
    targetRefs: notSupportedTarget(),
    action: enumOf(['ALLOW', 'DENY', 'AUDIT', 'CUSTOM']),
    provider: object({ name: string() }),
    rules: array(ruleSchema),
  },
  {
    check(spec, path, issues) {
      const action = spec.action ?? 'ALLOW';
      if (action === 'CUSTOM') {
        issues.error([...path, 'action'], 'CUSTOM authorization (ext_authz) is not supported; refusing to run without enforcing it');
      } else if (spec.provider !== undefined) {
        issues.error([...path, 'provider'], `provider must only be used with action CUSTOM, found ${action}`);
      }
      if (action === 'DENY' && spec.rules === undefined) {
        issues.error(path, 'DENY action without rules is meaningless as it will never be triggered; add an empty rule {} to deny every request');
      }
    },
  },
);
export type AuthorizationPolicySpec = Infer<typeof authorizationPolicySpecSchema>;
