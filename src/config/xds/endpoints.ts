/**
 * Envoy v3 `envoy.config.endpoint.v3.ClusterLoadAssignment` (EDS, and a cluster's inline
 * `load_assignment`) → model endpoints.
 *
 * Contract: every field is translated, accepted because it cannot change which host a request
 * reaches or how (each says why below), or reported as an `XdsProblem` naming its snake_case
 * path. A result with problems is a NACK: its endpoints must not be used.
 *
 * Envoy semantics folded into the flat model endpoint list:
 * - **Priorities** (`endpoints[].priority`) become `Endpoint.priority`; the upstream cluster
 *   sends to the highest-priority level that has an available host.
 * - **Locality weights** apply only when the cluster enables locality-weighted balancing
 *   (`common_lb_config.locality_weighted_lb_config`, which istiod always sets on EDS clusters;
 *   pass `localityWeighted`). Envoy then picks a locality by its `load_balancing_weight` and a
 *   host in it by host weight; skiff folds the two into one host weight,
 *   `weight × locality weight / sum of the locality's host weights`, which gives every host the
 *   same share (and ring-hash / Maglev the same normalized weights Envoy builds). istiod sets a
 *   locality's weight to the sum of its hosts' weights, so the fold changes nothing unless a
 *   DestinationRule `localityLbSetting.distribute` reweights localities. A locality without a
 *   weight then gets no traffic, as in Envoy, and its hosts are left out. Not folded: Envoy
 *   scales a locality's weight down when fewer than 1/overprovisioning of its hosts are
 *   available; skiff lets the remaining hosts keep their own weights.
 * - **Health** (`health_status`): UNKNOWN and HEALTHY hosts are healthy; UNHEALTHY, DRAINING and
 *   TIMEOUT hosts stay in the list (they count towards the panic threshold, as in Envoy) but take
 *   traffic only in panic; DEGRADED (traffic only when healthy hosts run short, by the
 *   overprovisioning factor) is refused.
 * - **Metadata** becomes labels, as the Istio-YAML path labels endpoints:
 *   `envoy.transport_socket_match.tlsMode` → `security.istio.io/tlsMode` (auto mTLS reads it);
 *   `istio.workload` (`name;namespace;canonical-name;revision;cluster`) → the workload-name,
 *   canonical-name, canonical-revision and `topology.istio.io/cluster` labels; the locality →
 *   `topology.kubernetes.io/region`, `topology.kubernetes.io/zone`, `topology.istio.io/subzone`.
 *   These labels are informative (admin output); only the TLS mode changes behaviour.
 */
import { isIP } from 'node:net';
import type { Endpoint } from '../../model/cluster.js';
import { TLS_MODE_LABEL } from '../../model/security.js';
import { FieldReader, isObject, typeName, type Fields, type Spec, type XdsProblem } from './fields.js';

export type { XdsProblem } from './fields.js';

export interface EndpointsOptions {
  /**
   * The cluster balances by locality weight (its `common_lb_config.locality_weighted_lb_config`;
   * `XdsCluster.localityWeighted`). Default false, as in Envoy: locality weights are ignored.
   */
  readonly localityWeighted?: boolean;
  /**
   * Endpoint addresses may be DNS names (the inline `load_assignment` of a STRICT_DNS or
   * LOGICAL_DNS cluster). Default false: EDS and STATIC endpoints must be IP addresses or pipes.
   */
  readonly allowNames?: boolean;
}

/** `problems` non-empty means the assignment must not be used (a NACK). */
export interface ClusterLoadAssignmentResult {
  readonly clusterName: string;
  readonly endpoints: Endpoint[];
  readonly problems: XdsProblem[];
}

export function translateClusterLoadAssignment(json: unknown, options: EndpointsOptions = {}): ClusterLoadAssignmentResult {
  const t = new EndpointsTranslator(options);
  const { clusterName, endpoints } = t.clusterLoadAssignment(json, '');
  return { clusterName, endpoints, problems: t.problems };
}

// === field specs ===

const OPAQUE_METADATA = 'opaque: nothing in skiff matches on endpoint metadata (lb_subset_config and route metadata_match are refused)';

const CLUSTER_LOAD_ASSIGNMENT: Spec = {
  handled: ['cluster_name', 'endpoints', 'policy'],
  refused: { named_endpoints: 'named endpoints are not supported' },
};

const POLICY: Spec = {
  handled: [],
  ignored: {
    // With skiff's priority rule (everything to the highest level with an available host) and
    // locality weights folded into host weights, the factor has nothing to scale.
    overprovisioning_factor: 'skiff does not spill traffic across priorities or localities by availability (see upstream/cluster.ts)',
  },
  refused: {
    drop_overloads: 'drop overloads are not supported',
    endpoint_stale_after: 'stale endpoint expiry is not supported',
    weighted_priority_health: 'weighted priority health is not supported',
  },
};

const LOCALITY_LB_ENDPOINTS: Spec = {
  handled: ['locality', 'lb_endpoints', 'load_balancer_endpoints', 'load_balancing_weight', 'priority'],
  ignored: {
    metadata: OPAQUE_METADATA,
    // "Consumed by load balancing schemes that need proximity order"; none of Envoy's built-in
    // balancers (and none of skiff's) reads it.
    proximity: 'read by no built-in load balancer',
  },
  refused: { leds_cluster_locality_config: 'LEDS (locality endpoint discovery) is not supported' },
};

const LB_ENDPOINT_LIST: Spec = { handled: ['lb_endpoints'] };
const LOCALITY: Spec = { handled: ['region', 'zone', 'sub_zone'] };

const LB_ENDPOINT: Spec = {
  handled: ['endpoint', 'health_status', 'metadata', 'load_balancing_weight'],
  refused: { endpoint_name: 'named endpoints are not supported' },
};

const ENDPOINT: Spec = {
  handled: ['address'],
  ignored: {
    // "Not used for routing or address resolution": only auto_host_rewrite reads it, which the
    // route translator refuses.
    hostname: 'not used for routing or address resolution (auto_host_rewrite is refused)',
    health_check_config: 'used only by active health checking (cluster health_checks are refused)',
  },
  refused: { additional_addresses: 'additional endpoint addresses (happy eyeballs) are not supported' },
};

const METADATA: Spec = { handled: ['filter_metadata'], ignored: { typed_filter_metadata: OPAQUE_METADATA } };

const ADDRESS: Spec = {
  handled: ['socket_address', 'pipe'],
  refused: { envoy_internal_address: 'internal listener addresses are not supported' },
};

const SOCKET_ADDRESS: Spec = {
  handled: ['address', 'port_value', 'protocol'],
  refused: {
    named_port: 'named ports are not supported',
    resolver_name: 'custom resolvers are not supported',
    ipv4_compat: 'IPv4-compatible IPv6 binding applies to listeners only',
  },
};

const PIPE: Spec = { handled: ['path'], ignored: { mode: 'the file mode of a pipe applies when a listener creates it' } };

const CLA_TYPE = 'envoy.config.endpoint.v3.ClusterLoadAssignment';
const HEALTH_STATUS = ['UNKNOWN', 'HEALTHY', 'UNHEALTHY', 'DRAINING', 'TIMEOUT', 'DEGRADED'] as const;
const SOCKET_PROTOCOLS = ['TCP', 'UDP'] as const;

/** Istio's workload label names (IST:pkg/config/labels, pkg/model). */
const WORKLOAD_NAME_LABEL = 'service.istio.io/workload-name';
const CANONICAL_NAME_LABEL = 'service.istio.io/canonical-name';
const CANONICAL_REVISION_LABEL = 'service.istio.io/canonical-revision';
const CLUSTER_ID_LABEL = 'topology.istio.io/cluster';
const LOCALITY_LABELS = { region: 'topology.kubernetes.io/region', zone: 'topology.kubernetes.io/zone', sub_zone: 'topology.istio.io/subzone' } as const;

// === translator ===

/** One locality's endpoints before locality weights are folded in. */
interface LocalityGroup {
  readonly weight: number | undefined;
  readonly endpoints: Endpoint[];
}

/** Reads ClusterLoadAssignments; the cluster translator uses it for inline load_assignment. */
export class EndpointsTranslator extends FieldReader {
  readonly #options: EndpointsOptions;

  constructor(options: EndpointsOptions) {
    super();
    this.#options = options;
  }

  /** `path` is the assignment's own path ('' at the top level). */
  clusterLoadAssignment(v: unknown, path: string): { clusterName: string; endpoints: Endpoint[] } {
    const at = (name: string): string => (path === '' ? name : `${path}.${name}`);
    const f = this.message(withoutType(v, CLA_TYPE, (m) => this.problem(at('@type'), m)), path, CLUSTER_LOAD_ASSIGNMENT);
    const clusterName = this.string(f.get('cluster_name'), at('cluster_name')) ?? '';
    if (clusterName === '') this.problem(at('cluster_name'), 'required');
    this.message(f.get('policy'), at('policy'), POLICY);
    const groups = this.list(f.get('endpoints'), at('endpoints')).map((l, i) => this.#locality(l, `${at('endpoints')}[${i}]`));
    const endpoints = groups.flatMap((g) => this.#fold(g));
    return { clusterName, endpoints };
  }

  /** A locality's hosts with the locality weight folded into theirs (module doc). */
  #fold(g: LocalityGroup): Endpoint[] {
    if (this.#options.localityWeighted !== true) return g.endpoints;
    if (g.weight === undefined) return [];
    const sum = g.endpoints.reduce((s, e) => s + e.weight, 0);
    if (sum === g.weight) return g.endpoints;
    return g.endpoints.map((e) => ({ ...e, weight: (e.weight * g.weight!) / sum }));
  }

  #locality(v: unknown, path: string): LocalityGroup {
    const f = this.message(v, path, LOCALITY_LB_ENDPOINTS);
    const labels = this.#localityLabels(f.get('locality'), `${path}.locality`);
    const weight = this.#weight(f.get('load_balancing_weight'), `${path}.load_balancing_weight`);
    const priority = this.uint(f.get('priority'), `${path}.priority`) ?? 0;
    if (priority > 128) this.problem(`${path}.priority`, 'must be at most 128');
    let list = f.get('lb_endpoints');
    let listPath = `${path}.lb_endpoints`;
    if (f.has('load_balancer_endpoints')) {
      if (f.has('lb_endpoints')) this.problem(`${path}.load_balancer_endpoints`, 'set together with lb_endpoints');
      list = this.message(f.get('load_balancer_endpoints'), `${path}.load_balancer_endpoints`, LB_ENDPOINT_LIST).get('lb_endpoints');
      listPath = `${path}.load_balancer_endpoints.lb_endpoints`;
    }
    const endpoints = this.list(list, listPath).flatMap((e, i) => this.#lbEndpoint(e, `${listPath}[${i}]`, labels, priority) ?? []);
    return { weight, endpoints };
  }

  #localityLabels(v: unknown, path: string): Record<string, string> {
    const f = this.message(v, path, LOCALITY);
    const labels: Record<string, string> = {};
    for (const key of ['region', 'zone', 'sub_zone'] as const) {
      const value = this.string(f.get(key), `${path}.${key}`);
      if (value !== undefined && value !== '') labels[LOCALITY_LABELS[key]] = value;
    }
    return labels;
  }

  /** A load_balancing_weight (UInt32Value, at least 1); undefined when unset. */
  #weight(v: unknown, path: string): number | undefined {
    const w = this.uint(v, path);
    if (w === 0) this.problem(path, 'must be at least 1');
    return w === 0 ? undefined : w;
  }

  #lbEndpoint(v: unknown, path: string, localityLabels: Readonly<Record<string, string>>, priority: number): Endpoint | undefined {
    const f = this.message(v, path, LB_ENDPOINT);
    const health = this.enum(f.get('health_status'), `${path}.health_status`, HEALTH_STATUS) ?? 0;
    if (HEALTH_STATUS[health] === 'DEGRADED') this.problem(`${path}.health_status`, 'not supported: DEGRADED hosts (used only when healthy hosts run short) are not supported');
    const healthy = health <= 1;
    const weight = this.#weight(f.get('load_balancing_weight'), `${path}.load_balancing_weight`) ?? 1;
    const labels = { ...localityLabels, ...this.#metadataLabels(f.get('metadata'), `${path}.metadata`) };
    if (!f.has('endpoint')) {
      this.problem(`${path}.endpoint`, 'required');
      return undefined;
    }
    const e = this.message(f.get('endpoint'), `${path}.endpoint`, ENDPOINT);
    const address = this.address(e.get('address'), `${path}.endpoint.address`, this.#options.allowNames === true);
    if (address === undefined) return undefined;
    return {
      address: address.address,
      port: address.port,
      weight,
      labels,
      ...(priority !== 0 ? { priority } : {}),
      ...(!healthy ? { healthy: false } : {}),
    };
  }

  /**
   * A core Address an upstream can connect to: a socket address (`allowNames`: the address may be
   * a DNS name) or a pipe (`unix://path`, port 0). Undefined (with a problem) otherwise.
   */
  address(v: unknown, path: string, allowNames: boolean): { address: string; port: number } | undefined {
    const f = this.message(v, path, ADDRESS);
    if (f.has('pipe')) {
      const p = this.message(f.get('pipe'), `${path}.pipe`, PIPE);
      const pipe = this.string(p.get('path'), `${path}.pipe.path`) ?? '';
      if (pipe === '') this.problem(`${path}.pipe.path`, 'required');
      return pipe === '' ? undefined : { address: `unix://${pipe}`, port: 0 };
    }
    if (!f.has('socket_address')) {
      // (An envoy_internal_address is already reported as refused.)
      if (!(isObject(v) && isObject(v['envoy_internal_address'] ?? v['envoyInternalAddress']))) this.problem(path, 'required: socket_address or pipe');
      return undefined;
    }
    return this.socketAddress(f.get('socket_address'), `${path}.socket_address`, allowNames);
  }

  /** A TCP SocketAddress with a port_value. */
  socketAddress(v: unknown, path: string, allowNames: boolean): { address: string; port: number } | undefined {
    const s = this.message(v, path, SOCKET_ADDRESS);
    if (this.enum(s.get('protocol'), `${path}.protocol`, SOCKET_PROTOCOLS) === 1) this.problem(`${path}.protocol`, 'not supported: UDP upstreams are not supported');
    const address = this.string(s.get('address'), `${path}.address`) ?? '';
    const port = this.uint(s.get('port_value'), `${path}.port_value`) ?? 0;
    if (address === '') this.problem(`${path}.address`, 'required');
    else if (!allowNames && isIP(address) === 0) this.problem(`${path}.address`, `${JSON.stringify(address)} is not an IP address (only STRICT_DNS and LOGICAL_DNS clusters resolve names)`);
    if (port > 65535) this.problem(`${path}.port_value`, 'must be at most 65535');
    return address === '' ? undefined : { address, port };
  }

  /** Endpoint metadata → labels (module doc); other namespaces and keys are opaque. */
  #metadataLabels(v: unknown, path: string): Record<string, string> {
    const f: Fields = this.message(v, path, METADATA);
    const labels: Record<string, string> = {};
    const filter = f.get('filter_metadata');
    if (filter === undefined) return labels;
    if (!isObject(filter)) {
      this.problem(`${path}.filter_metadata`, 'must be an object');
      return labels;
    }
    // Struct values keep their keys as written: they are read directly, not as messages.
    const tsm = filter['envoy.transport_socket_match'];
    if (isObject(tsm) && typeof tsm['tlsMode'] === 'string') labels[TLS_MODE_LABEL] = tsm['tlsMode'];
    const istio = filter['istio'];
    if (isObject(istio) && typeof istio['workload'] === 'string') Object.assign(labels, workloadLabels(istio['workload']));
    return labels;
  }
}

/** istiod's `istio.workload` metadata, `name;namespace;canonical-name;revision;cluster`, as labels. */
function workloadLabels(workload: string): Record<string, string> {
  const [name = '', , canonicalName = '', revision = '', clusterId = ''] = workload.split(';');
  const labels: Record<string, string> = {};
  if (name !== '') labels[WORKLOAD_NAME_LABEL] = name;
  if (canonicalName !== '') labels[CANONICAL_NAME_LABEL] = canonicalName;
  if (revision !== '') labels[CANONICAL_REVISION_LABEL] = revision;
  if (clusterId !== '') labels[CLUSTER_ID_LABEL] = clusterId;
  return labels;
}

/**
 * A resource as an Any (a config dump's `{"@type": …, …}`) without its `@type`, which must name
 * `type`; anything else is returned as it is.
 */
export function withoutType(v: unknown, type: string, problem: (message: string) => void): unknown {
  if (!isObject(v) || !('@type' in v)) return v;
  const { ['@type']: url, ...rest } = v;
  if (typeof url !== 'string' || typeName(url) !== type) problem(`must be ${type}`);
  return rest;
}
