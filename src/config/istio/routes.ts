/**
 * VirtualServices and the registry → outbound HTTP route configs, one per port, following
 * istiod's sidecar logic (pilot route.go and httproute.go):
 * - a VirtualService applies to the HTTP ports of the services its hosts name; hosts outside the
 *   registry get a virtual host on port 80 when the VirtualService names no service at all;
 * - its http rules are ordered and the first match wins; a `match.port` limits a rule to that
 *   port; rules stop after a catch-all;
 * - a service without a VirtualService gets a default route to its cluster;
 * - every route config ends with the catch-all `allow_any` (PassthroughCluster) or `block_all`
 *   (direct 502) virtual host, by outboundTrafficPolicy.
 */
import type { MeshSettings } from '../../model/mesh.js';
import {
  NO_HEADER_MUTATION,
  INBOUND_PASSTHROUGH_CLUSTER,
  PASSTHROUGH_CLUSTER,
  type HeaderMatch,
  type HeaderMutation,
  type MirrorPolicy,
  type QueryParamMatch,
  type Route,
  type RouteAction,
  type RouteConfig,
  type RouteMatch,
  type StringMatch,
  type VirtualHost,
  type WeightedCluster,
} from '../../model/index.js';
import type { Diagnostic } from '../diagnostics.js';
import type { IstioDestination, IstioHeaders, IstioStringMatch } from './common.js';
import { hostMatches, nameForms, toFqdn } from './hosts.js';
import type { Service } from './registry.js';
import { resourceDiagnostic, type IstioResource } from './resources.js';
import { corsPolicy, faultPolicy, retryPolicy } from './route-policies.js';
import type { HttpMatch, HttpRoute } from './virtual-service.js';

export type VirtualServiceResource = Extract<IstioResource, { kind: 'VirtualService' }>;

export interface RouteContext {
  readonly mesh: MeshSettings;
  /** Whose routes are built: the sidecars' (`mesh`, the default) or one gateway's. */
  readonly scope?: RouteScope;
  /** Labels of the workload this proxy stands for (for `sourceLabels`). */
  readonly proxyLabels: Readonly<Record<string, string>>;
  readonly registry: ReadonlyMap<string, Service>;
  readonly diagnostics: Diagnostic[];
}

/** Where routes apply: every sidecar (`mesh`) or one gateway, named `namespace/name`. */
export type RouteScope = 'mesh' | `${string}/${string}`;

/**
 * Whether a `gateways` list (a VirtualService's or a match's) names `scope`. A gateway named
 * without a namespace is in the VirtualService's namespace.
 */
export function gatewaysInclude(gateways: readonly string[], scope: RouteScope, vsNamespace: string): boolean {
  return gateways.some((g) => (g === 'mesh' ? scope === 'mesh' : (g.includes('/') ? g : `${vsNamespace}/${g}`) === scope));
}

/** Whether a VirtualService applies in `scope`: unset gateways mean `mesh` only. */
export function appliesIn(vs: VirtualServiceResource, scope: RouteScope, defaultNamespace: string): boolean {
  const gateways = vs.spec.gateways;
  if (gateways === undefined || gateways.length === 0) return scope === 'mesh';
  return gatewaysInclude(gateways, scope, vs.metadata.namespace ?? defaultNamespace);
}

/** Whether a VirtualService applies to sidecars (its gateways are unset or include `mesh`). */
export function appliesToMesh(vs: VirtualServiceResource): boolean {
  const gateways = vs.spec.gateways;
  return gateways === undefined || gateways.length === 0 || gateways.includes('mesh');
}

/** `{ [key]: value }` when value is defined, else `{}` (for optional model fields). */
function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

export function clusterName(port: number, subset: string | undefined, host: string): string {
  return `outbound|${port}|${subset ?? ''}|${host}`;
}

// === matches ===

function stringMatch(m: IstioStringMatch, ignoreCase = false): StringMatch | undefined {
  if (m.exact !== undefined) return { kind: 'exact', value: m.exact, ignoreCase };
  if (m.prefix !== undefined) return { kind: 'prefix', value: m.prefix, ignoreCase };
  if (m.regex !== undefined) return { kind: 'regex', value: m.regex };
  return undefined;
}

/** Istio turns an empty StringMatch, or the regex `*`, into a presence match. */
function isPresence(m: IstioStringMatch): boolean {
  return m.exact === undefined && m.prefix === undefined && (m.regex === undefined || m.regex === '*');
}

function headerMatch(name: string, m: IstioStringMatch, invert: boolean): HeaderMatch {
  const presence = isPresence(m);
  const match = presence ? undefined : stringMatch(m);
  return {
    name,
    ...(match !== undefined ? { match } : {}),
    invert,
    treatMissingAsEmpty: invert && !presence,
  };
}

function translateMatch(m: HttpMatch | undefined): RouteMatch {
  if (m === undefined) return { headers: [], queryParams: [] };
  const headers: HeaderMatch[] = [];
  for (const [name, sm] of Object.entries(m.headers ?? {})) headers.push(headerMatch(name, sm, false));
  for (const [name, sm] of Object.entries(m.withoutHeaders ?? {})) headers.push(headerMatch(name, sm, true));
  headers.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  if (m.method !== undefined) headers.push(headerMatch(':method', m.method, false));
  if (m.authority !== undefined) headers.push(headerMatch(':authority', m.authority, false));
  if (m.scheme !== undefined) headers.push(headerMatch(':scheme', m.scheme, false));
  const queryParams: QueryParamMatch[] = Object.entries(m.queryParams ?? {}).map(([name, sm]) => {
    const match = isPresence(sm) ? undefined : stringMatch(sm);
    return { name, ...(match !== undefined ? { match } : {}) };
  });
  const path = m.uri === undefined ? undefined : stringMatch(m.uri, m.ignoreUriCase === true);
  return { ...(path !== undefined ? { path } : {}), headers, queryParams };
}

/** Istio's IsCatchAllRoute: matches every path with no header or query conditions. */
function isCatchAll(match: RouteMatch): boolean {
  const p = match.path;
  const everyPath = p === undefined || (p.kind === 'prefix' && p.value === '/') || (p.kind === 'regex' && (p.value === '*' || p.value === '.*'));
  return everyPath && match.headers.length === 0 && match.queryParams.length === 0;
}

// === header operations ===

const isAuthority = (name: string): boolean => name.toLowerCase() === ':authority' || name.toLowerCase() === 'host';
const isInternal = (name: string): boolean => name.startsWith(':') || name.toLowerCase() === 'host';

interface HeaderOperations {
  readonly request: HeaderMutation;
  readonly response: HeaderMutation;
  /** Host rewrite requested through `:authority`/`host` in set (preferred) or add. */
  readonly authority: string | undefined;
}

function sortedEntries(map: Readonly<Record<string, string>> | undefined): Array<[string, string]> {
  return Object.entries(map ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

function headerOperations(h: IstioHeaders | undefined): HeaderOperations {
  // Istio lists `set` (overwrite) entries before `add` (append) entries, each sorted by name.
  const mutation = (ops: NonNullable<IstioHeaders['request']> | undefined): HeaderMutation => ({
    remove: (ops?.remove ?? []).filter((n) => !isInternal(n)),
    add: [
      ...sortedEntries(ops?.set).filter(([n]) => !isInternal(n)).map(([name, value]) => ({ name, value, append: false })),
      ...sortedEntries(ops?.add).filter(([n]) => !isInternal(n)).map(([name, value]) => ({ name, value, append: true })),
    ],
  });
  const setAuthority = sortedEntries(h?.request?.set).find(([n]) => isAuthority(n))?.[1];
  const addAuthority = sortedEntries(h?.request?.add).find(([n]) => isAuthority(n))?.[1];
  return { request: mutation(h?.request), response: mutation(h?.response), authority: setAuthority ?? addAuthority };
}

/** `b` after `a`, as Istio appends a single destination's operations to the route's lists. */
function concatMutations(a: HeaderMutation, b: HeaderMutation): HeaderMutation {
  return { remove: [...a.remove, ...b.remove], add: [...a.add, ...b.add] };
}

// === routes ===

export class VirtualServiceTranslator {
  readonly #vs: VirtualServiceResource;
  readonly #ctx: RouteContext;
  readonly #namespace: string;

  constructor(vs: VirtualServiceResource, ctx: RouteContext) {
    this.#vs = vs;
    this.#ctx = ctx;
    this.#namespace = vs.metadata.namespace ?? ctx.mesh.defaultNamespace;
  }

  /** Istio sourceMatchHTTP: per-match gateways, or sourceLabels/sourceNamespace against this proxy. */
  #sourceMatches(m: HttpMatch): boolean {
    if (m.gateways !== undefined && m.gateways.length > 0) return gatewaysInclude(m.gateways, this.#ctx.scope ?? 'mesh', this.#namespace);
    for (const [k, v] of Object.entries(m.sourceLabels ?? {})) if (this.#ctx.proxyLabels[k] !== v) return false;
    return m.sourceNamespace === undefined || m.sourceNamespace === this.#ctx.mesh.defaultNamespace;
  }

  /** The routes this VirtualService contributes on `port` (empty when none apply). */
  routesFor(port: number): Route[] {
    const out: Route[] = [];
    for (const [i, http] of (this.#vs.spec.http ?? []).entries()) {
      const matches = http.match ?? [];
      if (matches.length === 0) {
        out.push(this.#route(http, i, undefined, port));
        return out;
      }
      for (const m of matches) {
        if (m.port !== undefined && m.port !== port) continue;
        if (!this.#sourceMatches(m)) continue;
        const r = this.#route(http, i, m, port);
        out.push(r);
        if (isCatchAll(r.match)) return out;
      }
    }
    return out;
  }

  #route(http: HttpRoute, index: number, m: HttpMatch | undefined, port: number): Route {
    // Istio routeName: `route.match` when the match is named, else the route's name.
    const name = m?.name ? `${http.name ?? ''}.${m.name}` : (http.name ?? '');
    const ops = headerOperations(http.headers);
    let requestHeaders = ops.request;
    let responseHeaders = ops.response;
    let action: RouteAction;
    if (http.redirect !== undefined) {
      const r = http.redirect;
      action = {
        kind: 'redirect',
        ...(r.uri ? { pathRedirect: r.uri } : {}),
        ...(r.authority ? { hostRedirect: r.authority } : {}),
        ...(r.scheme ? { schemeRedirect: r.scheme } : {}),
        ...(r.port !== undefined ? { portRedirect: r.port } : {}),
        ...(r.derivePort !== undefined ? { derivePort: r.derivePort } : {}),
        responseCode: (r.redirectCode || 301) as 301 | 302 | 303 | 307 | 308,
      };
    } else if (http.directResponse !== undefined) {
      const d = http.directResponse;
      const body = d.body?.string !== undefined ? Buffer.from(d.body.string) : d.body?.bytes !== undefined ? Buffer.from(d.body.bytes, 'base64') : undefined;
      action = { kind: 'direct', status: d.status!, ...(body !== undefined ? { body } : {}) };
    } else {
      const destinations = http.route ?? [];
      let hostRewrite = http.rewrite?.authority ?? ops.authority;
      let clusters: WeightedCluster[];
      if (destinations.length === 1) {
        const d = destinations[0]!;
        const dOps = headerOperations(d.headers);
        requestHeaders = concatMutations(requestHeaders, dOps.request);
        responseHeaders = concatMutations(responseHeaders, dOps.response);
        hostRewrite ??= dOps.authority;
        clusters = [{ cluster: this.#destinationCluster(d.destination!, port, ['spec', 'http', index, 'route', 0]), weight: 1, requestHeaders: NO_HEADER_MUTATION, responseHeaders: NO_HEADER_MUTATION }];
      } else {
        clusters = [];
        destinations.forEach((d, j) => {
          if ((d.weight ?? 0) === 0) return;
          const dOps = headerOperations(d.headers);
          clusters.push({
            cluster: this.#destinationCluster(d.destination!, port, ['spec', 'http', index, 'route', j]),
            weight: d.weight!,
            requestHeaders: dOps.request,
            responseHeaders: dOps.response,
            ...(dOps.authority !== undefined ? { hostRewrite: dOps.authority } : {}),
          });
        });
      }
      const rw = http.rewrite;
      action = {
        kind: 'forward',
        clusters,
        ...(rw?.uriRegexRewrite !== undefined
          ? { regexRewrite: { pattern: rw.uriRegexRewrite.match!, substitution: rw.uriRegexRewrite.rewrite! } }
          : rw?.uri
            ? { prefixRewrite: rw.uri }
            : {}),
        ...(hostRewrite !== undefined ? { hostRewrite } : {}),
        timeoutMs: http.timeout ?? 0,
        ...optional('retryPolicy', retryPolicy(http.retries)),
        ...optional('mirrors', this.#mirrors(http, index, port)),
      };
    }
    // Envoy bypasses the CORS filter for direct responses and redirects.
    const cors = action.kind === 'forward' ? corsPolicy(http.corsPolicy) : undefined;
    return {
      name,
      match: translateMatch(m),
      action,
      requestHeaders,
      responseHeaders,
      ...optional('fault', faultPolicy(http.fault)),
      ...optional('cors', cors),
    };
  }

  /** `mirror` with `mirrorPercentage` (or the deprecated integer `mirrorPercent`), and `mirrors`. */
  #mirrors(http: HttpRoute, index: number, port: number): MirrorPolicy[] | undefined {
    const out: MirrorPolicy[] = [];
    if (http.mirror !== undefined) {
      // Istio MirrorPercent: 100% unless a percentage is given; an explicit 0 mirrors nothing.
      const percentage = http.mirrorPercentage?.value ?? http.mirrorPercent ?? 100;
      if (percentage > 0) out.push({ cluster: this.#destinationCluster(http.mirror, port, ['spec', 'http', index, 'mirror']), percentage });
    }
    http.mirrors?.forEach((mp, j) => {
      const percentage = mp.percentage?.value ?? 100;
      if (percentage > 0) out.push({ cluster: this.#destinationCluster(mp.destination!, port, ['spec', 'http', index, 'mirrors', j]), percentage });
    });
    return out.length > 0 ? out : undefined;
  }

  /** GetDestinationCluster: explicit port, else the service's only port, else the listener port. */
  #destinationCluster(d: IstioDestination, port: number, path: Array<string | number>): string {
    const host = toFqdn(d.host!, this.#namespace);
    const service = this.#ctx.registry.get(host);
    const p = d.port?.number ?? (service !== undefined && service.ports.length === 1 ? service.ports[0]!.number : port);
    if (service === undefined && !host.startsWith('*')) {
      this.#warn([...path, 'destination', 'host'], `host ${host} is not in the service registry (no ServiceEntry declares it): requests routed here get 503 NC`);
    } else if (service !== undefined && !service.ports.some((sp) => sp.number === p)) {
      this.#warn([...path, 'destination'], `service ${host} has no port ${p}: requests routed here get 503 NC`);
    }
    return clusterName(p, d.subset, host);
  }

  #warned = new Set<string>();

  #warn(path: Array<string | number>, message: string): void {
    const key = `${path.join('.')}|${message}`;
    if (this.#warned.has(key)) return;
    this.#warned.add(key);
    this.#ctx.diagnostics.push(resourceDiagnostic(this.#vs, path, message, 'warning'));
  }
}

// === route configs ===

function defaultRoute(service: Service, port: number): Route {
  return {
    name: 'default',
    match: { headers: [], queryParams: [] },
    action: {
      kind: 'forward',
      clusters: [{ cluster: clusterName(port, undefined, service.hostname), weight: 1, requestHeaders: NO_HEADER_MUTATION, responseHeaders: NO_HEADER_MUTATION }],
      timeoutMs: 0,
      // Istio's default route carries the mesh default retry policy.
      retryPolicy: retryPolicy(undefined)!,
    },
    requestHeaders: NO_HEADER_MUTATION,
    responseHeaders: NO_HEADER_MUTATION,
  };
}

/**
 * The sidecar's inbound HTTP routes: every request goes to the application on the port it was
 * addressed to (Istio's inbound route, no timeout and no retries).
 */
export function inboundRouteConfig(): RouteConfig {
  const name = 'inbound|http';
  const action: RouteAction = {
    kind: 'forward',
    clusters: [{ cluster: INBOUND_PASSTHROUGH_CLUSTER, weight: 1, requestHeaders: NO_HEADER_MUTATION, responseHeaders: NO_HEADER_MUTATION }],
    timeoutMs: 0,
  };
  return {
    name,
    virtualHosts: [{ name, domains: ['*'], routes: [{ name: 'default', match: { headers: [], queryParams: [] }, action, requestHeaders: NO_HEADER_MUTATION, responseHeaders: NO_HEADER_MUTATION }] }],
  };
}

export function catchAllVirtualHost(mesh: MeshSettings): VirtualHost {
  const allowAny = mesh.outboundTrafficPolicy === 'ALLOW_ANY';
  const name = allowAny ? 'allow_any' : 'block_all';
  const action: RouteAction = allowAny
    ? {
        kind: 'forward',
        clusters: [{ cluster: PASSTHROUGH_CLUSTER, weight: 1, requestHeaders: NO_HEADER_MUTATION, responseHeaders: NO_HEADER_MUTATION }],
        timeoutMs: 0,
      }
    : { kind: 'direct', status: 502 };
  return {
    name,
    domains: ['*'],
    routes: [{ name, match: { headers: [], queryParams: [] }, action, requestHeaders: NO_HEADER_MUTATION, responseHeaders: NO_HEADER_MUTATION }],
  };
}

function serviceDomains(service: Service, clientNamespace: string): string[] {
  return [...nameForms(service.hostname, clientNamespace), ...service.addresses];
}

export function buildRouteConfigs(
  virtualServices: readonly VirtualServiceResource[],
  ctx: RouteContext,
): { routeConfigs: RouteConfig[]; fallback: RouteConfig } {
  const meshVs = virtualServices.filter(appliesToMesh);
  const translators = new Map(meshVs.map((vs) => [vs, new VirtualServiceTranslator(vs, ctx)]));
  const clientNs = ctx.mesh.defaultNamespace;

  // Resolve each VirtualService's hosts once: registry services and hosts outside it. A wildcard
  // host claims a service only when it is the most specific wildcard VirtualService for it.
  const bestWildcard = new Map<string, { vs: VirtualServiceResource; length: number }>();
  for (const vs of meshVs) {
    const ns = vs.metadata.namespace ?? clientNs;
    for (const h of vs.spec.hosts ?? []) {
      const host = toFqdn(h, ns);
      if (!host.startsWith('*')) continue;
      for (const svc of ctx.registry.keys()) {
        if (!hostMatches(host, svc)) continue;
        const best = bestWildcard.get(svc);
        if (best === undefined || host.length > best.length) bestWildcard.set(svc, { vs, length: host.length });
      }
    }
  }
  const resolved = meshVs.map((vs) => {
    const ns = vs.metadata.namespace ?? clientNs;
    const services: Service[] = [];
    const outside: string[] = [];
    for (const h of vs.spec.hosts ?? []) {
      const host = toFqdn(h, ns);
      if (!host.startsWith('*')) {
        const svc = ctx.registry.get(host);
        if (svc !== undefined) services.push(svc);
        else outside.push(host);
        continue;
      }
      let found = false;
      for (const [name, svc] of ctx.registry) {
        if (!hostMatches(host, name)) continue;
        found = true;
        if (bestWildcard.get(name)?.vs === vs) services.push(svc);
      }
      if (!found) outside.push(host);
    }
    return { vs, services, outside };
  });

  const hasHttpPort = (s: Service): boolean => s.ports.some((p) => p.http);
  const ports = new Set<number>();
  for (const svc of ctx.registry.values()) for (const p of svc.ports) if (p.http) ports.add(p.number);
  // Hosts outside the registry, in a VirtualService that names no HTTP service, live on port 80.
  const outsideOnly = (r: (typeof resolved)[number]): boolean => r.outside.length > 0 && !r.services.some(hasHttpPort);
  if (resolved.some(outsideOnly)) ports.add(80);

  const routeConfigs: RouteConfig[] = [];
  for (const port of [...ports].sort((a, b) => a - b)) {
    const vhosts: VirtualHost[] = [];
    const used = new Set<string>();
    const covered = new Set<string>();
    const claim = (domains: string[]): string[] => domains.filter((d) => !used.has(d) && (used.add(d), true));
    for (const r of resolved) {
      const { vs, services, outside } = r;
      const onPort = services.filter((s) => s.ports.some((p) => p.http && p.number === port));
      if (onPort.length === 0 && !(port === 80 && outsideOnly(r))) continue;
      const routes = translators.get(vs)!.routesFor(port);
      if (routes.length === 0) continue;
      const wanted = [...onPort.flatMap((s) => serviceDomains(s, clientNs)), ...outside.flatMap((h) => nameForms(h, clientNs))];
      const domains = claim(wanted);
      if (domains.length < new Set(wanted).size) {
        ctx.diagnostics.push(resourceDiagnostic(vs, ['spec', 'hosts'], `some hosts already have a VirtualService on port ${port}; the first one wins for them`, 'warning'));
      }
      for (const s of onPort) covered.add(s.hostname);
      if (domains.length > 0) vhosts.push({ name: `${domains[0]}:${port}`, domains, routes });
    }
    for (const svc of ctx.registry.values()) {
      if (covered.has(svc.hostname) || !svc.ports.some((p) => p.http && p.number === port)) continue;
      const domains = claim(serviceDomains(svc, clientNs));
      if (domains.length > 0) vhosts.push({ name: `${svc.hostname}:${port}`, domains, routes: [defaultRoute(svc, port)] });
    }
    vhosts.push(catchAllVirtualHost(ctx.mesh));
    routeConfigs.push({ name: String(port), virtualHosts: vhosts });
  }
  return { routeConfigs, fallback: { name: 'fallback', virtualHosts: [catchAllVirtualHost(ctx.mesh)] } };
}
