/**
 * A sidecar's capture listener (Istio's virtualOutbound on 15001 and virtualInbound on 15006).
 * Each connection iptables redirected here is classified by its original destination and, when
 * that is not enough, by its first bytes (read for at most the protocol detection timeout, so a
 * server-first protocol is not held up for long), then served as HTTP, proxied as TCP, or
 * closed (BlackHoleCluster).
 *
 * Outbound, a connection that was not redirected (a client that dialled the listener itself)
 * is served as the standalone HTTP proxy. Inbound, such a connection would loop and is closed;
 * inbound HTTP goes through the inbound routes and TCP straight to the application, both from
 * 127.0.0.6.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { L4Decision } from '../compile/l4-table.js';
import type { SnapshotSource } from '../http/connection-manager.js';
import type { ServerConnectionOptions, StreamHandler } from '../http/codec/h1/server-connection.js';
import { INBOUND_PASSTHROUGH_CLUSTER } from '../model/cluster.js';
import type { TcpProxy } from '../tcp/tcp-proxy.js';
import { HttpConnections } from './http-connections.js';
import { listenOn } from './listen.js';
import { originalDestination, type SocketAddress } from './original-dst.js';
import { MAX_SNIFF_BYTES, sniff } from './sniff.js';

export interface SidecarListenerOptions extends ServerConnectionOptions {
  readonly direction: 'outbound' | 'inbound';
  readonly host: string;
  readonly port: number;
}

const HTTP: L4Decision = { kind: 'http' };
const INBOUND_TCP: L4Decision = { kind: 'tcp', cluster: INBOUND_PASSTHROUGH_CLUSTER };

export class SidecarListener {
  readonly #server: Server;
  readonly #source: SnapshotSource;
  readonly #tcp: TcpProxy;
  readonly #http: HttpConnections;
  readonly #options: SidecarListenerOptions;
  /** Connections being sniffed or proxied as TCP (HTTP ones live in #http). */
  readonly #raw = new Set<Socket>();
  #closed: Promise<void> | null = null;

  constructor(source: SnapshotSource, handler: StreamHandler, tcp: TcpProxy, options: SidecarListenerOptions) {
    this.#source = source;
    this.#tcp = tcp;
    this.#options = options;
    this.#http = new HttpConnections(handler, options);
    this.#server = createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: true }, (socket) => this.#accept(socket));
  }

  listen(): Promise<number> {
    return listenOn(this.#server, this.#options.host, this.#options.port);
  }

  get connectionCount(): number {
    return this.#http.size + this.#raw.size;
  }

  #accept(socket: Socket): void {
    const { destination, redirected } = originalDestination(socket);
    const inbound = this.#options.direction === 'inbound';
    if (!redirected) {
      if (inbound) socket.destroy();
      else this.#serveHttp(socket, undefined, null);
      return;
    }
    const early = inbound ? undefined : this.#source.current().l4.early(destination.address, destination.port);
    if (early !== undefined) {
      this.#apply(early, socket, destination, null);
      return;
    }
    this.#raw.add(socket);
    socket.once('close', () => this.#raw.delete(socket));
    this.#sniff(socket, (bytes, kind, sni) => {
      const decision = inbound
        ? kind === 'http'
          ? HTTP
          : INBOUND_TCP
        : this.#source.current().l4.decide(destination.address, destination.port, sni === undefined ? { kind } : { kind, sni });
      this.#apply(decision, socket, destination, bytes);
    });
  }

  /**
   * Reads until the first bytes say what the protocol is, the detection timeout passes, the
   * client half-closes, or MAX_SNIFF_BYTES arrived; then pauses the socket and reports.
   * HTTP/2 prior knowledge is proxied as TCP until skiff serves HTTP/2.
   */
  #sniff(socket: Socket, done: (bytes: Buffer | null, kind: 'http' | 'tls' | 'tcp', sni: string | undefined) => void): void {
    let buffered: Buffer | null = null;
    let timer: NodeJS.Timeout | null = null;
    const finish = (kind: 'http' | 'tls' | 'tcp', sni?: string): void => {
      if (timer !== null) clearTimeout(timer);
      socket.removeListener('data', onData);
      socket.removeListener('end', onEnd);
      socket.pause();
      done(buffered, kind, sni);
    };
    const onData = (chunk: Buffer): void => {
      buffered = buffered === null ? chunk : Buffer.concat([buffered, chunk]);
      const result = sniff(buffered);
      if (result !== undefined) {
        if (result.kind === 'http1') finish('http');
        else if (result.kind === 'tls') finish('tls', result.sni);
        else finish('tcp');
      } else if (buffered.length >= MAX_SNIFF_BYTES) {
        finish('tcp');
      }
    };
    const onEnd = (): void => finish('tcp');
    const timeoutMs = this.#source.current().mesh.protocolDetectionTimeoutMs;
    if (timeoutMs > 0) timer = setTimeout(() => finish('tcp'), timeoutMs);
    socket.on('error', () => socket.destroy());
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', () => timer !== null && clearTimeout(timer));
    socket.resume();
  }

  #apply(decision: L4Decision, socket: Socket, destination: SocketAddress, bytes: Buffer | null): void {
    if (socket.destroyed) return;
    switch (decision.kind) {
      case 'blackhole':
        socket.destroy();
        return;
      case 'http':
        this.#raw.delete(socket);
        this.#serveHttp(socket, destination, bytes);
        return;
      case 'tcp':
        this.#proxyTcp(socket, destination, bytes, decision.cluster);
    }
  }

  #serveHttp(socket: Socket, destination: SocketAddress | undefined, bytes: Buffer | null): void {
    if (bytes !== null) socket.unshift(bytes);
    this.#http.adopt(socket, destination);
    socket.resume();
  }

  #proxyTcp(socket: Socket, destination: SocketAddress, bytes: Buffer | null, cluster: string): void {
    if (!this.#raw.has(socket)) {
      this.#raw.add(socket);
      socket.once('close', () => this.#raw.delete(socket));
    }
    this.#tcp.start(socket, bytes, cluster, { host: destination.address, port: destination.port }, this.#source.current());
  }

  /**
   * Stops accepting. HTTP connections close once idle (graceful) or at once (`force`); TCP
   * connections are opaque and stay until their peers close them, or a forced close.
   */
  close(force = false): Promise<void> {
    this.#closed ??= new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#http.closeAll(force);
    if (force) for (const s of this.#raw) s.destroy();
    return this.#closed;
  }
}
