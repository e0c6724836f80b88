/**
 * Compiled outbound route tables: per port, a domain table of virtual hosts, each an ordered
 * list of compiled routes. `resolve` picks the table for a request the way the outbound
 * listener sees it: by the port the client addressed, and for a Host without a port, by the
 * one port the name (or the most specific wildcard domain covering it) is served on when it is
 * not served on 80.
 */
import type { AddressRouteConfig } from '../model/index.js';
import type { Route, RouteConfig, VirtualHost } from '../model/route.js';
import { compileAuthorization, type CompiledAuthorization } from './authorization.js';
import { compileHeaderMutation, type HeaderMutator } from './header-mutation.js';
import { DomainTable } from './domain-table.js';
import type { RouteRequest } from './request-view.js';
import { compileDirect, compileForward, compileRedirect, type CompiledAction } from './route-action.js';
import { compileRouteMatch, type RoutePredicate } from './route-matcher.js';
import { compileCors, TokenBucket, type CompiledCors, type CompiledFault } from './policies.js';

export interface CompiledRoute {
  readonly name: string;
  readonly matches: RoutePredicate;
  readonly action: CompiledAction;
  readonly requestHeaders: HeaderMutator | null;
  readonly responseHeaders: HeaderMutator | null;
  /** The request filters this route needs (CORS, fault, local rate limit); null when none. */
  readonly filters: RouteFilters | null;
  /** Policies replacing the listener's for this route (RBACPerRoute); null: none apply; undefined: the listener's. */
  readonly authorization?: CompiledAuthorization | null;
}

/** Per-route configs of the HTTP filters, in the order the filter chain runs them. */
export interface RouteFilters {
  readonly cors: CompiledCors | null;
  readonly fault: CompiledFault | null;
  /** Shared by every route the same rate-limit rule covers. */
  readonly rateLimit: TokenBucket | null;
}

/** Token buckets of one snapshot, by rule key: every route of a rule shares its bucket. */
export type BucketRegistry = Map<string, TokenBucket>;

export interface CompiledVirtualHost {
  readonly name: string;
  readonly routes: readonly CompiledRoute[];
  /** The first route whose match succeeds, or undefined (404 NR). */
  select(req: RouteRequest): CompiledRoute | undefined;
}

function compileFilters(r: Route, buckets: BucketRegistry): RouteFilters | null {
  if (r.cors === undefined && r.fault === undefined && r.rateLimit === undefined) return null;
  let rateLimit: TokenBucket | null = null;
  if (r.rateLimit !== undefined) {
    rateLimit = buckets.get(r.rateLimit.key) ?? null;
    if (rateLimit === null) buckets.set(r.rateLimit.key, (rateLimit = new TokenBucket(r.rateLimit)));
  }
  return {
    cors: r.cors === undefined ? null : compileCors(r.cors),
    fault: r.fault ?? null,
    rateLimit,
  };
}

function compileVirtualHost(vh: VirtualHost, buckets: BucketRegistry): CompiledVirtualHost {
  const routes: CompiledRoute[] = vh.routes.map((r) => {
    const action: CompiledAction =
      r.action.kind === 'forward'
        ? compileForward(r.action, r.match)
        : r.action.kind === 'redirect'
          ? compileRedirect(r.action, r.match)
          : compileDirect(r.action);
    return {
      name: r.name,
      matches: compileRouteMatch(r.match),
      action,
      requestHeaders: compileHeaderMutation(r.requestHeaders),
      responseHeaders: compileHeaderMutation(r.responseHeaders),
      filters: compileFilters(r, buckets),
      ...(r.authorization === undefined ? {} : { authorization: r.authorization === null ? null : compileAuthorization(r.authorization) }),
    };
  });
  return {
    name: vh.name,
    routes,
    select(req) {
      for (let i = 0; i < routes.length; i++) {
        const r = routes[i]!;
        if (r.matches(req)) return r;
      }
      return undefined;
    },
  };
}

export function compileRouteConfig(rc: RouteConfig, buckets: BucketRegistry = new Map()): DomainTable<CompiledVirtualHost> {
  const table = new DomainTable<CompiledVirtualHost>();
  for (const vh of rc.virtualHosts) {
    const compiled = compileVirtualHost(vh, buckets);
    for (const d of vh.domains) table.add(d, compiled);
  }
  return table;
}

export class RouteTables {
  /** Some route replaces the listener's authorization (RBACPerRoute): routes are chosen before it is checked. */
  readonly routeAuthorization: boolean;
  readonly #byPort: ReadonlyMap<number, DomainTable<CompiledVirtualHost>>;
  /** port → address → the table for that destination only; empty for Istio YAML config. */
  readonly #byAddress: ReadonlyMap<number, ReadonlyMap<string, DomainTable<CompiledVirtualHost>>>;
  readonly #fallback: DomainTable<CompiledVirtualHost>;
  /**
   * Every domain (exact or wildcard) → the port it is served on, or 0 when it is served on
   * several; looked up with the virtual-host order, so `a.example.com` finds `*.example.com`.
   */
  readonly #soloPort: DomainTable<number>;

  constructor(routeConfigs: readonly RouteConfig[], fallback: RouteConfig, byAddress: readonly AddressRouteConfig[] = []) {
    const byPort = new Map<number, DomainTable<CompiledVirtualHost>>();
    const ports = new Map<string, Set<number>>();
    const buckets: BucketRegistry = new Map();
    for (const rc of routeConfigs) {
      const port = Number(rc.name);
      byPort.set(port, compileRouteConfig(rc, buckets));
      for (const vh of rc.virtualHosts) {
        for (const d of vh.domains) {
          if (d === '*') continue;
          let set = ports.get(d);
          if (set === undefined) ports.set(d, (set = new Set()));
          set.add(port);
        }
      }
    }
    const solo = new DomainTable<number>();
    for (const [d, set] of ports) solo.add(d, set.size === 1 ? [...set][0]! : 0);
    this.#byPort = byPort;
    this.#fallback = compileRouteConfig(fallback, buckets);
    this.#soloPort = solo;
    const perPort = new Map<number, Map<string, DomainTable<CompiledVirtualHost>>>();
    for (const a of byAddress) {
      let addresses = perPort.get(a.port);
      if (addresses === undefined) perPort.set(a.port, (addresses = new Map()));
      addresses.set(a.address, compileRouteConfig(a.routeConfig, buckets));
    }
    this.#byAddress = perPort;
    this.routeAuthorization = [...routeConfigs, fallback, ...byAddress.map((a) => a.routeConfig)].some((rc) =>
      rc.virtualHosts.some((vh) => vh.routes.some((r) => r.authorization !== undefined)),
    );
  }

  /**
   * The virtual host for `host` (lowercase, without port). `port` is the port the client
   * addressed, or undefined when the Host header named none. Returns the port used as well.
   * `address` is the connection's original destination when it was redirected: a route config
   * for that address and port wins.
   */
  resolve(host: string, port: number | undefined, address?: string): { vhost: CompiledVirtualHost | undefined; port: number } {
    if (address !== undefined && port !== undefined && this.#byAddress.size > 0) {
      const table = this.#byAddress.get(port)?.get(address);
      if (table !== undefined) return { vhost: table.find(host), port };
    }
    if (port === undefined) {
      const on80 = this.#byPort.get(80)?.find(host, false);
      if (on80 !== undefined) return { vhost: on80, port: 80 };
      const solo = this.#soloPort.find(host, false);
      port = solo === undefined || solo === 0 ? 80 : solo;
    }
    const table = this.#byPort.get(port) ?? this.#fallback;
    return { vhost: table.find(host), port };
  }

  get ports(): number[] {
    return [...this.#byPort.keys()];
  }
}
