/**
 * The compiled snapshot: everything the data path reads, built once per config version and
 * never mutated. A request takes one reference and uses it to the end, so a swap never changes
 * a request midway.
 */
import type { Cluster, MeshSettings, Model } from '../model/index.js';
import { DomainTable } from './domain-table.js';
import { compileAuthorization, type CompiledAuthorization } from './authorization.js';
import { compileGateways, type CompiledGatewayPort } from './gateway.js';
import { L4Table } from './l4-table.js';
import { compileRequestAuthentication, type CompiledRequestAuthentication, type JwtVerifier } from './request-authentication.js';
import { RouteTables } from './route-table.js';

/** A cluster as the upstream layer builds it, with a hash of its config for reuse across swaps. */
export interface ClusterSpec extends Cluster {
  readonly configHash: string;
}

export interface Snapshot {
  readonly version: number;
  readonly mesh: MeshSettings;
  readonly routes: RouteTables;
  readonly clusters: ReadonlyMap<string, ClusterSpec>;
  /** CONNECT targets: per port, a domain table of cluster names. */
  readonly tcp: ReadonlyMap<number, DomainTable<string>>;
  /** The sidecar outbound listener's L4 decisions (by original destination and first bytes). */
  readonly l4: L4Table;
  /** The sidecar inbound listener's HTTP routes. */
  readonly inboundRoutes: RouteTables;
  /** AuthorizationPolicy for inbound requests (and connections, unless tcpAuthorization differs). */
  readonly authorization: CompiledAuthorization;
  /** AuthorizationPolicy for inbound TCP connections. */
  readonly tcpAuthorization: CompiledAuthorization;
  /** RequestAuthentication (JWT) for inbound requests. */
  readonly requestAuthentication: CompiledRequestAuthentication;
  /** A gateway proxy's ports, by port number. */
  readonly gateways: ReadonlyMap<number, CompiledGatewayPort>;
  /** The model this snapshot was compiled from (admin config dumps). */
  readonly model: Model;
}

function compileBothAuthorizations(model: Model): { authorization: CompiledAuthorization; tcpAuthorization: CompiledAuthorization } {
  const authorization = compileAuthorization(model.authorization);
  return { authorization, tcpAuthorization: model.tcpAuthorization === undefined ? authorization : compileAuthorization(model.tcpAuthorization) };
}

/** Without a JWKS source every token is refused: a snapshot never accepts a token unchecked. */
const REFUSE_TOKENS: JwtVerifier = { verify: () => ({ ok: false, reason: 'Jwks remote fetch is failed' }) };

export function compileSnapshot(model: Model, version: number, jwtVerifier: JwtVerifier = REFUSE_TOKENS): Snapshot {
  const clusters = new Map<string, ClusterSpec>();
  for (const c of model.clusters) clusters.set(c.name, { ...c, configHash: JSON.stringify(c) });
  const tcp = new Map<number, DomainTable<string>>();
  for (const s of model.tcpServices) {
    let table = tcp.get(s.port);
    if (table === undefined) tcp.set(s.port, (table = new DomainTable<string>()));
    for (const d of s.domains) table.add(d, s.cluster);
  }
  return {
    version,
    mesh: model.mesh,
    routes: new RouteTables(model.routeConfigs, model.fallbackRouteConfig, model.addressRouteConfigs),
    clusters,
    tcp,
    l4: new L4Table(model.tcpServices, model.mesh),
    inboundRoutes: new RouteTables(model.inboundPortRouteConfigs ?? [], model.inboundRouteConfig),
    ...compileBothAuthorizations(model),
    requestAuthentication: compileRequestAuthentication(model.requestAuthentication, jwtVerifier),
    gateways: compileGateways(model.gateways),
    model,
  };
}
