/**
 * The downstream side of one HTTP request, independent of the codec that carries it. The
 * connection manager hands a stream to the router; the router reads the request (head, then body
 * with backpressure) and writes the response through it.
 *
 * Response contract, in order: `sendHead` once, then `sendData`* and `sendEnd` unless the head
 * ended the stream; or `sendLocalReply` instead of all of these while no head has been sent; or
 * `reset` at any time. After the response ends or the stream resets, every method is a no-op.
 */
import type { Socket } from 'node:net';
import type { ResponseFlagCode } from '../core/response-flags.js';
import type { HeaderMap } from './headers.js';
import type { TrafficDirection } from '../model/telemetry.js';
import type { TraceContext } from './trace-context.js';

export type { TrafficDirection };

/**
 * Envoy's default stream_idle_timeout (Istio keeps it): a stream (an HTTP/2 stream, an upgraded
 * WebSocket) without a byte either way this long is closed.
 */
export const STREAM_IDLE_TIMEOUT_MS = 5 * 60 * 1000;

/** Receives request body bytes. `onEnd` fires once, after the last byte. */
export interface BodySink {
  onData(chunk: Buffer): void;
  onEnd(trailers: HeaderMap | null): void;
}

/** The client's certificate identity, when the connection was Istio mTLS (inbound) or mutual TLS at a gateway. */
export interface DownstreamPeer {
  /** The client's SPIFFE URI (at a gateway: the URI SAN, else the DNS SAN, else the subject). */
  readonly identity: string;
  /** SHA-256 of the client's leaf certificate, hex. */
  readonly certHash: string;
  /** This workload's own SPIFFE URI. */
  readonly localIdentity: string;
  /** The SNI the client sent. */
  readonly serverName?: string;
  /** Gateways: the XFCC element describing this client (Envoy's SANITIZE_SET). */
  readonly clientCertDetails?: string;
}

/** What is known about a downstream connection; shared by every request on it. */
export interface DownstreamConnectionInfo {
  readonly remoteAddress: string;
  readonly remotePort: number;
  /** The address the client connected to (its original destination when redirected). */
  readonly localAddress: string;
  readonly localPort: number;
  /** The local address is the connection's original destination (a sidecar's redirected traffic). */
  readonly localAddressRestored: boolean;
  /** The client's certificate identity (Istio mTLS inbound, mutual TLS at a gateway). */
  readonly peer: DownstreamPeer | null;
  /** TLS was terminated on this connection. */
  readonly tls: boolean;
  /** The SNI of that TLS, if the client sent one. */
  readonly requestedServerName: string | undefined;
  /**
   * The `server` header of responses (Envoy's server_name): `envoy` by default; Istio names its
   * inbound and gateway listeners `istio-envoy`.
   */
  readonly serverHeader: string;
}

/** The request a record describes, as the proxy last saw it (after rewrites and added headers). */
export interface RequestFacts {
  readonly method: string;
  readonly path: string;
  readonly authority: string;
  readonly scheme: string;
  readonly httpVersion: '1.0' | '1.1' | '2';
  readonly headers: HeaderMap;
}

/**
 * Facts about one request, filled in as it runs; the record telemetry is built from. Fields are
 * plain assignments of what the data path already has: anything derived (labels, log lines,
 * spans) is computed from the record after the response.
 */
export class StreamInfo {
  readonly startTime = Date.now();
  readonly startMs = performance.now();
  direction: TrafficDirection = 'outbound';
  /** The request (the codec's stream); null only for records made without one. */
  request: RequestFacts | null = null;
  /** The response head sent downstream (from upstream or a local reply), and its trailers. */
  responseHeaders: HeaderMap | null = null;
  responseTrailers: HeaderMap | null = null;
  /** The peer's Istio metadata as it arrived (x-envoy-peer-metadata, base64), undecoded. */
  downstreamPeerMetadata: string | null = null;
  upstreamPeerMetadata: string | null = null;
  /** The trace this request belongs to; null when tracing is off. */
  trace: TraceContext | null = null;
  /** The upstream's SPIFFE identity when the request went over Istio mTLS; '' otherwise. */
  upstreamPeerIdentity = '';
  upstreamLocalAddress = '';
  upstreamTransportFailureReason = '';
  /** Envoy response flags set so far; null until the first one (most requests have none). */
  responseFlags: ResponseFlagCode[] | null = null;
  responseCodeDetails = '';
  responseCode = 0;
  routeName = '';
  upstreamCluster = '';
  upstreamHost = '';
  bytesReceived = 0;
  bytesSent = 0;
  endMs = 0;

  constructor(readonly connection: DownstreamConnectionInfo) {}

  get downstreamRemoteAddress(): string {
    return this.connection.remoteAddress;
  }

  get downstreamRemotePort(): number {
    return this.connection.remotePort;
  }

  get downstreamLocalAddress(): string {
    return this.connection.localAddress;
  }

  get downstreamLocalPort(): number {
    return this.connection.localPort;
  }

  get localAddressRestored(): boolean {
    return this.connection.localAddressRestored;
  }

  get downstreamPeer(): DownstreamPeer | null {
    return this.connection.peer;
  }

  /** Drops the references to the request and response (after telemetry has read them). */
  releaseMessages(): void {
    this.request = null;
    this.responseHeaders = null;
    this.responseTrailers = null;
  }

  setFlag(flag: ResponseFlagCode): void {
    if (this.responseFlags === null) this.responseFlags = [flag];
    else if (!this.responseFlags.includes(flag)) this.responseFlags.push(flag);
  }
}

export interface LocalReplyOptions {
  /** Envoy response code details, e.g. `route_not_found`. */
  readonly details: string;
  readonly flag?: ResponseFlagCode;
  /** Extra response headers, e.g. `location` or `x-envoy-overloaded`. */
  readonly headers?: ReadonlyArray<readonly [string, string]>;
  readonly contentType?: string;
  /** Close the downstream connection after the reply (protocol errors). */
  readonly closeConnection?: boolean;
  /** For gRPC requests: the grpc-status to answer with (else the HTTP status mapped). */
  readonly grpcStatus?: number;
}

export interface DownstreamStream {
  readonly method: string;
  /** Path with query string, as it will be sent upstream; rewrites replace it. */
  path: string;
  /** Host / :authority; rewrites replace it. */
  authority: string;
  readonly scheme: string;
  /** The protocol the client used: `1.0`, `1.1` or `2`. */
  readonly httpVersion: '1.0' | '1.1' | '2';
  readonly headers: HeaderMap;
  /** The request carries a body (Content-Length > 0 or chunked). */
  readonly hasRequestBody: boolean;
  readonly info: StreamInfo;
  /**
   * The protocol a WebSocket upgrade asks for (`websocket`, lowercase) when the connection
   * manager accepted it; null for every other request. Upgrade and Connection headers are then
   * forwarded, and a 101 answer turns the exchange into a tunnel.
   */
  upgrade: string | null;
  /**
   * Sends the upstream's 101 head and hands over the downstream connection for the tunnel,
   * with bytes the client already sent after its request. `finish` completes the request's
   * record once the tunnel closed, with the bytes it carried each way.
   */
  acceptUpgrade(status: number, headers: HeaderMap, reason?: string): { socket: Socket; buffered: Buffer | null; finish(received: number, sent: number): void };

  /** Starts delivering request body bytes (those already received first). */
  setBodySink(sink: BodySink): void;
  pauseRequestBody(): void;
  resumeRequestBody(): void;

  /** `bodyless` means no body bytes follow regardless of framing headers (HEAD, 204, 304). */
  sendHead(status: number, headers: HeaderMap, endStream: boolean, reason?: string): void;
  /** Returns false when the client is slow; `onWritable` fires when it has caught up. */
  sendData(chunk: Buffer): boolean;
  sendEnd(trailers: HeaderMap | null): void;
  sendLocalReply(status: number, body: string | Buffer, options: LocalReplyOptions): void;
  /** Aborts the response; the client sees the connection close. */
  reset(): void;
  /**
   * Writes between beginBatch and endBatch may be coalesced into one syscall (e.g. a response
   * head and the body bytes that arrived with it). Calls nest.
   */
  beginBatch(): void;
  endBatch(): void;

  readonly responseStarted: boolean;
  /** Called when a previously full downstream buffer drains. */
  onWritable: (() => void) | null;
  /** Called once if the client goes away before the response ends. */
  onAbort: (() => void) | null;
  /**
   * Edits every response head this stream sends, upstream or local (the encoder side of the
   * filter chain, e.g. CORS headers). Set by filters before the router runs.
   */
  onResponseHeaders: ((headers: HeaderMap) => void) | null;
}
