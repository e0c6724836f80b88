/**
 * The gateway proxy's ports, compiled: per port, the servers with their route tables (HTTP) or
 * L4 routes, and for TLS ports the server each SNI name selects.
 */
import type { GatewayPort, GatewayServer } from '../model/index.js';
import { DomainTable } from './domain-table.js';
import { L4Routes } from './l4-table.js';
import { RouteTables } from './route-table.js';

export interface CompiledGatewayServer {
  readonly server: GatewayServer;
  /**
   * The server's TLS settings as a string: a connection accepted under one set is served by the
   * server's routes only while the server still has that set (a reload that makes a server
   * MUTUAL does not keep serving clients that never showed a certificate).
   */
  readonly tlsKey: string;
  /** HTTP servers: the virtual hosts, whatever port the Host header names. */
  readonly http: RouteTables | null;
  readonly l4: L4Routes | null;
}

export class CompiledGatewayPort {
  readonly port: number;
  readonly bind: string;
  readonly kind: GatewayPort['kind'];
  readonly servers: readonly CompiledGatewayServer[];
  readonly #byName: ReadonlyMap<string, CompiledGatewayServer>;
  readonly #bySni = new DomainTable<CompiledGatewayServer>();

  constructor(p: GatewayPort) {
    this.port = p.port;
    this.bind = p.bind;
    this.kind = p.kind;
    this.servers = p.servers.map((server) => ({
      server,
      tlsKey: JSON.stringify(server.tls ?? null),
      http: server.routes.kind === 'http' ? new RouteTables([], server.routes.config) : null,
      l4: server.routes.kind === 'l4' ? new L4Routes(server.routes.routes) : null,
    }));
    this.#byName = new Map(this.servers.map((s) => [s.server.name, s]));
    for (const s of this.servers) for (const h of s.server.hosts) this.#bySni.add(h, s);
  }

  /**
   * The TLS server for a ClientHello's SNI: an exact host, else the longest `*.suffix`, else a
   * `*` server. Without SNI only a `*` server answers (Envoy's filter chain without
   * server_names).
   */
  serverFor(sni: string | undefined): CompiledGatewayServer | undefined {
    return sni === undefined || sni === '' ? this.#bySni.find('', true) : this.#bySni.find(sni.toLowerCase());
  }

  /** A server by name, as connections accepted under an earlier snapshot find theirs again. */
  serverNamed(name: string): CompiledGatewayServer | undefined {
    return this.#byName.get(name);
  }
}

export function compileGateways(ports: readonly GatewayPort[]): ReadonlyMap<number, CompiledGatewayPort> {
  return new Map(ports.map((p) => [p.port, new CompiledGatewayPort(p)]));
}
