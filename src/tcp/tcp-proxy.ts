/**
 * Envoy's tcp_proxy: one downstream connection, one upstream connection to a host the cluster
 * picks, bytes both ways with backpressure. A half-close is passed on; the pair closes when
 * either side errors or both have finished, or when no byte moved either way for the idle
 * timeout. A failed upstream connect closes the client's connection (flag UF); so does a cluster
 * with no host (UH) or at its max_connections circuit breaker (UO). The session record is handed over once both sockets are closed.
 */
import type { Socket } from 'node:net';
import { unmappedAddress } from '../core/addresses.js';
import type { ResponseFlagCode } from '../core/response-flags.js';
import type { TrafficDirection } from '../model/index.js';
import { ResponseFlag } from '../core/response-flags.js';
import type { Snapshot } from '../compile/snapshot.js';
import type { Cluster, Destination } from '../upstream/cluster.js';
import type { ClusterManager } from '../upstream/cluster-manager.js';
import { connectUpstream, upstreamConnectionFacts } from '../upstream/connect.js';
import { joinSockets } from './tunnel.js';

/** One proxied TCP connection, filled in as it runs (telemetry reads it at the end). */
export class TcpSessionInfo {
  readonly startTime = Date.now();
  readonly startMs = performance.now();
  direction: TrafficDirection = 'outbound';
  /** The client's SPIFFE identity (inbound Istio mTLS, mutual TLS at a gateway); '' otherwise. */
  downstreamPeerIdentity = '';
  /** The upstream's SPIFFE identity when proxied over Istio mTLS; '' otherwise. */
  upstreamPeerIdentity = '';
  endMs = 0;
  upstreamCluster: string;
  upstreamHost = '';
  /** Bytes from the client to upstream (including sniffed bytes) and back. */
  bytesReceived = 0;
  bytesSent = 0;
  responseFlags: ResponseFlagCode[] | null = null;
  /** Why it ended: `upstream_connect_failed`, `no_healthy_upstream`, `overflow`, `cluster_not_found`, `idle_timeout` or `closed`. */
  details = '';
  /** The byte counters of the running tunnel (final ones are copied to bytesReceived/bytesSent). */
  #tunnel: { readonly received: number; readonly sent: number } | null = null;

  constructor(
    readonly downstreamRemoteAddress: string,
    readonly downstreamLocalAddress: string,
    readonly downstreamLocalPort: number,
    cluster: string,
  ) {
    this.upstreamCluster = cluster;
  }

  setFlag(flag: ResponseFlagCode): void {
    (this.responseFlags ??= []).includes(flag) || this.responseFlags.push(flag);
  }

  /** Bytes so far each way, also while the connection is open. */
  liveBytes(): { readonly received: number; readonly sent: number } {
    return this.#tunnel ?? { received: this.bytesReceived, sent: this.bytesSent };
  }

  attachTunnel(stats: { readonly received: number; readonly sent: number }): void {
    this.#tunnel = stats;
  }
}

export interface TcpProxyOptions {
  readonly idleTimeoutMs: number;
  readonly observer?: TcpSessionObserver;
}

/** Who a proxied connection is from, as the listener that accepted it knows. */
export interface TcpDownstream {
  readonly direction: TrafficDirection;
  /** The client's address when the socket cannot tell (a TLS layer over another stream). */
  readonly remoteAddress?: string;
  /** The client's SPIFFE identity, when it proved one. */
  readonly peerIdentity?: string;
}

/**
 * Receives each session's record when it is open (the upstream side is known: connected, or
 * failed) and when it ended. onOpen always comes first, once.
 */
export interface TcpSessionObserver {
  onOpen?(info: TcpSessionInfo): void;
  onDone?(info: TcpSessionInfo): void;
}

/** Proxies connections to clusters of the snapshot each connection started with. */
export class TcpProxy {
  readonly #clusters: ClusterManager;
  readonly #observer: TcpSessionObserver;

  constructor(clusters: ClusterManager, observer: TcpSessionObserver = {}) {
    this.#clusters = clusters;
    this.#observer = observer;
  }

  /**
   * Proxies `socket` (paused; `initial` already read from it) to `clusterName`, whose
   * ORIGINAL_DST hosts are `destination`. A cluster the snapshot lacks closes the connection,
   * as Envoy's tcp_proxy does.
   */
  start(socket: Socket, initial: Buffer | null, clusterName: string, destination: Destination, snapshot: Snapshot, from: TcpDownstream): void {
    const info = new TcpSessionInfo(from.remoteAddress ?? unmappedAddress(socket.remoteAddress ?? ''), destination.host, destination.port, clusterName);
    info.direction = from.direction;
    if (from.peerIdentity !== undefined) info.downstreamPeerIdentity = from.peerIdentity;
    const spec = snapshot.clusters.get(clusterName);
    const cluster = spec === undefined ? undefined : this.#clusters.get(spec);
    if (cluster === undefined) {
      info.setFlag(ResponseFlag.NoClusterFound);
      socket.destroy();
      info.endMs = performance.now();
      info.details = 'cluster_not_found';
      this.#observer.onOpen?.(info);
      this.#observer.onDone?.(info);
      return;
    }
    proxyTcp(socket, initial, cluster, destination, info, { idleTimeoutMs: snapshot.mesh.tcpIdleTimeoutMs, observer: this.#observer });
  }
}

/**
 * Proxies `downstream` (paused, with `initial` bytes already read from it) to a host of
 * `cluster`. `destination` is the connection's original destination (ORIGINAL_DST clusters).
 */
export function proxyTcp(
  downstream: Socket,
  initial: Buffer | null,
  cluster: Cluster,
  destination: Destination,
  info: TcpSessionInfo,
  options: TcpProxyOptions,
): void {
  let reported = false;
  const reportOpen = (): void => {
    if (reported) return;
    reported = true;
    options.observer?.onOpen?.(info);
  };
  const finish = (details: string): void => {
    if (info.endMs !== 0) return;
    info.endMs = performance.now();
    info.details = details;
    reportOpen();
    options.observer?.onDone?.(info);
  };
  const host = cluster.pick({ hash: undefined }, destination);
  if (host === undefined) {
    info.setFlag(ResponseFlag.NoHealthyUpstream);
    downstream.destroy();
    finish('no_healthy_upstream');
    return;
  }
  info.upstreamHost = host.key;
  // Envoy's tcp_proxy honours the cluster's max_connections: over it, the client is closed (UO).
  const resources = cluster.resources;
  if (!resources.canOpenConnection()) {
    resources.overflows++;
    info.setFlag(ResponseFlag.UpstreamOverflow);
    downstream.destroy();
    finish('overflow');
    return;
  }
  resources.connections++;
  let released = false;
  const release = (): void => {
    if (!released) resources.connections--;
    released = true;
  };
  downstream.pause();
  let gone = false;
  const onEarlyClose = (): void => {
    gone = true;
  };
  downstream.once('close', onEarlyClose);
  downstream.on('error', () => downstream.destroy());
  host.activeRequests++;
  connectUpstream(host.pool.target, cluster.spec.connectTimeoutMs, (err, upstream) => {
    host.activeRequests--;
    downstream.removeListener('close', onEarlyClose);
    if (err !== null) {
      release();
      host.outlier?.putConnectFailure();
      info.setFlag(ResponseFlag.UpstreamConnectionFailure);
      downstream.destroy();
      finish('upstream_connect_failed');
      return;
    }
    if (gone) {
      release();
      upstream!.destroy();
      info.setFlag(ResponseFlag.DownstreamConnectionTermination);
      finish('closed');
      return;
    }
    host.outlier?.putStatus(200);
    info.upstreamPeerIdentity = upstreamConnectionFacts(upstream!).identity;
    const stats = joinSockets(downstream, upstream!, initial);
    info.attachTunnel(stats);
    reportOpen();
    let details = 'closed';
    // A socket's timeout counts reads and writes, so the client side alone sees both directions.
    downstream.setTimeout(options.idleTimeoutMs, () => {
      details = 'idle_timeout';
      downstream.destroy();
      upstream!.destroy();
    });
    let sides = 2;
    const closed = (): void => {
      if (--sides > 0) return;
      info.bytesReceived = stats.received;
      info.bytesSent = stats.sent;
      finish(details);
    };
    downstream.once('close', closed);
    upstream!.once('close', () => {
      release();
      closed();
    });
  }, 'tcp');
}
