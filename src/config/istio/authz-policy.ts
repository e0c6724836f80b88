/**
 * Which AuthorizationPolicies apply to this proxy's workload, normalised into the model
 * (IST:pilot/pkg/model/authorization.go ListAuthorizationPolicies): a policy in the root
 * namespace applies to every workload (its selector, if any, matching the workload's labels); a
 * policy in the proxy's namespace applies without a selector or with one matching the workload's
 * labels; policies in other namespaces do not apply. Dry-run policies (annotation
 * `istio.io/dry-run: "true"`) are not enforced, as in Istio.
 */
import { canonicalCidr } from './addresses.js';
import type { Authorization, AuthzField, AuthzOperation, AuthzPolicy, AuthzRule, AuthzSource, MeshSettings } from '../../model/index.js';
import type { Diagnostic } from '../diagnostics.js';
import type { AuthorizationOperationSpec, AuthorizationRuleSpec, AuthorizationSourceSpec } from './authorization-policy.js';
import { CLUSTER_DOMAIN } from './hosts.js';
import { labelsMatch } from './registry.js';
import { resourceDiagnostic, type IstioResource } from './resources.js';

export type AuthorizationPolicyResource = Extract<IstioResource, { kind: 'AuthorizationPolicy' }>;

const DRY_RUN_ANNOTATION = 'istio.io/dry-run';
/** Go strconv.ParseBool's true spellings, as istiod reads the annotation. */
const TRUE = new Set(['1', 't', 'T', 'TRUE', 'true', 'True']);

/** A policy value as the model holds it: one value, or several (a principal in every trust domain alias). */
type ValueMap = (v: string) => string | readonly string[];

function field(values: readonly string[] | undefined, notValues: readonly string[] | undefined, map: ValueMap = (v) => v): AuthzField | undefined {
  if ((values?.length ?? 0) === 0 && (notValues?.length ?? 0) === 0) return undefined;
  return { values: (values ?? []).flatMap(map), notValues: (notValues ?? []).flatMap(map) };
}

/** Drops absent fields so the model holds only what a rule constrains. */
function compact<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

const cidr = (v: string): string => canonicalCidr(v) ?? v;
const serviceAccountIn =
  (namespace: string) =>
  (v: string): string =>
    v.includes('/') ? v : `${namespace}/${v}`;

/** The mesh's trust domain and its aliases (Istio's trust domain bundle). */
interface TrustDomains {
  readonly trustDomain: string;
  readonly trustDomainAliases: readonly string[];
}

/**
 * Istio's trust domain bundle (trustdomain/bundle.go): a principal written in `cluster.local`,
 * the mesh's trust domain or one of its aliases matches that identity in each of them, so a
 * policy keeps working while workloads move between trust domains. Others stay as written.
 */
const inTrustDomains =
  ({ trustDomain, trustDomainAliases }: TrustDomains) =>
  (v: string): readonly string[] => {
    const slash = v.indexOf('/');
    const domains = [trustDomain, ...trustDomainAliases];
    if (slash < 0) return [v];
    const td = v.slice(0, slash);
    if (td !== CLUSTER_DOMAIN && !domains.includes(td)) return [v];
    return [...new Set(domains.map((d) => `${d}${v.slice(slash)}`))];
  };

function source(s: AuthorizationSourceSpec, namespace: string, trustDomain: TrustDomains): AuthzSource {
  const serviceAccount = serviceAccountIn(namespace);
  return compact({
    principals: field(s.principals, s.notPrincipals, inTrustDomains(trustDomain)),
    requestPrincipals: field(s.requestPrincipals, s.notRequestPrincipals),
    namespaces: field(s.namespaces, s.notNamespaces),
    serviceAccounts: field(s.serviceAccounts, s.notServiceAccounts, serviceAccount),
    ipBlocks: field(s.ipBlocks, s.notIpBlocks, cidr),
    remoteIpBlocks: field(s.remoteIpBlocks, s.notRemoteIpBlocks, cidr),
  });
}

function operation(o: AuthorizationOperationSpec): AuthzOperation {
  return compact({
    hosts: field(o.hosts, o.notHosts),
    ports: field(o.ports, o.notPorts, (p) => String(Number(p))),
    methods: field(o.methods, o.notMethods),
    paths: field(o.paths, o.notPaths),
  });
}

function rule(r: AuthorizationRuleSpec, namespace: string, trustDomain: TrustDomains): AuthzRule {
  const serviceAccount = serviceAccountIn(namespace);
  return {
    from: (r.from ?? []).map((f) => source(f.source!, namespace, trustDomain)),
    to: (r.to ?? []).map((t) => operation(t.operation!)),
    when: (r.when ?? []).map((c) => {
      const key = c.key!;
      const map: ValueMap =
        key === 'source.ip' || key === 'remote.ip' || key === 'destination.ip'
          ? cidr
          : key === 'source.serviceAccount'
            ? serviceAccount
            : key === 'destination.port'
              ? (p: string) => String(Number(p))
              : key === 'source.principal'
                ? inTrustDomains(trustDomain)
                : (v: string) => v;
      return { key, values: (c.values ?? []).flatMap(map), notValues: (c.notValues ?? []).flatMap(map) };
    }),
  };
}

/** The policies in force for this proxy's workload, grouped by action, in `ns.name` order. */
export function authorizationFor(all: readonly AuthorizationPolicyResource[], mesh: MeshSettings, diagnostics: Diagnostic[] = []): Authorization {
  const ns = (p: AuthorizationPolicyResource): string => p.metadata.namespace ?? mesh.defaultNamespace;
  const applies = (p: AuthorizationPolicyResource): boolean => {
    const namespace = ns(p);
    if (namespace !== mesh.rootNamespace && namespace !== mesh.defaultNamespace) return false;
    return labelsMatch(p.spec.selector?.matchLabels ?? {}, mesh.workloadLabels);
  };
  const deny: AuthzPolicy[] = [];
  const allow: AuthzPolicy[] = [];
  const audit: AuthzPolicy[] = [];
  const sorted = [...all].sort((a, b) => `${ns(a)}.${a.metadata.name}`.localeCompare(`${ns(b)}.${b.metadata.name}`));
  for (const p of sorted) {
    if (!applies(p)) continue;
    if (TRUE.has(p.metadata.annotations?.[DRY_RUN_ANNOTATION] ?? '')) {
      diagnostics.push(resourceDiagnostic(p, ['metadata', 'annotations', DRY_RUN_ANNOTATION], 'a dry-run policy is not enforced (and skiff records no shadow result for it)', 'warning'));
      continue;
    }
    const policy: AuthzPolicy = { name: `${ns(p)}.${p.metadata.name}`, rules: (p.spec.rules ?? []).map((r) => rule(r, ns(p), mesh)) };
    const action = p.spec.action ?? 'ALLOW';
    if (action === 'DENY') deny.push(policy);
    else if (action === 'AUDIT') audit.push(policy);
    else if (action === 'ALLOW') allow.push(policy);
    // CUSTOM is refused by the schema and never gets here.
  }
  return { deny, allow, audit };
}
