/**
 * The HTTP connection manager: decides what happens to each new request stream, as Envoy's HCM
 * does: protocol checks (HTTP/1.0 → 426, upgrades other than WebSocket → 403), path normalization (400),
 * for inbound and gateway requests XFCC, JWT (401) and authorization (403) (inbound also the
 * port's mTLS mode), then route selection from the snapshot current at that moment (404 NR),
 * the route's filters (CORS, fault, rate limit), and the router.
 */
import { randomUUID } from 'node:crypto';
import { inboundProtocolFor, plaintextRefused } from '../compile/peer-authentication.js';
import type { RouteTables } from '../compile/route-table.js';
import type { Snapshot } from '../compile/snapshot.js';
import type { JwtResult } from '../compile/request-authentication.js';
import type { H1ServerStream, StreamHandler } from './codec/h1/server-connection.js';
import type { DownstreamStream, TrafficDirection } from './stream.js';
import { authorizeRequest } from './authorization-check.js';
import { authenticateRequest } from './request-authentication-check.js';
import { setClientCertHeader, setGatewayClientCertHeader } from './client-cert-header.js';
import { normalizePath } from './path-normalization.js';
import { startTrace, TRACE_B3, TRACE_W3C } from './trace-context.js';
import { runRouteFilters } from './filter-chain.js';
import { replyNoRoute, type RouteSelection, type Router } from './router/router.js';
import { appendPeerMetadata, PEER_METADATA, PEER_METADATA_ID, type PeerMetadataHeaders } from './router/headers.js';

/** Where the current snapshot comes from; read once per request. */
export interface SnapshotSource {
  current(): Snapshot;
}

export type { TrafficDirection };

/** A gateway server's route tables in a snapshot; undefined once the server is gone. */
export type GatewayRoutes = (snapshot: Snapshot) => RouteTables | undefined;

export class HttpConnectionManager implements StreamHandler {
  readonly #source: SnapshotSource;
  readonly #router: Router;
  readonly #direction: TrafficDirection;
  readonly #gatewayRoutes: GatewayRoutes | undefined;

  constructor(source: SnapshotSource, router: Router, direction: TrafficDirection = 'outbound', gatewayRoutes?: GatewayRoutes) {
    this.#source = source;
    this.#router = router;
    this.#direction = direction;
    this.#gatewayRoutes = gatewayRoutes;
  }

  onStream(stream: H1ServerStream): void {
    const head = stream.head;
    if (head.minorVersion === 0) {
      // Istio does not enable accept_http_10: Envoy answers 426 with an empty body.
      stream.sendLocalReply(426, '', { details: 'low_version', closeConnection: true });
      return;
    }
    if (head.connection.includes('upgrade') && head.headers.has('upgrade')) {
      const protocol = head.headers.get('upgrade')!.toLowerCase();
      if (protocol === 'websocket') {
        // Istio enables WebSocket upgrades on every HTTP route: routed, authorized and
        // forwarded like any request; a 101 from upstream makes it a tunnel.
        stream.upgrade = protocol;
      } else if (protocol === 'h2c') {
        // The connection becomes HTTP/2 and this request its stream 1 (handled from there);
        // an offer that cannot be taken is ignored and the request served over HTTP/1.1.
        if (stream.acceptH2cUpgrade()) return;
        head.headers.remove('http2-settings');
      } else {
        // No other upgrade is configured: Envoy rejects it with 403.
        stream.sendLocalReply(403, '', { details: 'upgrade_failed', closeConnection: true });
        return;
      }
    }
    if (stream.method === 'CONNECT' && this.#direction === 'outbound') {
      this.#router.connect(stream, this.#source.current());
      return;
    }
    this.handle(stream);
  }

  handle(stream: DownstreamStream): void {
    const snapshot = this.#source.current();
    stream.info.direction = this.#direction;
    // Envoy's HCM gives every request an x-request-id before routing, so local replies carry
    // one in logs and spans too.
    if (!stream.headers.has('x-request-id')) stream.headers.append('x-request-id', randomUUID());
    const tracing = snapshot.mesh.tracing;
    // A trace starting here is propagated in the provider's format (Zipkin: B3; else W3C).
    if (tracing.enabled) stream.info.trace = startTrace(stream.headers, tracing.samplingPercent, tracing.exporter?.kind === 'zipkin' ? TRACE_B3 : TRACE_W3C);
    if (stream.method === 'CONNECT') {
      // CONNECT is served on HTTP/1.1 outbound only; elsewhere no route takes it (Envoy's 404).
      replyNoRoute(stream);
      return;
    }
    // Policies and routes see the path the application will act on (Istio's BASE normalization).
    const normalized = normalizePath(stream.path);
    if (normalized === undefined) {
      stream.sendLocalReply(400, '', { details: 'path_normalization_failed', closeConnection: true });
      return;
    }
    stream.path = normalized;
    if (this.#direction === 'inbound') {
      this.#inbound(stream, snapshot);
      return;
    }
    if (this.#direction === 'gateway') {
      this.#gateway(stream, snapshot);
      return;
    }
    // Envoy's outbound default (SANITIZE): the application cannot speak for a client certificate.
    stream.headers.remove('x-forwarded-client-cert');
    this.#route(stream, snapshot, snapshot.routes);
  }

  /** Inbound, before routing: the port's mTLS mode, XFCC, JWT authentication, then authorization. */
  #inbound(stream: DownstreamStream, snapshot: Snapshot): void {
    // A port that became STRICT after this plaintext connection was accepted, or that no longer
    // serves HTTP (xDS removed its chains or virtualInbound), serves it no more.
    const port = stream.info.downstreamLocalPort;
    const protocol = inboundProtocolFor(snapshot.model, port);
    if (protocol === 'NONE' || protocol === 'TCP' || (stream.info.downstreamPeer === null && plaintextRefused(snapshot.model.peerAuthentication, port))) {
      stream.reset();
      return;
    }
    takePeerMetadata(stream, this.#router.peerMetadata);
    setClientCertHeader(stream);
    authenticateRequest(stream, snapshot.requestAuthentication, (jwt) => this.#authorizeAndRoute(stream, snapshot, snapshot.inboundRoutes, jwt));
  }

  /**
   * At a gateway, the edge of the mesh (Envoy with use_remote_address): whether the client
   * connected over TLS sets x-forwarded-proto, XFCC is sanitized and set, then JWT and authorization
   * apply before the server's own routes.
   */
  #gateway(stream: DownstreamStream, snapshot: Snapshot): void {
    const tables = this.#gatewayRoutes?.(snapshot);
    if (tables === undefined) {
      replyNoRoute(stream);
      return;
    }
    // From the connection, never from an absolute-form request line a plaintext client wrote.
    stream.headers.set('x-forwarded-proto', stream.info.connection.tls ? 'https' : 'http');
    setGatewayClientCertHeader(stream);
    authenticateRequest(stream, snapshot.requestAuthentication, (jwt) => this.#authorizeAndRoute(stream, snapshot, tables, jwt));
  }

  /**
   * Authorization, then routing. When some route replaces the policies (xDS RBACPerRoute), the
   * route is chosen first (after JWT authentication, which may add headers routes match on) and
   * its policies are checked, as Envoy's RBAC filter reads the route's config; a request no
   * route matches is held to the listener's policies before its 404.
   */
  #authorizeAndRoute(stream: DownstreamStream, snapshot: Snapshot, tables: RouteTables, jwt: JwtResult): void {
    if (!tables.routeAuthorization) {
      if (authorizeRequest(stream, snapshot.authorization, jwt)) this.#route(stream, snapshot, tables);
      return;
    }
    const selection = this.#router.match(stream, tables);
    const own = selection?.route.authorization;
    const policies = own === undefined ? snapshot.authorization : own;
    if (policies !== null && !authorizeRequest(stream, policies, jwt)) return;
    if (selection === undefined) replyNoRoute(stream);
    else this.#dispatch(stream, snapshot, selection);
  }

  /** Route selection (404 NR), the route's filters, then the router. */
  #route(stream: DownstreamStream, snapshot: Snapshot, tables: RouteTables): void {
    const selection = this.#router.select(stream, tables);
    if (selection !== undefined) this.#dispatch(stream, snapshot, selection);
  }

  /** The route's filters, then the router. */
  #dispatch(stream: DownstreamStream, snapshot: Snapshot, selection: RouteSelection): void {
    const filters = selection.route.filters;
    if (filters === null) this.#router.dispatch(stream, snapshot, selection);
    else runRouteFilters(stream, filters, () => this.#router.dispatch(stream, snapshot, selection));
  }
}

/**
 * Istio's metadata exchange on inbound requests. The client's metadata is taken out of the
 * request (the application never sees it) and kept for metrics only when the client proved a
 * mesh identity (mTLS), so a plaintext client cannot write metric labels. A response goes back
 * with this workload's metadata only to a client that sent its own, as Istio does.
 */
function takePeerMetadata(stream: DownstreamStream, own: PeerMetadataHeaders | null): void {
  const h = stream.headers;
  const theirs = h.get(PEER_METADATA);
  if (theirs === undefined) {
    if (h.has(PEER_METADATA_ID)) h.remove(PEER_METADATA_ID);
    return;
  }
  h.remove(PEER_METADATA);
  h.remove(PEER_METADATA_ID);
  if (stream.info.connection.peer === null) return;
  stream.info.downstreamPeerMetadata = theirs;
  if (own !== null) stream.onResponseHeaders = (response) => appendPeerMetadata(response, own);
}
