/**
 * What the sidecar's outbound listener does with a connection, decided from its original
 * destination and, when that is not enough, from its first bytes (Istio's virtualOutbound
 * listener: per-VIP TCP/TLS filter chains, 0.0.0.0:port HTTP listeners, then the passthrough or
 * blackhole chain). Everything here is built once per snapshot.
 */
import { BlockList, isIP } from 'node:net';
import { SERVER_FIRST_PORTS, type L4Route, type MeshSettings, type TcpService } from '../model/index.js';
import { PASSTHROUGH_CLUSTER } from '../model/cluster.js';
import { DomainTable } from './domain-table.js';

/** serve as HTTP; proxy bytes to a cluster; or close at once (BlackHoleCluster). */
export type L4Decision = { readonly kind: 'http' } | { readonly kind: 'tcp'; readonly cluster: string } | { readonly kind: 'blackhole' };

export const HTTP_DECISION: L4Decision = { kind: 'http' };
export const BLACKHOLE_DECISION: L4Decision = { kind: 'blackhole' };

/** What the first bytes turned out to be; `sni` for TLS. */
export interface SniffedProtocol {
  readonly kind: 'http' | 'tls' | 'tcp';
  readonly sni?: string;
}

const HTTP = HTTP_DECISION;
const BLACKHOLE = BLACKHOLE_DECISION;

class CompiledL4Route {
  readonly #subnets: BlockList | null;
  readonly #sni: readonly string[] | undefined;
  readonly #clusters: readonly string[];
  readonly #cumulative: readonly number[];

  constructor(route: L4Route) {
    this.#subnets = route.destinationSubnets.length === 0 ? null : blockList(route.destinationSubnets);
    this.#sni = route.sniHosts;
    this.#clusters = route.destinations.map((d) => d.cluster);
    let total = 0;
    this.#cumulative = route.destinations.map((d) => (total += d.weight));
  }

  matches(address: string, sni: string | undefined): boolean {
    if (this.#clusters.length === 0) return false;
    if (this.#subnets !== null && !this.#subnets.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4')) return false;
    if (this.#sni === undefined) return true;
    return sni !== undefined && this.#sni.some((p) => p === sni || (p.startsWith('*') && sni.endsWith(p.slice(1))));
  }

  /** A weighted draw per connection. */
  pick(): string {
    if (this.#clusters.length === 1) return this.#clusters[0]!;
    const r = Math.random() * this.#cumulative[this.#cumulative.length - 1]!;
    const i = this.#cumulative.findIndex((c) => r < c);
    return this.#clusters[i < 0 ? this.#clusters.length - 1 : i]!;
  }
}

/** Subnets as a BlockList; a bare address is a single host. Entries are canonical (validated at load). */
function blockList(cidrs: readonly string[]): BlockList {
  const list = new BlockList();
  for (const c of cidrs) {
    const [address, bits] = c.split('/');
    const family = isIP(address ?? '');
    if (family === 0) continue;
    const type = family === 6 ? 'ipv6' : 'ipv4';
    list.addSubnet(address!, bits === undefined ? (family === 6 ? 128 : 32) : Number(bits), type);
  }
  return list;
}

/** VirtualService `tcp`/`tls` routes in order: the first that matches picks the cluster. */
export class L4Routes {
  readonly #routes: readonly CompiledL4Route[];

  constructor(routes: readonly L4Route[]) {
    this.#routes = routes.map((r) => new CompiledL4Route(r));
  }

  /** A weighted pick from the first route matching the destination address and SNI, if any. */
  cluster(address: string, sni: string | undefined): string | undefined {
    for (const r of this.#routes) if (r.matches(address, sni)) return r.pick();
    return undefined;
  }
}

class CompiledL4Service {
  readonly service: TcpService;
  readonly #routes: L4Routes;

  constructor(service: TcpService) {
    this.service = service;
    this.#routes = new L4Routes(service.routes);
  }

  /** The first matching route's cluster, else the service port's own cluster. */
  cluster(address: string, sni: string | undefined): string {
    return this.#routes.cluster(address, sni) ?? this.service.cluster;
  }
}

/** The services on one port. */
interface PortEntry {
  readonly byVip: Map<string, CompiledL4Service>;
  /** Services whose addresses are CIDR ranges, checked after exact VIPs, in declaration order. */
  readonly bySubnet: Array<{ readonly subnets: BlockList; readonly service: CompiledL4Service }>;
  /** TLS services without a VIP, by name and by their routes' SNI hosts. */
  readonly bySni: DomainTable<CompiledL4Service>;
  /** The first TCP or AUTO service without a VIP: gets this port's non-HTTP traffic. */
  wildcard: CompiledL4Service | undefined;
  /**
   * HTTP is served on this port for any address, like Istio's 0.0.0.0:port HTTP listener: some
   * service declares HTTP here (whatever its VIPs), or leaves the protocol to sniffing without a VIP.
   */
  http: boolean;
  /** Some service without a VIP needs the first bytes (AUTO or TLS). */
  sniff: boolean;
}

export class L4Table {
  readonly #ports = new Map<number, PortEntry>();
  readonly #unknown: L4Decision;

  constructor(services: readonly TcpService[], mesh: MeshSettings) {
    this.#unknown = mesh.outboundTrafficPolicy === 'REGISTRY_ONLY' ? BLACKHOLE : { kind: 'tcp', cluster: PASSTHROUGH_CLUSTER };
    for (const s of services) {
      let entry = this.#ports.get(s.port);
      if (entry === undefined) {
        entry = { byVip: new Map(), bySubnet: [], bySni: new DomainTable(), wildcard: undefined, http: false, sniff: false };
        this.#ports.set(s.port, entry);
      }
      const compiled = new CompiledL4Service(s);
      if (s.protocol === 'HTTP') entry.http = true;
      if (s.addresses.length > 0 || s.subnets.length > 0) {
        for (const a of s.addresses) if (!entry.byVip.has(a)) entry.byVip.set(a, compiled);
        if (s.subnets.length > 0) entry.bySubnet.push({ subnets: blockList(s.subnets), service: compiled });
        continue;
      }
      if (s.protocol === 'AUTO') entry.http = true;
      if (s.protocol === 'TLS' || s.protocol === 'AUTO') entry.sniff = true;
      if (s.protocol === 'TLS') {
        for (const d of s.domains) entry.bySni.add(d, compiled);
        for (const r of s.routes) for (const h of r.sniHosts ?? []) entry.bySni.add(h, compiled);
      }
      if ((s.protocol === 'TCP' || s.protocol === 'AUTO') && entry.wildcard === undefined) entry.wildcard = compiled;
    }
  }

  /** The service a connection to `address` belongs to by its VIP or CIDR range, if any. */
  #byAddress(entry: PortEntry | undefined, address: string): CompiledL4Service | undefined {
    if (entry === undefined) return undefined;
    const exact = entry.byVip.get(address);
    if (exact !== undefined || entry.bySubnet.length === 0) return exact;
    const type = isIP(address) === 6 ? 'ipv6' : 'ipv4';
    return entry.bySubnet.find((s) => s.subnets.check(address, type))?.service;
  }

  /** The decision before reading any byte, or undefined when the first bytes must decide. */
  early(address: string, port: number): L4Decision | undefined {
    const entry = this.#ports.get(port);
    const vip = this.#byAddress(entry, address);
    if (vip !== undefined) {
      const p = vip.service.protocol;
      if (p === 'HTTP') return HTTP;
      if (p === 'TCP') return { kind: 'tcp', cluster: vip.cluster(address, undefined) };
      return undefined;
    }
    if (entry === undefined) return SERVER_FIRST_PORTS.has(port) ? this.#unknown : undefined;
    if (entry.http && !entry.sniff && entry.wildcard === undefined) return HTTP;
    if (!entry.http && !entry.sniff && entry.wildcard !== undefined) return { kind: 'tcp', cluster: entry.wildcard.cluster(address, undefined) };
    return undefined;
  }

  /** The decision once the first bytes were classified. */
  decide(address: string, port: number, sniffed: SniffedProtocol): L4Decision {
    const entry = this.#ports.get(port);
    const vip = this.#byAddress(entry, address);
    if (vip !== undefined) {
      if (sniffed.kind === 'http' && vip.service.protocol !== 'TLS') return HTTP;
      return { kind: 'tcp', cluster: vip.cluster(address, sniffed.sni) };
    }
    if (entry !== undefined) {
      if (sniffed.kind === 'http' && entry.http) return HTTP;
      if (sniffed.kind === 'tls' && sniffed.sni !== undefined) {
        const svc = entry.bySni.find(sniffed.sni);
        if (svc !== undefined) return { kind: 'tcp', cluster: svc.cluster(address, sniffed.sni) };
      }
      if (entry.wildcard !== undefined) return { kind: 'tcp', cluster: entry.wildcard.cluster(address, sniffed.sni) };
    }
    // An unknown destination: under ALLOW_ANY HTTP is still served (the allow_any virtual host
    // passes it through, with routing and telemetry); everything else passes through or is closed.
    return sniffed.kind === 'http' && this.#unknown !== BLACKHOLE ? HTTP : this.#unknown;
  }
}
