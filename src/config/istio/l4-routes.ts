/**
 * The L4 side of the mesh: one TcpService per service port, with the VirtualService `tcp` and
 * `tls` routes that apply to it (Istio's outbound TCP/TLS filter chains). HTTP ports are here
 * too, for CONNECT and for connections to them that turn out not to be HTTP.
 */
import { SERVER_FIRST_PORTS, type L4Destination, type L4Route, type PortProtocol, type TcpService } from '../../model/index.js';
import type { Diagnostic } from '../diagnostics.js';
import { canonicalCidr } from './addresses.js';
import { hostMatches, nameForms, toFqdn } from './hosts.js';
import { HTTP_PROTOCOLS, type Service, type ServicePort } from './registry.js';
import { resourceDiagnostic } from './resources.js';
import { appliesToMesh, clusterName, gatewaysInclude, type RouteScope, type VirtualServiceResource } from './routes.js';

const TLS_PROTOCOLS = new Set(['HTTPS', 'TLS']);

export function portProtocol(port: ServicePort): PortProtocol {
  const p = port.protocol;
  if (p === undefined) return SERVER_FIRST_PORTS.has(port.number) ? 'TCP' : 'AUTO';
  if (HTTP_PROTOCOLS.has(p)) return 'HTTP';
  if (TLS_PROTOCOLS.has(p)) return 'TLS';
  return 'TCP';
}

export interface L4Context {
  /** Whose routes are built: the sidecars' (`mesh`, the default) or one gateway's. */
  readonly scope?: RouteScope;
  readonly registry: ReadonlyMap<string, Service>;
  readonly clientNamespace: string;
  readonly proxyLabels: Readonly<Record<string, string>>;
  readonly diagnostics: Diagnostic[];
  /** Warnings already given (one per VirtualService field, not one per service port). */
  readonly warned?: Set<string>;
}

type L4Match = NonNullable<NonNullable<VirtualServiceResource['spec']['tcp']>[number]['match']>[number] & { sniHosts?: string[] };
type L4Rule = { match?: L4Match[]; route?: Array<{ destination?: { host?: string; subset?: string; port?: { number?: number } }; weight?: number }> };

/** Istio's L4 source match: gateways name the scope, labels and namespace match this proxy. */
function sourceMatches(m: L4Match, vsNamespace: string, ctx: L4Context): boolean {
  if (m.gateways !== undefined && m.gateways.length > 0) return gatewaysInclude(m.gateways, ctx.scope ?? 'mesh', vsNamespace);
  for (const [k, v] of Object.entries(m.sourceLabels ?? {})) if (ctx.proxyLabels[k] !== v) return false;
  return m.sourceNamespace === undefined || m.sourceNamespace === ctx.clientNamespace;
}

/** The services a VirtualService's hosts name (exact or wildcard). */
function servicesOf(vs: VirtualServiceResource, ctx: L4Context): Service[] {
  const ns = vs.metadata.namespace ?? ctx.clientNamespace;
  const out: Service[] = [];
  for (const h of vs.spec.hosts ?? []) {
    const host = toFqdn(h, ns);
    for (const [name, svc] of ctx.registry) if (hostMatches(host, name) && !out.includes(svc)) out.push(svc);
  }
  return out;
}

function destinations(vs: VirtualServiceResource, rule: L4Rule, at: Array<string | number>, port: number, ctx: L4Context): L4Destination[] {
  const ns = vs.metadata.namespace ?? ctx.clientNamespace;
  const routes = rule.route ?? [];
  const out: L4Destination[] = [];
  routes.forEach((r, j) => {
    const weight = routes.length === 1 ? 1 : (r.weight ?? 0);
    if (weight === 0) return;
    const host = toFqdn(r.destination!.host!, ns);
    const service = ctx.registry.get(host);
    const p = r.destination!.port?.number ?? (service !== undefined && service.ports.length === 1 ? service.ports[0]!.number : port);
    const path = [...at, 'route', j, 'destination', 'host'];
    const key = `${vs.label}|${path.join('.')}`;
    if (service === undefined && !ctx.warned?.has(key)) {
      ctx.warned?.add(key);
      ctx.diagnostics.push(
        resourceDiagnostic(vs, path, `host ${host} is not in the service registry: connections routed here are closed`, 'warning'),
      );
    }
    out.push({ cluster: clusterName(p, r.destination!.subset, host), weight });
  });
  return out;
}

/** The routes of one VirtualService section (`tcp` or `tls`) that serve `port`, in order. */
export function l4RoutesFor(vs: VirtualServiceResource, section: 'tcp' | 'tls', port: number, ctx: L4Context): L4Route[] {
  const out: L4Route[] = [];
  ((vs.spec[section] ?? []) as L4Rule[]).forEach((rule, i) => {
    const at = ['spec', section, i];
    const matches = rule.match ?? [];
    const dests = destinations(vs, rule, at, port, ctx);
    if (matches.length === 0) {
      out.push({ destinationSubnets: [], destinations: dests });
      return;
    }
    for (const m of matches) {
      if ((m.port !== undefined && m.port !== port) || !sourceMatches(m, vs.metadata.namespace ?? ctx.clientNamespace, ctx)) continue;
      out.push({
        destinationSubnets: (m.destinationSubnets ?? []).map((s) => canonicalCidr(s) ?? s),
        ...(section === 'tls' ? { sniHosts: (m.sniHosts ?? []).map((h) => h.toLowerCase()) } : {}),
        destinations: dests,
      });
    }
  });
  return out;
}

/** One TcpService per registry service port; the first mesh VirtualService naming it routes it. */
export function buildTcpServices(virtualServices: readonly VirtualServiceResource[], context: L4Context): TcpService[] {
  const ctx = { ...context, warned: new Set<string>() };
  const routing = new Map<string, VirtualServiceResource>();
  for (const vs of virtualServices.filter(appliesToMesh)) {
    if (vs.spec.tcp === undefined && vs.spec.tls === undefined) continue;
    for (const svc of servicesOf(vs, ctx)) if (!routing.has(svc.hostname)) routing.set(svc.hostname, vs);
  }
  const out: TcpService[] = [];
  for (const svc of ctx.registry.values()) {
    const vs = routing.get(svc.hostname);
    for (const p of svc.ports) {
      const protocol = portProtocol(p);
      const section = protocol === 'TLS' ? 'tls' : protocol === 'HTTP' ? undefined : 'tcp';
      out.push({
        hostname: svc.hostname,
        domains: [...nameForms(svc.hostname, ctx.clientNamespace), ...svc.addresses],
        addresses: svc.addresses,
        subnets: svc.subnets,
        port: p.number,
        protocol,
        cluster: clusterName(p.number, undefined, svc.hostname),
        routes: vs === undefined || section === undefined ? [] : l4RoutesFor(vs, section, p.number, ctx),
      });
    }
  }
  return out;
}
