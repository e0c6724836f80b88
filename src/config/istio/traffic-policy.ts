/**
 * DestinationRule semantics: which rule applies to a host (DestinationRuleIndex), how port-level
 * and subset policies merge (Istio's MergeSubsetTrafficPolicy: a matching port-level entry
 * replaces all four blocks; a subset's blocks replace the parent's), and how load-balancer
 * settings become Envoy policies.
 */
import type { HashPolicy, LbPolicy } from '../../model/cluster.js';
import type { LoadBalancerSettings, TrafficPolicy } from './destination-rule.js';
import { hostMatches, toFqdn } from './hosts.js';
import { exportedTo, type IstioResource } from './resources.js';

export type DestinationRuleResource = Extract<IstioResource, { kind: 'DestinationRule' }>;

/** The four blocks a port-level or subset policy may override. */
export type PolicyBlocks = Pick<TrafficPolicy, 'loadBalancer' | 'connectionPool' | 'outlierDetection' | 'tls'>;

/** Where the proxy stands, for choosing among DestinationRules of several namespaces. */
export interface RuleScope {
  /** The proxy's (client's) namespace: skiff's mesh defaultNamespace. */
  readonly proxyNamespace: string;
  /** Istio's config root namespace (istio-system). */
  readonly rootNamespace: string;
}

export interface RuleIndexReports {
  /** A rule (or part of one) is ignored; `path` is the field to point at. */
  ignored(dr: DestinationRuleResource, path: ReadonlyArray<string | number>, message: string): void;
}

interface Candidate {
  readonly host: string;
  readonly namespace: string;
  readonly dr: DestinationRuleResource;
}

/**
 * The DestinationRule in force for a service, as istiod chooses it (PushContext.destinationRule):
 * 1. rules in the proxy's namespace; 2. rules in the service's namespace exported to the proxy's;
 * 3. rules in the root namespace exported to the proxy's. Within a namespace the most specific
 * host wins (exact, then the longest wildcard), and rules for the same host are merged as
 * istiod's mergeDestinationRule does: subsets are concatenated (a repeated subset name is
 * ignored) and the first top-level trafficPolicy wins. Rules are taken in the order they were
 * loaded. A rule with a workloadSelector never selects this proxy, which has no labels.
 */
export class DestinationRuleIndex {
  readonly #scope: RuleScope;
  /** Rules that may apply: by namespace, then by host, in load order. */
  readonly #byNamespace = new Map<string, NamespaceRules>();
  readonly #cache = new Map<string, { merged: DestinationRuleResource; sources: readonly DestinationRuleResource[] } | undefined>();

  constructor(rules: readonly DestinationRuleResource[], scope: RuleScope, reports: RuleIndexReports) {
    this.#scope = scope;
    for (const dr of rules) {
      const namespace = dr.metadata.namespace ?? scope.proxyNamespace;
      const selector = dr.spec.workloadSelector?.matchLabels ?? {};
      if (Object.keys(selector).length > 0) {
        reports.ignored(dr, ['spec', 'workloadSelector'], 'workloadSelector does not select this proxy (it has no workload labels); this rule is ignored');
        continue;
      }
      let ns = this.#byNamespace.get(namespace);
      if (ns === undefined) this.#byNamespace.set(namespace, (ns = { exact: new Map(), wildcards: new Map() }));
      const host = toFqdn(dr.spec.host!, namespace);
      const byHost = host.startsWith('*') ? ns.wildcards : ns.exact;
      let list = byHost.get(host);
      if (list === undefined) byHost.set(host, (list = []));
      list.push({ host, namespace, dr });
    }
    // Report what merging drops, once per namespace and host.
    for (const ns of this.#byNamespace.values()) {
      for (const list of [...ns.exact.values(), ...ns.wildcards.values()]) reportMerge(list.map((c) => c.dr), reports);
    }
  }

  /** The rule in force for `hostname` (a service of `serviceNamespace`), merged; undefined if none. */
  find(hostname: string, serviceNamespace: string): DestinationRuleResource | undefined {
    return this.#lookup(hostname, serviceNamespace)?.merged;
  }

  /** The loaded rules that make up `find(hostname, serviceNamespace)`. */
  sources(hostname: string, serviceNamespace: string): readonly DestinationRuleResource[] {
    return this.#lookup(hostname, serviceNamespace)?.sources ?? [];
  }

  #lookup(hostname: string, serviceNamespace: string): { merged: DestinationRuleResource; sources: readonly DestinationRuleResource[] } | undefined {
    const key = `${serviceNamespace}/${hostname}`;
    if (this.#cache.has(key)) return this.#cache.get(key);
    const { proxyNamespace, rootNamespace } = this.#scope;
    let found: { merged: DestinationRuleResource; sources: readonly DestinationRuleResource[] } | undefined;
    for (const namespace of new Set([proxyNamespace, serviceNamespace, rootNamespace])) {
      const ns = this.#byNamespace.get(namespace);
      if (ns === undefined) continue;
      const visible = (list: readonly Candidate[]): Candidate[] =>
        namespace === proxyNamespace ? [...list] : list.filter((c) => visibleTo(c, proxyNamespace));
      // Istio MostSpecificHostMatch: the exact host, else the longest wildcard covering it.
      let chosen = visible(ns.exact.get(hostname) ?? []);
      if (chosen.length === 0) {
        let best = '';
        for (const [host, list] of ns.wildcards) {
          if (host.length <= best.length || !hostMatches(host, hostname)) continue;
          const v = visible(list);
          if (v.length > 0) {
            best = host;
            chosen = v;
          }
        }
      }
      if (chosen.length === 0) continue;
      const sources = chosen.map((c) => c.dr);
      found = { merged: mergeRules(sources), sources };
      break;
    }
    this.#cache.set(key, found);
    return found;
  }
}

/** A namespace's rules: by exact host, and by wildcard host. */
interface NamespaceRules {
  readonly exact: Map<string, Candidate[]>;
  readonly wildcards: Map<string, Candidate[]>;
}

const visibleTo = (c: Candidate, namespace: string): boolean => exportedTo(c.dr.spec.exportTo, c.namespace, namespace);

function mergeRules(drs: readonly DestinationRuleResource[]): DestinationRuleResource {
  const [first, ...rest] = drs;
  if (rest.length === 0) return first!;
  const subsets = [...(first!.spec.subsets ?? [])];
  let trafficPolicy = first!.spec.trafficPolicy;
  for (const dr of rest) {
    for (const s of dr.spec.subsets ?? []) if (!subsets.some((x) => x.name === s.name)) subsets.push(s);
    trafficPolicy ??= dr.spec.trafficPolicy;
  }
  return { ...first!, spec: { ...first!.spec, subsets, ...(trafficPolicy !== undefined ? { trafficPolicy } : {}) } };
}

function reportMerge(drs: readonly DestinationRuleResource[], reports: RuleIndexReports): void {
  const subsetOwner = new Map<string, DestinationRuleResource>();
  let policyOwner: DestinationRuleResource | undefined;
  for (const dr of drs) {
    dr.spec.subsets?.forEach((s, i) => {
      const owner = subsetOwner.get(s.name!);
      if (owner !== undefined && owner !== dr) {
        reports.ignored(dr, ['spec', 'subsets', i, 'name'], `subset "${s.name}" is already defined for this host by ${owner.label}; this one is ignored`);
      } else if (owner === undefined) {
        subsetOwner.set(s.name!, dr);
      }
    });
    if (dr.spec.trafficPolicy !== undefined) {
      if (policyOwner !== undefined) {
        reports.ignored(dr, ['spec', 'trafficPolicy'], `${policyOwner.label} already sets the trafficPolicy for this host; this one is ignored (rules for one host are merged: subsets are combined, the first trafficPolicy wins)`);
      } else {
        policyOwner = dr;
      }
    }
  }
}

function forPort(policy: TrafficPolicy | undefined, port: number): { blocks: PolicyBlocks | undefined; portLevel: boolean } {
  if (policy === undefined) return { blocks: undefined, portLevel: false };
  const p = policy.portLevelSettings?.find((s) => s.port?.number === port);
  if (p === undefined) return { blocks: policy, portLevel: false };
  return {
    blocks: { loadBalancer: p.loadBalancer, connectionPool: p.connectionPool, outlierDetection: p.outlierDetection, tls: p.tls },
    portLevel: true,
  };
}

/** The policy blocks in force for a destination port and optional subset. */
export function effectivePolicy(dr: DestinationRuleResource | undefined, port: number, subset?: string): PolicyBlocks | undefined {
  if (dr === undefined) return undefined;
  const base = forPort(dr.spec.trafficPolicy, port).blocks;
  const subsetPolicy = subset === undefined ? undefined : dr.spec.subsets?.find((s) => s.name === subset)?.trafficPolicy;
  if (subsetPolicy === undefined) return base;
  const sub = forPort(subsetPolicy, port);
  if (base === undefined) return sub.blocks;
  const over = sub.blocks ?? {};
  return {
    loadBalancer: over.loadBalancer !== undefined || sub.portLevel ? over.loadBalancer : base.loadBalancer,
    connectionPool: over.connectionPool !== undefined || sub.portLevel ? over.connectionPool : base.connectionPool,
    outlierDetection: over.outlierDetection !== undefined || sub.portLevel ? over.outlierDetection : base.outlierDetection,
    tls: over.tls !== undefined || sub.portLevel ? over.tls : base.tls,
  };
}

export interface LoadBalancing {
  readonly lb: LbPolicy;
  readonly hashPolicy?: HashPolicy;
  /** LoadBalancer PASSTHROUGH: forward to the original destination, no balancing. */
  readonly passthrough: boolean;
}

const DEFAULT_RING_SIZE = 1024;
const MAX_RING_SIZE = 8 * 1024 * 1024;
const DEFAULT_MAGLEV_TABLE = 65537;

export function loadBalancing(settings: LoadBalancerSettings | undefined): LoadBalancing {
  const ch = settings?.consistentHash;
  if (ch !== undefined) {
    const lb: LbPolicy =
      ch.maglev !== undefined
        ? { kind: 'MAGLEV', tableSize: ch.maglev.tableSize ?? DEFAULT_MAGLEV_TABLE }
        : {
            kind: 'RING_HASH',
            minimumRingSize: ch.ringHash?.minimumRingSize ?? ch.minimumRingSize ?? DEFAULT_RING_SIZE,
            maximumRingSize: MAX_RING_SIZE,
          };
    let hashPolicy: HashPolicy;
    if (ch.httpHeaderName !== undefined) hashPolicy = { kind: 'header', name: ch.httpHeaderName };
    else if (ch.httpCookie !== undefined) {
      hashPolicy = {
        kind: 'cookie',
        name: ch.httpCookie.name!,
        ...(ch.httpCookie.path !== undefined ? { path: ch.httpCookie.path } : {}),
        ...(ch.httpCookie.ttl !== undefined ? { ttlMs: ch.httpCookie.ttl } : {}),
      };
    } else if (ch.httpQueryParameterName !== undefined) hashPolicy = { kind: 'queryParam', name: ch.httpQueryParameterName };
    else hashPolicy = { kind: 'sourceIp' };
    return { lb, hashPolicy, passthrough: false };
  }
  switch (settings?.simple) {
    case 'ROUND_ROBIN':
      return { lb: { kind: 'ROUND_ROBIN' }, passthrough: false };
    case 'RANDOM':
      return { lb: { kind: 'RANDOM' }, passthrough: false };
    case 'PASSTHROUGH':
      return { lb: { kind: 'ROUND_ROBIN' }, passthrough: true };
    default:
      // UNSPECIFIED, LEAST_REQUEST and the deprecated LEAST_CONN all mean Envoy's LEAST_REQUEST.
      return { lb: { kind: 'LEAST_REQUEST', choiceCount: 2 }, passthrough: false };
  }
}
