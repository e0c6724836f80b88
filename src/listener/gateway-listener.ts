/**
 * A gateway proxy's listeners: one per Gateway port, opened and closed as the config changes
 * (a port that disappears stops accepting; its open connections finish). Each connection is
 * served by the snapshot current when it was accepted:
 * - `http` ports speak HTTP/1.1 with the port's route config;
 * - `tls` ports read the ClientHello (Envoy's tls_inspector) and let its SNI pick the server;
 *   PASSTHROUGH servers route the still encrypted bytes by SNI (VirtualService `tls` routes),
 *   the others terminate TLS and serve HTTP or, behind a TLS server, TCP (`tcp` routes);
 * - `tcp` ports proxy to the first matching `tcp` route.
 * Opaque connections are held to AuthorizationPolicy (rechecked on every change), HTTP requests
 * are authorized one by one. A connection no server or route takes is closed.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { CompiledGatewayPort, CompiledGatewayServer } from '../compile/gateway.js';
import type { Snapshot } from '../compile/snapshot.js';
import { unmappedAddress } from '../core/addresses.js';
import { listenOn } from '../core/listen.js';
import type { ServerConnectionOptions, StreamHandler } from '../http/codec/h1/server-connection.js';
import type { GatewayRoutes, SnapshotSource } from '../http/connection-manager.js';
import type { DownstreamPeer } from '../http/stream.js';
import { terminateGatewayTls, type GatewayTlsContexts } from '../security/gateway-tls.js';
import type { TcpProxy } from '../tcp/tcp-proxy.js';
import { ConnectionAuthorizer } from './connection-authorization.js';
import { readFirstBytes } from './first-bytes.js';
import { HttpConnections } from './http-connections.js';
import type { SnapshotChanges } from './sidecar-listener.js';

/** How long a client may take to send its ClientHello (Envoy's listener_filters_timeout). */
const CLIENT_HELLO_TIMEOUT_MS = 15_000;

/** What HTTP servers behind TLS negotiate: skiff serves HTTP/1.1. */
const HTTP_ALPN = ['http/1.1'];

export interface GatewayListenerOptions extends ServerConnectionOptions {
  readonly tls: GatewayTlsContexts;
  /** A gateway connection manager routing by `routes` (one per server). */
  readonly handler: (routes: GatewayRoutes) => StreamHandler;
  /** Told when a port added by a config change cannot be opened. */
  readonly onError?: (message: string) => void;
}

/** A listening port and the HTTP connections it accepted. */
interface OpenPort {
  readonly server: Server;
  readonly bind: string;
  readonly http: HttpConnections;
}

export class GatewayListeners {
  readonly #source: SnapshotSource & SnapshotChanges;
  readonly #tcp: TcpProxy;
  readonly #options: GatewayListenerOptions;
  /** One connection manager per `port|server`, each routing by that server's tables. */
  readonly #handlers = new Map<string, StreamHandler>();
  readonly #ports = new Map<number, OpenPort>();
  /** HTTP connections of ports no longer listened on, finishing their requests. */
  readonly #draining = new Set<HttpConnections>();
  readonly #authorizer = new ConnectionAuthorizer();
  /** Connections being inspected or proxied as TCP (HTTP ones live in #http). */
  readonly #raw = new Set<Socket>();
  readonly #unsubscribe: () => void;
  #syncing: Promise<void> = Promise.resolve();
  #closed: Promise<void> | null = null;

  constructor(source: SnapshotSource & SnapshotChanges, tcp: TcpProxy, options: GatewayListenerOptions) {
    this.#source = source;
    this.#tcp = tcp;
    this.#options = options;
    this.#unsubscribe = source.subscribe((snapshot) => {
      this.#authorizer.recheck(snapshot);
      this.#syncing = this.#syncing.then(() => this.#sync(snapshot, false));
    });
  }

  /** Opens the current snapshot's ports; throws when one cannot be opened. Resolves with them. */
  async listen(): Promise<number[]> {
    await this.#sync(this.#source.current(), true);
    return [...this.#ports.keys()];
  }

  get ports(): number[] {
    return [...this.#ports.keys()];
  }

  get connectionCount(): number {
    let http = 0;
    for (const p of this.#ports.values()) http += p.http.size;
    for (const d of this.#draining) http += d.size;
    return http + this.#raw.size;
  }

  /**
   * Opens ports new to `snapshot` and closes those it no longer has (or binds elsewhere): they
   * stop accepting, and their HTTP connections close once their current request is answered.
   */
  async #sync(snapshot: Snapshot, strict: boolean): Promise<void> {
    if (this.#closed !== null) return;
    for (const d of this.#draining) if (d.size === 0) this.#draining.delete(d);
    for (const [port, open] of this.#ports) {
      const wanted = snapshot.gateways.get(port);
      if (wanted === undefined || wanted.bind !== open.bind) {
        this.#ports.delete(port);
        open.server.close();
        open.http.closeAll(false);
        this.#draining.add(open.http);
      }
    }
    for (const [port, p] of snapshot.gateways) {
      if (this.#ports.has(port)) continue;
      const server = createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: true }, (socket) => this.#accept(socket, port));
      try {
        await listenOn(server, p.bind === '' ? '::' : p.bind, port);
      } catch (err) {
        const message = `gateway port ${port}: cannot listen (${(err as Error).message})`;
        if (strict) throw new Error(message, { cause: err });
        this.#options.onError?.(message);
        continue;
      }
      if (this.#closed !== null) {
        server.close();
        return;
      }
      // Requests on a server that is gone get this default handler's 404.
      this.#ports.set(port, { server, bind: p.bind, http: new HttpConnections(this.#options.handler(() => undefined), this.#options) });
    }
  }

  #accept(socket: Socket, port: number): void {
    const snapshot = this.#source.current();
    const entry = snapshot.gateways.get(port);
    if (entry === undefined) {
      socket.destroy();
      return;
    }
    if (entry.kind === 'http') {
      this.#serveHttp(socket, entry, entry.servers[0]!, {});
      return;
    }
    this.#raw.add(socket);
    socket.once('close', () => this.#raw.delete(socket));
    if (entry.kind === 'tcp') {
      this.#proxy(socket, null, entry, entry.servers[0]!, { remote: socket.remoteAddress ?? '' }, snapshot);
      return;
    }
    readFirstBytes(socket, CLIENT_HELLO_TIMEOUT_MS, (bytes, first) => {
      const server = first.kind === 'tls' ? entry.serverFor(first.sni) : undefined;
      if (server === undefined) {
        socket.destroy();
        return;
      }
      if (server.server.tls === undefined) this.#proxy(socket, bytes, entry, server, { remote: socket.remoteAddress ?? '', sni: first.sni }, snapshot);
      else this.#terminate(socket, bytes, entry, server, snapshot);
    });
  }

  /** Terminates the server's TLS, then serves HTTP or proxies TCP behind it. */
  #terminate(socket: Socket, bytes: Buffer | null, entry: CompiledGatewayPort, server: CompiledGatewayServer, snapshot: Snapshot): void {
    const tls = server.server.tls!;
    const credentials = this.#options.tls.resolve(tls);
    if ('error' in credentials) {
      socket.destroy();
      return;
    }
    const remote = { address: unmappedAddress(socket.remoteAddress ?? ''), port: socket.remotePort ?? 0 };
    terminateGatewayTls(socket, bytes, tls, credentials, server.http !== null ? HTTP_ALPN : undefined, (result) => {
      if ('error' in result) return;
      const { socket: secure, peer } = result;
      if (server.http !== null) {
        this.#raw.delete(socket);
        this.#serveHttp(secure, entry, server, { remote, secure: true, ...(peer !== null ? { peer } : {}) });
        return;
      }
      const sni = typeof secure.servername === 'string' ? secure.servername : undefined;
      this.#proxy(secure, null, entry, server, { remote: remote.address, ...(peer !== null ? { identity: peer.identity } : {}), sni }, snapshot);
    });
  }

  #serveHttp(
    socket: Socket,
    entry: CompiledGatewayPort,
    server: CompiledGatewayServer,
    context: { remote?: { address: string; port: number }; secure?: boolean; peer?: DownstreamPeer },
  ): void {
    const open = this.#ports.get(entry.port);
    if (open === undefined) {
      socket.destroy();
      return;
    }
    open.http.adopt(socket, context, this.#handler(entry.port, server.server.name));
    socket.resume();
  }

  #handler(port: number, name: string): StreamHandler {
    const key = `${port}|${name}`;
    let h = this.#handlers.get(key);
    if (h === undefined) {
      h = this.#options.handler((s) => s.gateways.get(port)?.serverNamed(name)?.http ?? undefined);
      this.#handlers.set(key, h);
    }
    return h;
  }

  /** Authorizes the connection, then proxies it to the first matching L4 route; none: closed. */
  #proxy(
    socket: Socket,
    bytes: Buffer | null,
    entry: CompiledGatewayPort,
    server: CompiledGatewayServer,
    peer: { remote: string; identity?: string; sni?: string | undefined },
    snapshot: Snapshot,
  ): void {
    const local = { address: unmappedAddress(socket.localAddress ?? ''), port: entry.port };
    const cluster = server.l4?.cluster(local.address, peer.sni);
    if (cluster === undefined || !this.#authorizer.admit(socket, peer, local, this.#source.current())) {
      socket.destroy();
      return;
    }
    if (!this.#raw.has(socket)) {
      this.#raw.add(socket);
      socket.once('close', () => this.#raw.delete(socket));
    }
    this.#tcp.start(socket, bytes, cluster, { host: local.address, port: entry.port }, snapshot, unmappedAddress(peer.remote));
  }

  /**
   * Stops accepting on every port. HTTP connections close once idle (graceful) or at once
   * (`force`); TCP connections stay until their peers close them, or a forced close.
   */
  close(force = false): Promise<void> {
    this.#unsubscribe();
    if (this.#closed === null) {
      const open = [...this.#ports.values()];
      this.#ports.clear();
      for (const p of open) this.#draining.add(p.http);
      this.#closed = Promise.all(open.map((p) => new Promise<void>((resolve) => p.server.close(() => resolve())))).then(() => undefined);
    }
    for (const http of this.#draining) http.closeAll(force);
    if (force) for (const s of this.#raw) s.destroy();
    return this.#closed;
  }
}
