/**
 * A sidecar's capture listener (Istio's virtualOutbound on 15001 and virtualInbound on 15006).
 * Each connection iptables redirected here is classified by its original destination and, when
 * that is not enough, by its first bytes (read for at most the protocol detection timeout, so a
 * server-first protocol is not held up for long), then served as HTTP, proxied as TCP, or
 * closed (BlackHoleCluster).
 *
 * Outbound, a connection that was not redirected (a client that dialled the listener itself)
 * is served as the standalone HTTP proxy when the client is local, and closed otherwise.
 * Inbound, such a connection would loop and is closed. Inbound connections are held to the
 * port's PeerAuthentication mode (mTLS terminated here) and, for TCP, to AuthorizationPolicy;
 * HTTP goes through the inbound connection manager (authorization per request) and TCP straight
 * to the application, both from 127.0.0.6 (::6 for IPv6).
 */
import { createServer, type Server, type Socket } from 'node:net';
import { HTTP_DECISION, type L4Decision } from '../compile/l4-table.js';
import { inboundProtocolFor, mtlsModeFor, plaintextRefused } from '../compile/peer-authentication.js';
import type { Snapshot } from '../compile/snapshot.js';
import { isLocalCaller, unmappedAddress } from '../core/addresses.js';
import { ConnectionAuthorizer } from './connection-authorization.js';
import { listenOn } from '../core/listen.js';
import type { ServerConnectionOptions, StreamHandler } from '../http/codec/h1/server-connection.js';
import type { SnapshotSource } from '../http/connection-manager.js';
import { INBOUND_PASSTHROUGH_CLUSTER } from '../model/cluster.js';
import type { InboundProtocol } from '../model/index.js';
import type { WorkloadCredentials } from '../security/cert-store.js';
import { terminateMtls } from '../security/inbound-mtls.js';
import { ISTIO_ALPN_VALUES, ISTIO_HTTP_ALPN } from '../security/peer-identity.js';
import type { TcpProxy } from '../tcp/tcp-proxy.js';
import { HttpConnections } from './http-connections.js';
import { originalDestination, type SocketAddress } from './original-dst.js';
import { readFirstBytes, type FirstBytes } from './first-bytes.js';

/** Snapshot swaps, so open inbound connections can be held to new policies. */
export interface SnapshotChanges {
  subscribe(listener: (snapshot: Snapshot) => void): () => void;
}

export interface SidecarListenerOptions extends ServerConnectionOptions {
  readonly direction: 'outbound' | 'inbound';
  /** The workload's mTLS credentials (inbound termination); none means mTLS clients are refused. */
  readonly credentials?: () => WorkloadCredentials | null;
  readonly host: string;
  readonly port: number;
}

const INBOUND_TCP: L4Decision = { kind: 'tcp', cluster: INBOUND_PASSTHROUGH_CLUSTER };

/**
 * Inbound TCP connections are held to the port's PeerAuthentication as well as to
 * AuthorizationPolicy, and to the port still proxying TCP (xDS may remove its chains).
 */
const inboundConnections = (): ConnectionAuthorizer =>
  new ConnectionAuthorizer((attrs, mtls, snapshot) => {
    const protocol = inboundProtocolFor(snapshot.model, attrs.destinationPort);
    return protocol !== 'NONE' && protocol !== 'HTTP' && (mtls || !plaintextRefused(snapshot.model.peerAuthentication, attrs.destinationPort));
  });

export class SidecarListener {
  readonly #server: Server;
  readonly #source: SnapshotSource;
  readonly #tcp: TcpProxy;
  readonly #http: HttpConnections;
  readonly #options: SidecarListenerOptions;
  /** Inbound TCP connections allowed so far (rechecked on reload). */
  readonly #authorizer = inboundConnections();
  readonly #unsubscribe: () => void;
  /** Connections being sniffed or proxied as TCP (HTTP ones live in #http). */
  readonly #raw = new Set<Socket>();
  #closed: Promise<void> | null = null;

  constructor(source: SnapshotSource & SnapshotChanges, handler: StreamHandler, tcp: TcpProxy, options: SidecarListenerOptions) {
    this.#source = source;
    this.#tcp = tcp;
    this.#options = options;
    this.#http = new HttpConnections(handler, options);
    this.#server = createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: true }, (socket) => this.#accept(socket));
    this.#unsubscribe = options.direction === 'inbound' ? source.subscribe((s) => this.#authorizer.recheck(s)) : () => undefined;
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
      // Dialled directly. Outbound, a local application may use the listener as its HTTP proxy;
      // anyone else (a remote peer, or the inbound listener's own 127.0.0.6) would get an open
      // proxy into the pod's localhost, so Envoy's virtualOutbound closes these. Inbound, a direct
      // connection would loop.
      if (inbound || !isLocalCaller(socket.remoteAddress ?? '')) socket.destroy();
      else this.#serveHttp(socket, undefined, null);
      return;
    }
    // One snapshot decides the whole connection.
    const snapshot = this.#source.current();
    const early = inbound ? undefined : snapshot.l4.early(destination.address, destination.port);
    if (early !== undefined) {
      this.#apply(early, socket, destination, null, snapshot);
      return;
    }
    this.#raw.add(socket);
    socket.once('close', () => this.#raw.delete(socket));
    readFirstBytes(socket, snapshot.mesh.protocolDetectionTimeoutMs, (bytes, first) => {
      if (inbound) {
        this.#inbound(socket, destination, bytes, first, snapshot);
        return;
      }
      const sniffed = first.sni === undefined ? { kind: first.kind } : { kind: first.kind, sni: first.sni };
      this.#apply(snapshot.l4.decide(destination.address, destination.port, sniffed), socket, destination, bytes, snapshot);
    });
  }

  /**
   * Inbound, under the PeerAuthentication mode of the destination port: Istio mTLS (TLS with an
   * Istio ALPN, or any TLS under STRICT) is terminated; other TLS is the application's own and
   * passes through, except under STRICT; plaintext is refused under STRICT.
   */
  #inbound(socket: Socket, destination: SocketAddress, bytes: Buffer | null, first: FirstBytes, snapshot: Snapshot): void {
    const mode = mtlsModeFor(snapshot.model.peerAuthentication, destination.port);
    const protocol = inboundProtocolFor(snapshot.model, destination.port);
    if (protocol === 'NONE') {
      socket.destroy();
      return;
    }
    if (first.kind === 'tls') {
      const istio = first.alpn.some((a) => ISTIO_ALPN_VALUES.has(a));
      if (mode !== 'DISABLE' && !(mode === 'PERMISSIVE' && !istio)) {
        this.#terminate(socket, destination, bytes, istio, protocol, snapshot);
        return;
      }
      // An HTTP-only port has no chain for opaque TLS.
      if (protocol === 'HTTP') {
        socket.destroy();
        return;
      }
      // The application's own TLS: authorized as an opaque connection, then passed through.
      if (this.#authorizer.admit(socket, { remote: socket.remoteAddress ?? '', sni: first.sni }, destination, this.#source.current())) {
        this.#apply(INBOUND_TCP, socket, destination, bytes, snapshot);
      }
      return;
    }
    if (mode === 'STRICT') {
      socket.destroy();
      return;
    }
    // The port's chains decide when they say: a TCP port proxies HTTP bytes too, and an HTTP
    // port has nothing for other bytes.
    if (protocol === 'HTTP' && first.kind !== 'http') {
      socket.destroy();
      return;
    }
    const http = first.kind === 'http' && protocol !== 'TCP';
    if (!http && !this.#authorizer.admit(socket, { remote: socket.remoteAddress ?? '' }, destination, this.#source.current())) return;
    this.#apply(http ? HTTP_DECISION : INBOUND_TCP, socket, destination, bytes, snapshot);
  }

  /**
   * Terminates mTLS, then serves HTTP (an Istio HTTP ALPN on an AUTO port, or any ALPN on an
   * HTTP port) or proxies TCP to the application.
   */
  #terminate(socket: Socket, destination: SocketAddress, bytes: Buffer | null, istioAlpn: boolean, protocol: InboundProtocol, snapshot: Snapshot): void {
    const credentials = this.#options.credentials?.() ?? null;
    if (credentials === null) {
      // No certificate to answer with: the client cannot be verified, so it is not served.
      socket.destroy();
      return;
    }
    const remote = { address: unmappedAddress(socket.remoteAddress ?? ''), port: socket.remotePort ?? 0 };
    terminateMtls(socket, bytes, credentials, istioAlpn, (result) => {
      if ('error' in result) return;
      const { socket: secure, peer } = result;
      if (protocol === 'HTTP' || (protocol === 'AUTO' && ISTIO_HTTP_ALPN.has(peer.alpn))) {
        this.#raw.delete(socket);
        this.#http.adopt(secure, { originalDestination: destination, peer, remote, tls: { serverName: peer.serverName } });
        secure.resume();
        return;
      }
      if (!this.#authorizer.admit(secure, { remote: remote.address, identity: peer.identity, sni: peer.serverName }, destination, this.#source.current())) return;
      this.#tcp.start(secure, null, INBOUND_PASSTHROUGH_CLUSTER, { host: destination.address, port: destination.port }, snapshot, {
        direction: 'inbound',
        remoteAddress: remote.address,
        peerIdentity: peer.identity,
      });
    });
  }

  #apply(decision: L4Decision, socket: Socket, destination: SocketAddress, bytes: Buffer | null, snapshot: Snapshot): void {
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
        this.#proxyTcp(socket, destination, bytes, decision.cluster, snapshot);
    }
  }

  #serveHttp(socket: Socket, destination: SocketAddress | undefined, bytes: Buffer | null): void {
    if (bytes !== null) socket.unshift(bytes);
    this.#http.adopt(socket, destination === undefined ? {} : { originalDestination: destination });
    socket.resume();
  }

  #proxyTcp(socket: Socket, destination: SocketAddress, bytes: Buffer | null, cluster: string, snapshot: Snapshot): void {
    if (!this.#raw.has(socket)) {
      this.#raw.add(socket);
      socket.once('close', () => this.#raw.delete(socket));
    }
    this.#tcp.start(socket, bytes, cluster, { host: destination.address, port: destination.port }, snapshot, { direction: this.#options.direction });
  }

  /**
   * Stops accepting. HTTP connections close once idle (graceful) or at once (`force`); TCP
   * connections are opaque and stay until their peers close them, or a forced close.
   */
  close(force = false): Promise<void> {
    this.#unsubscribe();
    this.#closed ??= new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#http.closeAll(force);
    if (force) for (const s of this.#raw) s.destroy();
    return this.#closed;
  }
}
