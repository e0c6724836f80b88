/**
 * A gateway proxy's listeners: one per Gateway port, opened and closed as the config changes.
 * Each connection is served by the snapshot current when it was accepted:
 * - `http` ports speak HTTP/1.1 with the port's route config;
 * - `tls` ports read the ClientHello (Envoy's tls_inspector) and let its SNI pick the server;
 *   PASSTHROUGH servers route the still encrypted bytes by SNI (VirtualService `tls` routes),
 *   the others terminate TLS and serve HTTP or, behind a TLS server, TCP (`tcp` routes);
 * - `tcp` ports proxy to the first matching `tcp` route.
 * Opaque connections are held to AuthorizationPolicy (rechecked on every change), HTTP requests
 * are authorized one by one. A connection no server or route takes is closed.
 *
 * An HTTP connection keeps finding its server's routes by name in each new snapshot, but only
 * while that server keeps the TLS settings the connection was accepted under; otherwise its
 * requests get 404. A port that disappears stops accepting: its HTTP connections close after
 * their current request, and its opaque connections after DRAIN_MS (Envoy drains a removed
 * listener the same way).
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { CompiledGatewayServer } from '../compile/gateway.js';
import type { Snapshot } from '../compile/snapshot.js';
import { unmappedAddress } from '../core/addresses.js';
import { listenOn } from '../core/listen.js';
import type { DownstreamContext, ServerConnectionOptions, StreamHandler } from '../http/codec/h1/server-connection.js';
import type { GatewayRoutes, SnapshotSource } from '../http/connection-manager.js';
import { terminateGatewayTls, type GatewayTlsContexts } from '../security/gateway-tls.js';
import type { TcpProxy } from '../tcp/tcp-proxy.js';
import { ConnectionAuthorizer, type ConnectionPeer } from './connection-authorization.js';
import { readFirstBytes } from './first-bytes.js';
import { HttpConnections } from './http-connections.js';
import type { SnapshotChanges } from './sidecar-listener.js';

/** How long a client may take to send its ClientHello (Envoy's listener_filters_timeout). */
const CLIENT_HELLO_TIMEOUT_MS = 15_000;

/** How long opaque connections of a removed port live on. */
const DRAIN_MS = 5_000;

/** What HTTP servers behind TLS negotiate: HTTP/2 first, as Envoy offers it, then HTTP/1.1. */
const HTTP_ALPN = ['h2', 'http/1.1'];

export interface GatewayListenerOptions extends ServerConnectionOptions {
  readonly tls: GatewayTlsContexts;
  /** A gateway connection manager routing by `routes` (one per server and TLS setting). */
  readonly handler: (routes: GatewayRoutes) => StreamHandler;
  /** Told when a port added by a config change cannot be opened, or a change cannot be applied. */
  readonly onError?: (message: string) => void;
}

/** A listening port and the connections it accepted. */
interface OpenPort {
  readonly port: number;
  readonly server: Server;
  readonly bind: string;
  readonly http: HttpConnections;
  /** Connections being inspected or proxied as TCP. */
  readonly raw: Set<Socket>;
}

/** Where a connection arrived: the gateway port, on the local address the client dialled. */
interface Arrival {
  readonly open: OpenPort;
  readonly local: { readonly address: string; readonly port: number };
}

export class GatewayListeners {
  readonly #source: SnapshotSource & SnapshotChanges;
  readonly #tcp: TcpProxy;
  readonly #options: GatewayListenerOptions;
  /** Connection managers by `port|server|tlsKey`, each routing by that server's tables. */
  readonly #handlers = new Map<string, StreamHandler>();
  readonly #ports = new Map<number, OpenPort>();
  /** Ports no longer listened on whose connections are finishing. */
  readonly #draining = new Set<OpenPort>();
  readonly #authorizer = new ConnectionAuthorizer();
  readonly #unsubscribe: () => void;
  #syncing: Promise<void> = Promise.resolve();
  #closed: Promise<void> | null = null;

  constructor(source: SnapshotSource & SnapshotChanges, tcp: TcpProxy, options: GatewayListenerOptions) {
    this.#source = source;
    this.#tcp = tcp;
    this.#options = options;
    this.#unsubscribe = source.subscribe((snapshot) => {
      this.#authorizer.recheck(snapshot);
      this.#syncing = this.#syncing
        .then(() => this.#sync(snapshot, false))
        .catch((err: unknown) => this.#options.onError?.(`gateway listeners not updated: ${(err as Error).message}`));
    });
  }

  /** Opens the current snapshot's ports; throws when one cannot be opened. Resolves with them. */
  async listen(): Promise<number[]> {
    this.#syncing = this.#syncing.then(() => this.#sync(this.#source.current(), true));
    await this.#syncing;
    return [...this.#ports.keys()];
  }

  get ports(): number[] {
    return [...this.#ports.keys()];
  }

  get connectionCount(): number {
    let n = 0;
    for (const p of [...this.#ports.values(), ...this.#draining]) n += p.http.size + p.raw.size;
    return n;
  }

  /** Opens ports new to `snapshot`, and drains those it no longer has (or binds elsewhere). */
  async #sync(snapshot: Snapshot, strict: boolean): Promise<void> {
    if (this.#closed !== null) return;
    for (const [port, open] of this.#ports) {
      const wanted = snapshot.gateways.get(port);
      if (wanted === undefined || wanted.bind !== open.bind) this.#drain(open);
    }
    this.#pruneHandlers(snapshot);
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
      // Every connection is adopted with its server's handler; this default one is never used.
      const http = new HttpConnections(this.#options.handler(() => undefined), this.#options);
      this.#ports.set(port, { port, server, bind: p.bind, http, raw: new Set() });
    }
  }

  /** Stops accepting on `open`; HTTP connections close after their request, opaque ones after DRAIN_MS. */
  #drain(open: OpenPort): void {
    this.#ports.delete(open.port);
    this.#draining.add(open);
    open.server.close();
    open.http.closeAll(false);
    const timer = setTimeout(() => {
      for (const s of open.raw) s.destroy();
      this.#draining.delete(open);
    }, DRAIN_MS);
    timer.unref();
  }

  /** Forgets handlers whose server (or its TLS settings) is gone: no new connection needs them. */
  #pruneHandlers(snapshot: Snapshot): void {
    const live = new Set<string>();
    for (const p of snapshot.gateways.values()) for (const s of p.servers) live.add(handlerKey(p.port, s));
    for (const key of this.#handlers.keys()) if (!live.has(key)) this.#handlers.delete(key);
  }

  #accept(socket: Socket, port: number): void {
    const open = this.#ports.get(port);
    const snapshot = this.#source.current();
    const entry = snapshot.gateways.get(port);
    if (open === undefined || entry === undefined) {
      socket.destroy();
      return;
    }
    const arrival: Arrival = { open, local: { address: unmappedAddress(socket.localAddress ?? ''), port } };
    if (entry.kind === 'http') {
      this.#serveHttp(socket, arrival, entry.servers[0]!, {});
      return;
    }
    this.#track(arrival, socket);
    if (entry.kind === 'tcp') {
      this.#proxy(socket, null, arrival, entry.servers[0]!, { remote: socket.remoteAddress ?? '' }, snapshot);
      return;
    }
    readFirstBytes(socket, CLIENT_HELLO_TIMEOUT_MS, (bytes, first) => {
      const server = first.kind === 'tls' ? entry.serverFor(first.sni) : undefined;
      if (server === undefined) {
        socket.destroy();
        return;
      }
      if (server.server.tls === undefined) this.#proxy(socket, bytes, arrival, server, { remote: socket.remoteAddress ?? '', sni: first.sni }, snapshot);
      else this.#terminate(socket, bytes, arrival, server, snapshot);
    });
  }

  /** Terminates the server's TLS, then serves HTTP or proxies TCP behind it. */
  #terminate(socket: Socket, bytes: Buffer | null, arrival: Arrival, server: CompiledGatewayServer, snapshot: Snapshot): void {
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
      const sni = serverNameOf(secure);
      if (server.http !== null) {
        // The raw socket closes with the TLS one; from here the HTTP connection tracks it.
        arrival.open.raw.delete(socket);
        this.#serveHttp(secure, arrival, server, { remote, tls: { serverName: sni }, ...(peer !== null ? { peer } : {}) });
        return;
      }
      this.#proxy(secure, null, arrival, server, { remote: remote.address, ...(peer !== null ? { identity: peer.identity } : {}), sni }, snapshot);
    });
  }

  #serveHttp(socket: Socket, arrival: Arrival, server: CompiledGatewayServer, context: DownstreamContext): void {
    arrival.open.http.adopt(socket, { ...context, local: arrival.local }, this.#handler(arrival.local.port, server));
    socket.resume();
  }

  #handler(port: number, server: CompiledGatewayServer): StreamHandler {
    const key = handlerKey(port, server);
    let h = this.#handlers.get(key);
    if (h === undefined) {
      const { name } = server.server;
      const { tlsKey } = server;
      h = this.#options.handler((s) => {
        const current = s.gateways.get(port)?.serverNamed(name);
        return current !== undefined && current.tlsKey === tlsKey ? (current.http ?? undefined) : undefined;
      });
      this.#handlers.set(key, h);
    }
    return h;
  }

  /** Authorizes the connection, then proxies it to the first matching L4 route; none: closed. */
  #proxy(socket: Socket, bytes: Buffer | null, arrival: Arrival, server: CompiledGatewayServer, peer: ConnectionPeer, snapshot: Snapshot): void {
    const cluster = server.l4?.cluster(arrival.local.address, peer.sni);
    if (cluster === undefined || !this.#authorizer.admit(socket, peer, arrival.local, this.#source.current())) {
      socket.destroy();
      return;
    }
    this.#tcp.start(socket, bytes, cluster, { host: arrival.local.address, port: arrival.local.port }, snapshot, {
      direction: 'gateway',
      remoteAddress: unmappedAddress(peer.remote),
      ...(peer.identity !== undefined ? { peerIdentity: peer.identity } : {}),
    });
  }

  #track(arrival: Arrival, socket: Socket): void {
    arrival.open.raw.add(socket);
    socket.once('close', () => arrival.open.raw.delete(socket));
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
      for (const p of open) this.#draining.add(p);
      this.#closed = Promise.all(open.map((p) => new Promise<void>((resolve) => p.server.close(() => resolve())))).then(() => undefined);
    }
    for (const p of this.#draining) {
      p.http.closeAll(force);
      if (force) for (const s of p.raw) s.destroy();
    }
    return this.#closed;
  }
}

function handlerKey(port: number, server: CompiledGatewayServer): string {
  return `${port}|${server.server.name}|${server.tlsKey}`;
}

function serverNameOf(socket: TLSSocket): string | undefined {
  return typeof socket.servername === 'string' ? socket.servername : undefined;
}
