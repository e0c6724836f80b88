/**
 * A sidecar's listeners, route configurations and clusters (as istiod sends them) → skiff's
 * model. skiff's sidecar has two capture listeners and decides per connection from its original
 * destination, as Envoy's virtualOutbound/virtualInbound hand-off does; so the per-destination
 * listeners istiod sends become model entries:
 *
 * - `<vip>_<port>` (outbound, bind_to_port false): a TcpService for that VIP and port — TCP when
 *   its chains only proxy, HTTP when they only serve HTTP, AUTO (sniffed) for both, TLS when
 *   chains match SNI names — and, for HTTP, a route config for that address and port;
 * - `0.0.0.0_<port>`: the same without a VIP, and the port's route config;
 * - virtualOutbound: its catch-all chain's cluster decides ALLOW_ANY (PassthroughCluster) or
 *   REGISTRY_ONLY (BlackHoleCluster);
 * - virtualInbound: per destination port, whether plaintext and/or mTLS chains exist (the
 *   PeerAuthentication mode: both PERMISSIVE, mTLS only STRICT, plaintext only DISABLE) and the
 *   port's HTTP route config and whether it serves HTTP, TCP or both; the catch-all chains give
 *   the defaults (no catch-all chains, or no virtualInbound: other inbound connections close).
 *   Its RBAC and jwt_authn filters become the workload's policies: every HTTP chain must carry
 *   the same ones (istiod repeats the workload's policies on each), and likewise every TCP chain
 *   its network RBAC (skiff's model has one policy set for requests and one for connections).
 *
 * What the model cannot represent is refused, naming the listener and chain.
 */
import { isIP } from 'node:net';
import {
  BLACKHOLE_CLUSTER,
  INBOUND_PASSTHROUGH_CLUSTER,
  NO_AUTHORIZATION,
  NO_REQUEST_AUTHENTICATION,
  PASSTHROUGH_CLUSTER,
  type AddressRouteConfig,
  type Authorization,
  type InboundProtocol,
  type InboundProtocols,
  type Cluster,
  type L4Route,
  type MeshSettings,
  type Model,
  type MtlsMode,
  type PortProtocol,
  type RequestAuthentication,
  type RouteConfig,
  type TcpService,
} from '../../model/index.js';
import { catchAllVirtualHost, inboundRouteConfig } from '../istio/routes.js';
import type { XdsProblem } from './fields.js';
import { chainsOf, type FilterChain, type XdsListener } from './listener.js';

export const VIRTUAL_OUTBOUND = 'virtualOutbound';
export const VIRTUAL_INBOUND = 'virtualInbound';
/** Istio's inbound passthrough clusters (one per family); skiff's model has one for both. */
export const INBOUND_PASSTHROUGH_IPV4 = 'InboundPassthroughClusterIpv4';
export const INBOUND_PASSTHROUGH_IPV6 = 'InboundPassthroughClusterIpv6';

export interface SidecarResources {
  readonly listeners: readonly XdsListener[];
  /** Route configurations by name (RDS). */
  readonly routes: ReadonlyMap<string, RouteConfig>;
  /** Clusters with their endpoints. */
  readonly clusters: readonly Cluster[];
}

/** The RDS names the listeners refer to. */
export function routeNamesOf(listeners: Iterable<XdsListener>): string[] {
  const names = new Set<string>();
  for (const l of listeners) for (const c of chainsOf(l)) if (c.action.kind === 'http' && c.action.rds !== undefined) names.add(c.action.rds);
  return [...names];
}

/**
 * With `routesPending`, RDS names that have not arrived are not problems (checking the
 * listeners' shape when LDS arrives, before their routes).
 */
export function buildSidecarModel(resources: SidecarResources, base: MeshSettings, options: { readonly routesPending?: boolean } = {}): { model?: Model; problems: XdsProblem[] } {
  const b = new ModelBuilder(resources, options.routesPending ?? false);
  const model = b.build(base);
  return b.problems.length === 0 ? { model, problems: [] } : { problems: b.problems };
}

/**
 * Istio's inbound routes name the passthrough cluster of their chain's family; skiff's one
 * inbound passthrough cluster serves both families (binding 127.0.0.6 or ::6 by the host's), so
 * routes that differ only by the family's cluster become the same route.
 */
function withModelPassthrough(rc: RouteConfig): RouteConfig {
  const rename = (name: string): string => (name === INBOUND_PASSTHROUGH_IPV4 || name === INBOUND_PASSTHROUGH_IPV6 ? INBOUND_PASSTHROUGH_CLUSTER : name);
  return {
    ...rc,
    virtualHosts: rc.virtualHosts.map((vh) => ({
      ...vh,
      routes: vh.routes.map((r) =>
        r.action.kind === 'forward'
          ? { ...r, action: { ...r.action, clusters: r.action.clusters.map((c) => ({ ...c, cluster: rename(c.cluster) })), ...(r.action.mirrors !== undefined ? { mirrors: r.action.mirrors.map((m) => ({ ...m, cluster: rename(m.cluster) })) } : {}) } }
          : r,
      ),
    })),
  };
}

/** What a route configuration does, without its descriptive names (Istio names the IPv6 copy apart). */
const routingKey = (rc: RouteConfig): string => JSON.stringify(rc.virtualHosts.map(({ name: _name, ...vh }) => vh));

const isWildcardAddress = (a: string): boolean => a === '0.0.0.0' || a === '::' || a === '';
/** `outbound|9080|v1|reviews.default.svc.cluster.local` → the host. */
const hostOfCluster = (name: string): string | undefined => {
  const parts = name.split('|');
  return parts.length === 4 && parts[3] !== '' ? parts[3] : undefined;
};

class ModelBuilder {
  readonly problems: XdsProblem[] = [];
  readonly #resources: SidecarResources;
  readonly #routesPending: boolean;

  constructor(resources: SidecarResources, routesPending: boolean) {
    this.#resources = resources;
    this.#routesPending = routesPending;
  }

  #problem(listener: string, path: string, message: string): void {
    this.problems.push({ path: `listener ${listener}${path === '' ? '' : `: ${path}`}`, message });
  }

  /** A chain's routes: by RDS name (which must have arrived) or inline. */
  #routeConfig(l: XdsListener, chain: FilterChain): RouteConfig | undefined {
    if (chain.action.kind !== 'http') return undefined;
    if (chain.action.routeConfig !== undefined) return chain.action.routeConfig;
    const rc = this.#resources.routes.get(chain.action.rds!);
    if (rc === undefined && !this.#routesPending) this.#problem(l.name, `chain ${chain.name}`, `route configuration ${chain.action.rds} has not been received`);
    return rc;
  }

  build(base: MeshSettings): Model | undefined {
    const listeners = this.#resources.listeners;
    const outbound = listeners.find((l) => l.name === VIRTUAL_OUTBOUND);
    const inbound = listeners.find((l) => l.name === VIRTUAL_INBOUND);
    const mesh: MeshSettings = { ...base, outboundTrafficPolicy: outbound === undefined ? base.outboundTrafficPolicy : this.#trafficPolicy(outbound) };
    const tcpServices: TcpService[] = [];
    const routeConfigs: RouteConfig[] = [];
    const addressRouteConfigs: AddressRouteConfig[] = [];
    for (const l of listeners) {
      if (l === outbound || l === inbound) continue;
      if (l.bindToPort) {
        this.#problem(l.name, 'bind_to_port', 'a sidecar’s per-destination listeners must not bind (bind_to_port: false): skiff serves them from its capture listeners');
        continue;
      }
      const service = this.#outboundService(l);
      if (service === undefined) continue;
      tcpServices.push(service.tcp);
      if (service.routes === undefined) continue;
      if (isWildcardAddress(l.address)) routeConfigs.push({ ...service.routes, name: String(l.port) });
      else addressRouteConfigs.push({ address: l.address, port: l.port, routeConfig: service.routes });
    }
    for (const l of listeners) {
      if (l === inbound) continue;
      for (const c of chainsOf(l)) {
        if (c.authorization !== undefined || c.requestAuthentication !== undefined) {
          this.#problem(l.name, `chain ${c.name}`, 'RBAC and jwt_authn filters are supported on virtualInbound only (skiff enforces policy on inbound traffic)');
        }
      }
    }
    const inboundParts = inbound === undefined ? undefined : this.#inbound(inbound);
    const policies = inbound === undefined ? undefined : this.#inboundPolicies(inbound);
    const clusters = [...this.#resources.clusters];
    // skiff's inbound TCP and its default inbound routes use one passthrough cluster for both
    // families: Istio's IPv4 one under the model's name.
    const ipv4Passthrough = clusters.find((c) => c.name === INBOUND_PASSTHROUGH_IPV4);
    if (ipv4Passthrough !== undefined && !clusters.some((c) => c.name === INBOUND_PASSTHROUGH_CLUSTER)) clusters.push({ ...ipv4Passthrough, name: INBOUND_PASSTHROUGH_CLUSTER });
    if (this.problems.length > 0) return undefined;
    return {
      mesh,
      routeConfigs,
      addressRouteConfigs,
      fallbackRouteConfig: { name: 'fallback', virtualHosts: [catchAllVirtualHost(mesh)] },
      inboundRouteConfig: inboundParts?.defaultRoutes ?? inboundRouteConfig(),
      inboundPortRouteConfigs: inboundParts?.portRoutes ?? [],
      peerAuthentication: inboundParts?.peerAuthentication ?? { mode: 'PERMISSIVE', portModes: {} },
      // No virtualInbound: no inbound listener in Envoy, so every inbound connection is closed.
      inboundProtocols: inboundParts?.protocols ?? { default: 'NONE', ports: {} },
      authorization: policies?.http ?? NO_AUTHORIZATION,
      tcpAuthorization: policies?.tcp ?? NO_AUTHORIZATION,
      requestAuthentication: policies?.jwt ?? NO_REQUEST_AUTHENTICATION,
      clusters,
      tcpServices,
      gateways: [],
    };
  }

  /** virtualOutbound's catch-all chain: PassthroughCluster (ALLOW_ANY) or BlackHoleCluster (REGISTRY_ONLY). */
  #trafficPolicy(l: XdsListener): MeshSettings['outboundTrafficPolicy'] {
    let policy: MeshSettings['outboundTrafficPolicy'] | undefined;
    for (const c of chainsOf(l)) {
      // The chain for the listener's own port stops loops; skiff's listener does that itself.
      if (c.match.destinationPort === l.port) continue;
      const cluster = c.action.kind === 'tcp' && c.action.destinations.length === 1 ? c.action.destinations[0]!.cluster : undefined;
      const catchAll = c.match.prefixRanges.length === 0 && c.match.serverNames.length === 0 && c.match.destinationPort === undefined;
      if (!catchAll || (cluster !== PASSTHROUGH_CLUSTER && cluster !== BLACKHOLE_CLUSTER)) {
        this.#problem(l.name, `chain ${c.name}`, 'virtualOutbound may only hold the loop guard and a catch-all to PassthroughCluster or BlackHoleCluster');
        continue;
      }
      policy = cluster === PASSTHROUGH_CLUSTER ? 'ALLOW_ANY' : 'REGISTRY_ONLY';
    }
    if (policy === undefined) this.#problem(l.name, '', 'virtualOutbound needs a catch-all chain');
    return policy ?? 'ALLOW_ANY';
  }

  /** A per-destination outbound listener as a service port (and its routes, for HTTP). */
  #outboundService(l: XdsListener): { tcp: TcpService; routes?: RouteConfig } | undefined {
    const vip = isWildcardAddress(l.address) ? undefined : l.address;
    if (vip !== undefined && isIP(vip) === 0) {
      this.#problem(l.name, 'address', `${vip} is not an IP address`);
      return undefined;
    }
    let http: FilterChain | undefined;
    const l4Routes: L4Route[] = [];
    let defaultCluster: string | undefined;
    let tls = false;
    for (const c of chainsOf(l)) {
      if (c.match.destinationPort !== undefined && c.match.destinationPort !== l.port) {
        this.#problem(l.name, `chain ${c.name}`, 'a destination_port match other than the listener’s port is not supported');
        continue;
      }
      if (c.action.kind === 'http') {
        if (http !== undefined || c.match.serverNames.length > 0 || c.match.prefixRanges.length > 0 || c.match.transportProtocol === 'tls') {
          this.#problem(l.name, `chain ${c.name}`, 'one plaintext HTTP chain per listener is supported');
          continue;
        }
        http = c;
        continue;
      }
      const unconditional = c.match.serverNames.length === 0 && c.match.prefixRanges.length === 0;
      if (c.match.serverNames.length > 0) tls = true;
      if (unconditional && c.action.destinations.length === 1) {
        defaultCluster ??= c.action.destinations[0]!.cluster;
        continue;
      }
      l4Routes.push({
        destinationSubnets: [...c.match.prefixRanges],
        ...(c.match.serverNames.length > 0 ? { sniHosts: [...c.match.serverNames] } : {}),
        destinations: c.action.destinations,
      });
    }
    const hasTcp = defaultCluster !== undefined || l4Routes.length > 0;
    const protocol: PortProtocol = http !== undefined ? (hasTcp ? 'AUTO' : 'HTTP') : tls ? 'TLS' : 'TCP';
    const cluster = defaultCluster ?? l4Routes[0]?.destinations[0]?.cluster ?? PASSTHROUGH_CLUSTER;
    const hostname = hostOfCluster(cluster) ?? l.name;
    const tcp: TcpService = { hostname, domains: [hostname], addresses: vip === undefined ? [] : [vip], subnets: [], port: l.port, protocol, cluster, routes: l4Routes };
    const routes = http === undefined ? undefined : this.#routeConfig(l, http);
    return routes === undefined ? { tcp } : { tcp, routes };
  }

  /** The policies of virtualInbound's HTTP chains and of its TCP chains; each kind must agree across chains. */
  #inboundPolicies(l: XdsListener): { http?: Authorization; tcp?: Authorization; jwt?: RequestAuthentication } {
    const agreed = <T>(kind: string, values: ReadonlyArray<{ chain: string; value: T | undefined }>): T | undefined => {
      const first = values[0];
      if (first === undefined) return undefined;
      const json = JSON.stringify(first.value ?? null);
      const other = values.find((v) => JSON.stringify(v.value ?? null) !== json);
      if (other !== undefined) this.#problem(l.name, `chain ${other.chain}`, `its ${kind} differ from chain ${first.chain}'s: per-port policies are not supported`);
      return first.value;
    };
    // The loop guard (the listener's own port, to BlackHoleCluster) carries no policy.
    const chains = chainsOf(l).filter((c) => c.match.destinationPort !== l.port);
    const http = chains.filter((c) => c.action.kind === 'http');
    const tcp = chains.filter((c) => c.action.kind === 'tcp');
    const out: { http?: Authorization; tcp?: Authorization; jwt?: RequestAuthentication } = {};
    const httpAuthz = agreed('RBAC filters', http.map((c) => ({ chain: c.name, value: c.authorization })));
    const tcpAuthz = agreed('RBAC filters', tcp.map((c) => ({ chain: c.name, value: c.authorization })));
    const jwt = agreed('jwt_authn filters', http.map((c) => ({ chain: c.name, value: c.requestAuthentication })));
    if (httpAuthz !== undefined) out.http = httpAuthz;
    if (tcpAuthz !== undefined) out.tcp = tcpAuthz;
    if (jwt !== undefined) out.jwt = jwt;
    return out;
  }

  #inbound(l: XdsListener): { defaultRoutes?: RouteConfig; portRoutes: RouteConfig[]; peerAuthentication: Model['peerAuthentication']; protocols: InboundProtocols } {
    /** Per destination port (0: the catch-all chains): which transports are accepted, and what is served. */
    const ports = new Map<number, { mtls: boolean; plaintext: boolean; http: boolean; tcp: boolean }>();
    const routes = new Map<number, { chain: string; config: RouteConfig }>();
    for (const c of chainsOf(l)) {
      if (c.match.destinationPort === l.port) continue; // the loop guard (BlackHoleCluster)
      const port = c.match.destinationPort ?? 0;
      const p = ports.get(port) ?? { mtls: false, plaintext: false, http: false, tcp: false };
      // A TLS chain that does not terminate passes the application's own TLS through: to skiff
      // that is a plaintext (non-mTLS) connection.
      if (c.terminatesMtls) p.mtls = true;
      else p.plaintext = true;
      if (c.action.kind === 'http') p.http = true;
      else p.tcp = true;
      ports.set(port, p);
      if (c.action.kind !== 'http') continue;
      const found = this.#routeConfig(l, c);
      if (found === undefined) continue;
      const rc = withModelPassthrough(found);
      const seen = routes.get(port);
      if (seen === undefined) routes.set(port, { chain: c.name, config: rc });
      else if (routingKey(seen.config) !== routingKey(rc)) {
        this.#problem(l.name, `chain ${c.name}`, `its routes differ from chain ${seen.chain}'s for the same port: routes chosen by TLS or ALPN are not supported`);
      }
    }
    const modeOf = (p: { mtls: boolean; plaintext: boolean }): MtlsMode => (p.mtls && p.plaintext ? 'PERMISSIVE' : p.mtls ? 'STRICT' : 'DISABLE');
    const protocolOf = (p: { http: boolean; tcp: boolean } | undefined): InboundProtocol => (p === undefined ? 'NONE' : p.http && p.tcp ? 'AUTO' : p.http ? 'HTTP' : 'TCP');
    const catchAll = ports.get(0);
    const mode = catchAll === undefined ? 'PERMISSIVE' : modeOf(catchAll);
    const portModes: Record<number, MtlsMode> = {};
    const portProtocols: Record<number, InboundProtocol> = {};
    for (const [port, p] of ports) {
      if (port === 0) continue;
      if (modeOf(p) !== mode) portModes[port] = modeOf(p);
      portProtocols[port] = protocolOf(p);
    }
    const portRoutes = [...routes].filter(([port]) => port !== 0).map(([port, r]) => ({ ...r.config, name: String(port) }));
    const defaultRoutes = routes.get(0)?.config;
    return {
      ...(defaultRoutes !== undefined ? { defaultRoutes } : {}),
      portRoutes,
      peerAuthentication: { mode, portModes },
      // Without catch-all chains, connections to other ports match nothing and are closed.
      protocols: { default: protocolOf(catchAll), ports: portProtocols },
    };
  }
}
