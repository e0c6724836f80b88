/**
 * Gateways and VirtualServices → the gateway proxy's ports, following istiod's gateway logic
 * (pilot gateway.go and MergeGateways):
 * - a Gateway applies when its selector matches this proxy's labels; its servers are merged per
 *   port in creation order, and a server that conflicts with an earlier one on its port (another
 *   kind, or an SNI host already served) is left out with a warning;
 * - plaintext HTTP servers on a port share one route config; each TLS server has its own;
 * - a VirtualService serves a server when its `gateways` name the Gateway, the server's
 *   `namespace/host` admits its namespace, and its hosts meet the server's hosts (the virtual
 *   host takes the more specific name); VirtualServices serving the same name share its
 *   virtual host, their routes in order;
 * - `httpsRedirect` on a plaintext server answers every request for its hosts with a 301 to
 *   https;
 * - a route config with no virtual host answers 404 (Envoy's NR).
 */
import {
  NO_HEADER_MUTATION,
  type GatewayPort,
  type GatewayServer,
  type GatewayTls,
  type L4Route,
  type MeshSettings,
  type Route,
  type RouteConfig,
  type TlsVersion,
  type VirtualHost,
} from '../../model/index.js';
import type { Diagnostic } from '../diagnostics.js';
import type { GatewayServerSpec, ServerTlsSpec } from './gateway.js';
import { hostMatches, toFqdn } from './hosts.js';
import { l4RoutesFor } from './l4-routes.js';
import { labelsMatch, type Service } from './registry.js';
import { creationTime, resourceDiagnostic, type IstioResource } from './resources.js';
import { appliesIn, VirtualServiceTranslator, type RouteScope, type VirtualServiceResource } from './routes.js';

export type GatewayResource = Extract<IstioResource, { kind: 'Gateway' }>;

export interface GatewayContext {
  readonly mesh: MeshSettings;
  readonly registry: ReadonlyMap<string, Service>;
  readonly diagnostics: Diagnostic[];
}

const HTTP_PROTOCOLS = new Set(['HTTP', 'HTTP2', 'GRPC', 'GRPC-WEB']);

const TLS_VERSIONS: Readonly<Record<string, TlsVersion | undefined>> = {
  TLSV1_0: 'TLSv1',
  TLSV1_1: 'TLSv1.1',
  TLSV1_2: 'TLSv1.2',
  TLSV1_3: 'TLSv1.3',
};

/** One server of one selected Gateway, with where it came from. */
interface ServerEntry {
  readonly gateway: GatewayResource;
  readonly scope: RouteScope;
  readonly index: number;
  readonly server: GatewayServerSpec;
  /** The server's hosts as `{ namespace, host }`; namespace `*` admits every one. */
  readonly hosts: ReadonlyArray<{ readonly namespace: string; readonly host: string }>;
}

/** Whether the server terminates TLS (SIMPLE, MUTUAL, OPTIONAL_MUTUAL, ISTIO_MUTUAL). */
function terminates(tls: ServerTlsSpec | undefined): boolean {
  const mode = tls?.mode;
  return mode === 'SIMPLE' || mode === 'MUTUAL' || mode === 'OPTIONAL_MUTUAL' || mode === 'ISTIO_MUTUAL';
}

function portKind(server: GatewayServerSpec): GatewayPort['kind'] {
  const protocol = server.port!.protocol!;
  if (HTTP_PROTOCOLS.has(protocol)) return 'http';
  return protocol === 'HTTPS' || protocol === 'TLS' ? 'tls' : 'tcp';
}

/** `namespace/gateway/index`: unique, whatever the servers' own (optional, unchecked) names. */
function serverName(e: ServerEntry): string {
  return `${e.scope}/${e.index}`;
}

function serverHosts(server: GatewayServerSpec, gatewayNamespace: string): ServerEntry['hosts'] {
  return (server.hosts ?? []).map((h) => {
    const slash = h.indexOf('/');
    const namespace = slash < 0 ? '*' : h.slice(0, slash);
    return { namespace: namespace === '.' ? gatewayNamespace : namespace, host: h.slice(slash + 1).toLowerCase() };
  });
}

export class GatewayBuilder {
  readonly #ctx: GatewayContext;
  readonly #virtualServices: readonly VirtualServiceResource[];
  readonly #translators = new Map<string, VirtualServiceTranslator>();
  readonly #warned = new Set<string>();

  constructor(virtualServices: readonly VirtualServiceResource[], ctx: GatewayContext) {
    this.#virtualServices = virtualServices;
    this.#ctx = ctx;
  }

  /** The ports of the Gateways that select this proxy, in port order. */
  build(gateways: readonly GatewayResource[]): GatewayPort[] {
    const mesh = this.#ctx.mesh;
    const selected = gateways
      .filter((gw) => labelsMatch(gw.spec.selector ?? {}, mesh.workloadLabels))
      // Istio's order: oldest first, then by name, then by namespace.
      .sort(
        (a, b) =>
          creationTime(a.metadata) - creationTime(b.metadata) ||
          a.metadata.name.localeCompare(b.metadata.name) ||
          (a.metadata.namespace ?? mesh.defaultNamespace).localeCompare(b.metadata.namespace ?? mesh.defaultNamespace),
      );
    const byPort = new Map<number, { kind: GatewayPort['kind']; bind: string; entries: ServerEntry[] }>();
    for (const gateway of selected) {
      const namespace = gateway.metadata.namespace ?? mesh.defaultNamespace;
      const scope: RouteScope = `${namespace}/${gateway.metadata.name}`;
      gateway.spec.servers!.forEach((server, index) => {
        const entry: ServerEntry = { gateway, scope, index, server, hosts: serverHosts(server, namespace) };
        const port = server.port!.number!;
        const kind = portKind(server);
        const bind = server.bind ?? '';
        const existing = byPort.get(port);
        if (existing === undefined) {
          byPort.set(port, { kind, bind, entries: [entry] });
          return;
        }
        const conflict =
          existing.bind !== bind
            ? `port ${port} is already bound to ${existing.bind || 'every address'} by ${serverName(existing.entries[0]!)}`
            : existing.kind !== kind
              ? `port ${port} already serves ${existing.kind.toUpperCase()} (${serverName(existing.entries[0]!)})`
              : kind === 'tcp'
                ? `port ${port} already serves TCP for ${serverName(existing.entries[0]!)}; a TCP port takes one server`
                : undefined;
        if (conflict !== undefined) this.#warn(gateway, ['spec', 'servers', index, 'port'], `${conflict}: this server is ignored`);
        else existing.entries.push(entry);
      });
    }
    return [...byPort.entries()]
      .sort(([a], [b]) => a - b)
      .map(([port, { kind, bind, entries }]) => ({ port, bind, kind, servers: this.#servers(port, kind, entries) }));
  }

  #servers(port: number, kind: GatewayPort['kind'], entries: readonly ServerEntry[]): GatewayServer[] {
    if (kind === 'http') {
      const hosts = [...new Set(entries.flatMap((e) => e.hosts.map((h) => h.host)))];
      return [{ name: `http.${port}`, hosts, routes: { kind: 'http', config: this.#httpRoutes(`http.${port}`, port, entries) } }];
    }
    if (kind === 'tcp') {
      const e = entries[0]!;
      return [{ name: serverName(e), hosts: e.hosts.map((h) => h.host), routes: { kind: 'l4', routes: this.#l4Routes('tcp', port, e) } }];
    }
    // TLS: each server by SNI; a host already served on this port stays with the first server.
    const claimed = new Set<string>();
    const out: GatewayServer[] = [];
    for (const e of entries) {
      const hosts = e.hosts.map((h) => h.host).filter((h) => !claimed.has(h));
      if (hosts.length < e.hosts.length) {
        this.#warn(e.gateway, ['spec', 'servers', e.index, 'hosts'], `some hosts are already served on port ${port} by an earlier server; that server keeps them`);
      }
      if (hosts.length === 0) continue;
      for (const h of hosts) claimed.add(h);
      const name = serverName(e);
      const tls = e.server.tls;
      if (!terminates(tls)) {
        out.push({ name, hosts, routes: { kind: 'l4', routes: this.#l4Routes('tls', port, e) } });
        continue;
      }
      const routes: GatewayServer['routes'] =
        e.server.port!.protocol === 'HTTPS' ? { kind: 'http', config: this.#httpRoutes(`https.${port}.${name}`, port, [e]) } : { kind: 'l4', routes: this.#l4Routes('tcp', port, e) };
      out.push({ name, hosts, tls: serverTls(tls!), routes });
    }
    return out;
  }

  /** The VirtualServices bound to the entry's Gateway, each with the domains it serves there. */
  *#bound(e: ServerEntry): Generator<{ vs: VirtualServiceResource; domains: string[] }> {
    const defaultNamespace = this.#ctx.mesh.defaultNamespace;
    for (const vs of this.#virtualServices) {
      if (!appliesIn(vs, e.scope, defaultNamespace)) continue;
      const namespace = vs.metadata.namespace ?? defaultNamespace;
      const domains: string[] = [];
      for (const { namespace: allowed, host: serverHost } of e.hosts) {
        if (allowed !== '*' && allowed !== namespace) continue;
        for (const h of vs.spec.hosts ?? []) {
          const host = toFqdn(h, namespace);
          // The more specific of the two names is the one served.
          const domain = hostMatches(serverHost, host) ? host : hostMatches(host, serverHost) ? serverHost : undefined;
          if (domain !== undefined && !domains.includes(domain)) domains.push(domain);
        }
      }
      if (domains.length > 0) yield { vs, domains };
    }
  }

  /**
   * One virtual host per served name, as istiod builds gateway routes: a name several
   * VirtualServices (or one through several Gateways) serve gets their routes in turn, the
   * first VirtualService's first. A name an httpsRedirect server lists only redirects.
   */
  #httpRoutes(name: string, port: number, entries: readonly ServerEntry[]): RouteConfig {
    const byDomain = new Map<string, { routes: Route[]; from: Set<string> }>();
    const redirected = new Set<string>();
    for (const e of entries) {
      // Only plaintext servers redirect (over TLS the request is already https): every name the
      // server lists or serves through a VirtualService.
      const redirects = e.server.tls?.httpsRedirect === true && portKind(e.server) === 'http';
      if (redirects) for (const h of e.hosts) redirected.add(h.host);
      for (const { vs, domains } of this.#bound(e)) {
        if (redirects) for (const d of domains) redirected.add(d);
        const source = `${vs.label}|${vs.metadata.namespace ?? ''}|${e.scope}`;
        const routes = this.#translator(vs, e.scope).routesFor(port);
        if (routes.length === 0) continue;
        for (const d of domains) {
          let vhost = byDomain.get(d);
          if (vhost === undefined) byDomain.set(d, (vhost = { routes: [], from: new Set() }));
          // The same VirtualService through the same Gateway twice (two of its servers) adds nothing.
          if (vhost.from.has(source)) continue;
          vhost.from.add(source);
          vhost.routes.push(...routes);
        }
      }
    }
    for (const d of redirected) if (!byDomain.has(d)) byDomain.set(d, { routes: [], from: new Set() });
    const virtualHosts: VirtualHost[] = [...byDomain].map(([domain, { routes }]) => ({
      name: `${domain}:${port}`,
      domains: [domain],
      routes: redirected.has(domain) ? [HTTPS_REDIRECT] : routes,
    }));
    // Envoy answers 404 (NR) for every request to a route config without virtual hosts.
    if (virtualHosts.length === 0) virtualHosts.push({ name: `blackhole:${port}`, domains: ['*'], routes: [] });
    return { name, virtualHosts };
  }

  #l4Routes(section: 'tcp' | 'tls', port: number, e: ServerEntry): L4Route[] {
    const ctx = {
      scope: e.scope,
      registry: this.#ctx.registry,
      clientNamespace: this.#ctx.mesh.defaultNamespace,
      proxyLabels: this.#ctx.mesh.workloadLabels,
      diagnostics: this.#ctx.diagnostics,
      warned: this.#warned,
    };
    return [...this.#bound(e)].flatMap(({ vs }) => l4RoutesFor(vs, section, port, ctx));
  }

  #translator(vs: VirtualServiceResource, scope: RouteScope): VirtualServiceTranslator {
    const key = `${vs.label}|${vs.metadata.namespace ?? ''}|${scope}`;
    let t = this.#translators.get(key);
    if (t === undefined) {
      t = new VirtualServiceTranslator(vs, { mesh: this.#ctx.mesh, scope, proxyLabels: this.#ctx.mesh.workloadLabels, registry: this.#ctx.registry, diagnostics: this.#ctx.diagnostics });
      this.#translators.set(key, t);
    }
    return t;
  }

  #warn(r: IstioResource, path: Array<string | number>, message: string): void {
    const key = `${r.label}|${path.join('.')}|${message}`;
    if (this.#warned.has(key)) return;
    this.#warned.add(key);
    this.#ctx.diagnostics.push(resourceDiagnostic(r, path, message, 'warning'));
  }
}

/** Envoy's `require_tls: ALL`: every plaintext request is sent to https, same host and path. */
const HTTPS_REDIRECT = {
  name: 'https_redirect',
  match: { headers: [], queryParams: [] },
  action: { kind: 'redirect', schemeRedirect: 'https', responseCode: 301 },
  requestHeaders: NO_HEADER_MUTATION,
  responseHeaders: NO_HEADER_MUTATION,
} as const;

function serverTls(tls: ServerTlsSpec): GatewayTls {
  const max = TLS_VERSIONS[tls.maxProtocolVersion ?? ''];
  return {
    mode: tls.mode as GatewayTls['mode'],
    ...(tls.serverCertificate !== undefined ? { serverCertificate: tls.serverCertificate } : {}),
    ...(tls.privateKey !== undefined ? { privateKey: tls.privateKey } : {}),
    ...(tls.caCertificates !== undefined ? { caCertificates: tls.caCertificates } : {}),
    subjectAltNames: tls.subjectAltNames ?? [],
    // Istio's gateways accept TLS 1.2 and up unless told otherwise.
    minProtocolVersion: TLS_VERSIONS[tls.minProtocolVersion ?? ''] ?? 'TLSv1.2',
    ...(max !== undefined ? { maxProtocolVersion: max } : {}),
    ...(tls.cipherSuites !== undefined ? { cipherSuites: tls.cipherSuites } : {}),
  };
}
