/**
 * DestinationRule semantics: which rule applies to a host, how port-level and subset policies
 * merge (Istio's MergeSubsetTrafficPolicy: a matching port-level entry replaces all four blocks;
 * a subset's blocks replace the parent's), and how load-balancer settings become Envoy policies.
 */
import type { HashPolicy, LbPolicy } from '../../model/cluster.js';
import type { LoadBalancerSettings, TrafficPolicy } from './destination-rule.js';
import { hostMatches, toFqdn } from './hosts.js';
import type { IstioResource } from './resources.js';

export type DestinationRuleResource = Extract<IstioResource, { kind: 'DestinationRule' }>;

/** The four blocks a port-level or subset policy may override. */
export type PolicyBlocks = Pick<TrafficPolicy, 'loadBalancer' | 'connectionPool' | 'outlierDetection' | 'tls'>;

export class DestinationRuleIndex {
  readonly #exact = new Map<string, DestinationRuleResource>();
  readonly #wildcards: Array<[string, DestinationRuleResource]> = [];

  constructor(rules: readonly DestinationRuleResource[], defaultNamespace: string, onDuplicate: (dr: DestinationRuleResource, other: DestinationRuleResource) => void) {
    for (const dr of rules) {
      const host = toFqdn(dr.spec.host!, dr.metadata.namespace ?? defaultNamespace);
      if (host.startsWith('*')) {
        const other = this.#wildcards.find(([h]) => h === host);
        if (other !== undefined) onDuplicate(dr, other[1]);
        else this.#wildcards.push([host, dr]);
        continue;
      }
      const other = this.#exact.get(host);
      if (other !== undefined) onDuplicate(dr, other);
      else this.#exact.set(host, dr);
    }
    // Most specific wildcard first.
    this.#wildcards.sort((a, b) => b[0].length - a[0].length);
  }

  find(hostname: string): DestinationRuleResource | undefined {
    const exact = this.#exact.get(hostname);
    if (exact !== undefined) return exact;
    for (const [pattern, dr] of this.#wildcards) if (hostMatches(pattern, hostname)) return dr;
    return undefined;
  }

  /** Every rule, for reporting rules that match no service. */
  *all(): Iterable<[string, DestinationRuleResource]> {
    yield* this.#exact;
    yield* this.#wildcards;
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
