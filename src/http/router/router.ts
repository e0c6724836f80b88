/**
 * The router: picks the route for a request from the snapshot it started with, then answers
 * directly (redirect, direct response, local reply) or forwards it: weighted cluster → load
 * balancer → host → UpstreamRequest. Also opens CONNECT tunnels.
 */
import type { CompiledForward } from '../../compile/route-action.js';
import type { CompiledRoute, RouteTables } from '../../compile/route-table.js';
import type { Snapshot } from '../../compile/snapshot.js';
import { ResponseFlag } from '../../core/response-flags.js';
import { PASSTHROUGH_CLUSTER } from '../../model/cluster.js';
import type { Socket } from 'node:net';
import type { ClusterSpec } from '../../compile/snapshot.js';
import { joinSockets } from '../../tcp/tunnel.js';
import { chance } from '../../compile/policies.js';
import type { Cluster, Destination } from '../../upstream/cluster.js';
import type { Host } from '../../upstream/host.js';
import type { ClusterManager } from '../../upstream/cluster-manager.js';
import { connectUpstream } from '../../upstream/connect.js';
import type { DownstreamStream } from '../stream.js';
import { injectTrace } from '../trace-context.js';
import { hashRequest } from './hash-policy.js';
import { mutatedHeaders, prepareRequestHeaders, type PeerMetadataHeaders } from './headers.js';
import { RequestView, splitAuthority } from './request-view.js';
import { connectFailure, replyNoHealthyUpstream, replyUpstreamReset } from './upstream-failure.js';
import { ForwardRequest } from './forward-request.js';

/** A request's route and what it was chosen with. */
export interface RouteSelection {
  readonly route: CompiledRoute;
  readonly view: RequestView;
  /** The request's host, lowercase, without port. */
  readonly host: string;
  /** The service port the route table was chosen for. */
  readonly port: number;
}

const NO_HOSTS: readonly Host[] = [];

/** A stream that can become an opaque tunnel (HTTP/1.1 CONNECT). */
export interface TunnelCapableStream extends DownstreamStream {
  acceptTunnel(): { socket: Socket; buffered: Buffer | null };
}

export interface RouterOptions {
  /** Ports this proxy listens on; a passthrough to one of them on a local address would loop. */
  readonly ownPorts: ReadonlySet<number>;
  /** This workload's metadata exchange headers; null sends none. */
  readonly peerMetadata?: PeerMetadataHeaders | null;
}

const LOCAL_NAMES = new Set(['localhost', '127.0.0.1', '::1', '0.0.0.0', '::']);

/**
 * Where an ORIGINAL_DST cluster sends a request: the connection's original destination for
 * redirected sidecar traffic, else the host and port the request names.
 */
function destinationOf(stream: DownstreamStream, host: string, port: number): Destination {
  const info = stream.info;
  return info.localAddressRestored ? { host: info.downstreamLocalAddress, port: info.downstreamLocalPort } : { host, port };
}

/** Envoy's 404 when no route matches (NR). */
export function replyNoRoute(stream: DownstreamStream): void {
  stream.sendLocalReply(404, '', { details: 'route_not_found', flag: ResponseFlag.NoRouteFound });
}

export class Router {
  readonly #clusters: ClusterManager;
  readonly #options: RouterOptions;

  constructor(clusters: ClusterManager, options: RouterOptions) {
    this.#clusters = clusters;
    this.#options = options;
  }

  /** This workload's metadata exchange headers, when it sends them. */
  get peerMetadata(): PeerMetadataHeaders | null {
    return this.#options.peerMetadata ?? null;
  }

  /**
   * The route for a request, from the snapshot it started with; undefined after answering
   * 404 NR when none matches.
   */
  select(stream: DownstreamStream, tables: RouteTables): RouteSelection | undefined {
    const selection = this.match(stream, tables);
    if (selection === undefined) replyNoRoute(stream);
    return selection;
  }

  /** The route for a request, or undefined when none matches; answers nothing. */
  match(stream: DownstreamStream, tables: RouteTables): RouteSelection | undefined {
    const { host, port } = splitAuthority(stream.authority);
    const view = new RequestView(stream);
    // Redirected sidecar traffic uses the route table of the port it was addressed to.
    const info = stream.info;
    const resolved = info.localAddressRestored ? tables.resolve(host, info.downstreamLocalPort, info.downstreamLocalAddress) : tables.resolve(host, port);
    const route = resolved.vhost?.select(view);
    if (route === undefined) return undefined;
    stream.info.routeName = route.name;
    return { route, view, host, port: resolved.port };
  }

  /** Carries out a selected route: a direct answer, a redirect, or forwarding upstream. */
  dispatch(stream: DownstreamStream, snapshot: Snapshot, selection: RouteSelection): void {
    const { route, view } = selection;
    const action = route.action;
    switch (action.kind) {
      case 'direct': {
        const headers = mutatedHeaders(stream.info, route.responseHeaders);
        if (action.location !== null) headers.unshift(['location', action.location(view)]);
        stream.sendLocalReply(action.status, action.body, { details: 'direct_response', headers });
        return;
      }
      case 'redirect': {
        stream.sendLocalReply(action.status, '', {
          details: 'direct_response',
          headers: [['location', action.location(view, selection.port)], ...mutatedHeaders(stream.info, route.responseHeaders)],
        });
        return;
      }
      case 'forward':
        this.#forward(stream, snapshot, route, action, selection);
    }
  }

  #forward(stream: DownstreamStream, snapshot: Snapshot, route: CompiledRoute, action: CompiledForward, selection: RouteSelection): void {
    const { view, host, port } = selection;
    const target = action.pick();
    const found = this.#cluster(stream, snapshot, target.name, host, port, () => mutatedHeaders(stream.info, target.responseHeaders, route.responseHeaders));
    if (found === undefined) return;
    const { spec, cluster } = found;
    // Envoy computes a hash only for a consistent-hash cluster; the route's policy comes first.
    const hashPolicy = spec.lb.kind === 'RING_HASH' || spec.lb.kind === 'MAGLEV' ? action.hashPolicy ?? spec.hashPolicy : spec.hashPolicy;
    const hashed = hashPolicy === undefined ? undefined : hashRequest(hashPolicy, stream, view.query);
    const pickContext = { hash: hashed?.hash };
    const destination = destinationOf(stream, host, port);
    const upstream = cluster.pick(pickContext, destination);
    if (upstream === undefined) {
      replyNoHealthyUpstream(stream, mutatedHeaders(stream.info, target.responseHeaders, route.responseHeaders));
      return;
    }
    prepareRequestHeaders(stream);
    const headers = stream.headers;
    if (!action.requestAttemptCount) headers.remove('x-envoy-attempt-count');
    if (stream.info.trace !== null) injectTrace(headers, stream.info.trace);
    target.requestHeaders?.(headers, stream.info);
    route.requestHeaders?.(headers, stream.info);
    if (action.rewritePath !== null) {
      // Envoy records the original path whenever the route has a path rewrite, even one that
      // leaves this path unchanged.
      headers.set('x-envoy-original-path', stream.path);
      stream.path = action.rewritePath(view);
    }
    // Envoy sets a weighted cluster's host rewrite first and the route's after it, so the
    // route-level one wins when both are set.
    const authority = action.hostRewrite ?? target.hostRewrite;
    if (authority !== undefined) stream.authority = authority;
    headers.set('host', stream.authority);
    new ForwardRequest(stream, {
      cluster,
      pickContext,
      destination,
      timeoutMs: action.timeoutMs,
      grpcTimeout: action.grpcTimeout,
      requestAttemptCount: action.requestAttemptCount,
      retryPolicy: action.retryPolicy,
      decoration: {
        clusterResponseHeaders: target.responseHeaders,
        routeResponseHeaders: route.responseHeaders,
        setCookie: hashed?.setCookie,
      },
      mirrorHosts: action.mirrors.length === 0 ? NO_HOSTS : this.#mirrorHosts(snapshot, action.mirrors, destination),
      peerMetadata: this.#options.peerMetadata ?? null,
    }).start(upstream);
  }

  /** A host for each mirror whose percentage draw succeeds (mirrors to unknown clusters are skipped). */
  #mirrorHosts(snapshot: Snapshot, mirrors: CompiledForward['mirrors'], destination: Destination): Host[] {
    const hosts: Host[] = [];
    for (const m of mirrors) {
      if (!chance(m.percentage)) continue;
      const spec = snapshot.clusters.get(m.cluster);
      const host = spec === undefined ? undefined : this.#clusters.get(spec)?.pick({}, destination);
      if (host !== undefined) hosts.push(host);
    }
    return hosts;
  }

  /**
   * The live cluster a request goes to, or undefined after answering the request locally:
   * 503 NC when the snapshot has no such cluster, 508 when a passthrough would loop back to this
   * proxy. `replyHeaders` gives the route's response headers for those replies.
   */
  #cluster(
    stream: DownstreamStream,
    snapshot: Snapshot,
    name: string,
    host: string,
    port: number,
    replyHeaders: () => Array<[string, string]> = () => [],
  ): { spec: ClusterSpec; cluster: Cluster } | undefined {
    const spec = snapshot.clusters.get(name);
    const cluster = spec === undefined ? undefined : this.#clusters.get(spec);
    if (spec === undefined || cluster === undefined) {
      stream.sendLocalReply(503, '', { details: 'cluster_not_found', flag: ResponseFlag.NoClusterFound, headers: replyHeaders() });
      return undefined;
    }
    stream.info.upstreamCluster = spec.name;
    // Forwarding to this proxy's own listener on a local address would loop.
    if (spec.discovery === 'ORIGINAL_DST') {
      const target = destinationOf(stream, host, port);
      if (this.#options.ownPorts.has(target.port) && (LOCAL_NAMES.has(target.host) || target.host.startsWith('127.'))) {
        stream.sendLocalReply(508, 'request addressed to the proxy itself', { details: 'passthrough_loop', headers: replyHeaders() });
        return undefined;
      }
    }
    return { spec, cluster };
  }

  /** CONNECT host:port: a TCP tunnel to the service's endpoints, or to the named address. */
  connect(stream: TunnelCapableStream, snapshot: Snapshot): void {
    const { host, port } = splitAuthority(stream.authority);
    const targetPort = port ?? 443;
    let clusterName = snapshot.tcp.get(targetPort)?.find(host);
    if (clusterName === undefined) {
      if (snapshot.mesh.outboundTrafficPolicy === 'REGISTRY_ONLY') {
        stream.sendLocalReply(502, '', { details: 'registry_only' });
        return;
      }
      clusterName = PASSTHROUGH_CLUSTER;
    }
    const found = this.#cluster(stream, snapshot, clusterName, host, targetPort);
    if (found === undefined) return;
    const { spec, cluster } = found;
    const upstream = cluster.pick({ hash: undefined }, { host, port: targetPort });
    if (upstream === undefined) {
      replyNoHealthyUpstream(stream);
      return;
    }
    stream.info.upstreamHost = upstream.key;
    upstream.activeRequests++;
    let aborted = false;
    stream.onAbort = () => {
      aborted = true;
    };
    connectUpstream(upstream.pool.target, spec.connectTimeoutMs, (err, socket) => {
      upstream.activeRequests--;
      if (aborted) {
        socket?.destroy();
        return;
      }
      stream.onAbort = null;
      if (err !== null) {
        replyUpstreamReset(stream, connectFailure(err.reason, err.transport));
        return;
      }
      const { socket: downstream, buffered } = stream.acceptTunnel();
      joinSockets(downstream, socket!, buffered);
    }, 'tcp');
  }
}
