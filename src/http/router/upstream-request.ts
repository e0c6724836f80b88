/**
 * One attempt of a request on one upstream host over a pooled HTTP/1.1 connection: writes the
 * request head, takes the body from its owner (the ForwardRequest) with backpressure, decodes the
 * response and, once the owner accepts its head, relays it downstream. It is the connection's
 * user and the response decoder's callbacks, so an attempt allocates no closures on the usual
 * path.
 *
 * Invariants:
 * - `#host.activeRequests` is incremented once in `start` and decremented once in `#finish`.
 * - The pooled connection is given back exactly once: reusable only if both messages completed
 *   and both sides allow keep-alive.
 * - Until the owner accepts a response head, a failure goes to the owner (which retries or
 *   replies locally); after, the downstream stream is reset (a partial response must not look
 *   complete).
 * - Every outcome is reported to the host's outlier monitor once.
 */
import type { HeaderMutator } from '../../compile/header-mutation.js';
import { ResponseFlag, type ResponseFlagCode } from '../../core/response-flags.js';
import type { Host } from '../../upstream/host.js';
import type { ConnectFailure, ConnectionUser, PendingAcquire, PooledConnection } from '../../upstream/pool/connection-pool.js';
import { OVERFLOW } from '../../upstream/pool/connection-pool.js';
import { upstreamConnectionFacts } from '../../upstream/connect.js';
import type { DecoderCallbacks, ResponseDecoder } from '../codec/h1/decoder.js';
import { takeDecoder } from './connection-decoder.js';
import { CHUNK_SUFFIX, chunkPrefix, lastChunk, requestHead } from '../codec/h1/encoder.js';
import type { ResponseHead } from '../codec/h1/head.js';
import type { HeaderMap } from '../headers.js';
import type { DownstreamStream } from '../stream.js';
import { appendUpgrade, prepareResponseHeaders, type PeerMetadataHeaders } from './headers.js';
import { tunnelUpgrade } from './upgrade-tunnel.js';
import type { AttemptFailure } from './retry-state.js';
import { CONNECTION_TERMINATION, OVERFLOW_RESET, PER_TRY_TIMEOUT, PROTOCOL_ERROR, connectFailure, type UpstreamReset } from './upstream-failure.js';

export interface ResponseDecoration {
  /** Applied to the response headers in order: the weighted cluster's, then the route's. */
  readonly clusterResponseHeaders: HeaderMutator | null;
  readonly routeResponseHeaders: HeaderMutator | null;
  /** A generated session cookie (consistent hashing) to set on the response. */
  readonly setCookie: string | undefined;
}

/** A response head as an attempt's owner judges it (retry on status or headers). */
export interface AttemptResponse {
  readonly status: number;
  readonly headers: HeaderMap;
}

/** One try of a request on one host, over HTTP/1.1 (UpstreamRequest) or HTTP/2 (H2UpstreamRequest). */
export interface Attempt {
  readonly host: Host;
  /** Bytes of the request reached the upstream (a reset now may have been seen by it). */
  readonly requestStarted: boolean;
  readonly connected: boolean;
  /** The upstream cannot take more body now: the body waits for it to drain. */
  readonly awaitingDrain: boolean;
  start(): void;
  writeBody(chunk: Buffer): void;
  endBody(trailers: HeaderMap | null): void;
  armPerTryTimer(ms: number): void;
  /** Stops the attempt silently (route timeout, downstream gone, or the owner retries). */
  abort(): void;
  /** Stops after the route timeout. */
  timeOut(): void;
}

/** What an attempt tells the request it belongs to. */
export interface AttemptOwner {
  /** The attempt holds a connection and has written the head: it wants the request body now. */
  onAttemptConnected(attempt: Attempt): void;
  /** A final response head arrived. True relays it downstream; false drops the attempt (retry). */
  onAttemptHeaders(attempt: Attempt, head: AttemptResponse): boolean;
  /** The attempt failed before any response head was relayed. */
  onAttemptFailure(attempt: Attempt, failure: AttemptFailure, reset: UpstreamReset): void;
  /** The response was relayed completely, or the downstream was reset after its head. */
  onAttemptDone(attempt: Attempt): void;
}

export class UpstreamRequest implements Attempt, ConnectionUser, DecoderCallbacks<ResponseHead> {
  readonly host: Host;
  readonly #owner: AttemptOwner;
  readonly #stream: DownstreamStream;
  readonly #decoration: ResponseDecoration;
  readonly #chunked: boolean;
  readonly #head: string;
  readonly #onAcquired = (err: ConnectFailure | null, conn: PooledConnection | null): void => this.#acquired(err, conn);
  #pending: PendingAcquire | null = null;
  #conn: PooledConnection | null = null;
  #decoder: ResponseDecoder | null = null;
  #startMs = 0;
  #headWritten = false;
  #requestSent = false;
  #responseHead: ResponseHead | null = null;
  #committed = false;
  #finished = false;
  #freshRetryUsed = false;
  #connWasReused = false;
  /** The per-try timeout, once the owner arms it; it runs while a connection is held. */
  #perTryMs = 0;
  #perTryTimer: NodeJS.Timeout | null = null;
  /** The upstream socket is paused because the client reads the response slowly. */
  #upstreamPaused = false;
  /** A 'drain' listener is installed on the upstream socket (request body backpressure). */
  #awaitingDrain = false;
  readonly #onUpstreamDrain = (): void => {
    this.#awaitingDrain = false;
    this.#stream.resumeRequestBody();
  };
  readonly #onDownstreamWritable = (): void => {
    this.#stream.onWritable = null;
    this.#upstreamPaused = false;
    this.#conn?.socket.resume();
  };

  constructor(owner: AttemptOwner, stream: DownstreamStream, host: Host, decoration: ResponseDecoration, peerMetadata: PeerMetadataHeaders | null = null) {
    this.#owner = owner;
    this.#stream = stream;
    this.host = host;
    this.#decoration = decoration;
    this.#chunked = stream.hasRequestBody && !stream.headers.has('content-length');
    // Serialized now: the owner may change the headers for a later attempt. Istio's metadata
    // exchange goes to mesh peers only, so it is decided per attempt, by the host.
    this.#head = requestHead(stream.method, stream.path, stream.headers, peerMetadata !== null && host.istioMtls ? peerMetadata.h1Lines : '');
  }

  /** Bytes of the request reached the upstream (a reset now may have been seen by it). */
  get requestStarted(): boolean {
    return this.#headWritten;
  }

  get connected(): boolean {
    return this.#conn !== null;
  }

  start(): void {
    this.host.activeRequests++;
    this.#stream.info.upstreamHost = this.host.key;
    this.#startMs = performance.now();
    this.#pending = this.host.pool.acquire(this.#onAcquired);
  }

  #acquired(err: ConnectFailure | null, conn: PooledConnection | null): void {
    this.#pending = null;
    if (this.#finished) {
      if (conn !== null) this.host.pool.release(conn, true);
      return;
    }
    if (err === null) {
      this.#attach(conn!);
    } else if (err === OVERFLOW) {
      this.#fail('overflow', OVERFLOW_RESET);
    } else {
      this.host.outlier?.putConnectFailure();
      this.#fail('connect-failure', connectFailure(err.reason, err.transport));
    }
  }

  #attach(conn: PooledConnection): void {
    this.#conn = conn;
    const facts = upstreamConnectionFacts(conn.socket);
    this.#stream.info.upstreamPeerIdentity = facts.identity;
    this.#stream.info.upstreamLocalAddress = facts.localAddress;
    this.#connWasReused = conn.reused;
    this.#decoder = takeDecoder(conn, this, this.#stream.method === 'HEAD');
    conn.user = this;
    const socket = conn.socket;
    this.#headWritten = true;
    this.#startPerTryTimer();
    if (!this.#stream.hasRequestBody) {
      socket.write(this.#head, 'latin1');
      this.#requestSent = true;
      return;
    }
    // The head and the body bytes the owner already has leave in one write.
    socket.cork();
    socket.write(this.#head, 'latin1');
    this.#owner.onAttemptConnected(this);
    socket.uncork();
  }

  /**
   * Arms the per-try timeout once the downstream request is complete. As in Envoy it starts
   * when the attempt has its connection (time queued in the pool does not count) and stops once
   * the response head is accepted (the route timeout alone then bounds the response).
   */
  armPerTryTimer(ms: number): void {
    this.#perTryMs = ms;
    if (this.#conn !== null) this.#startPerTryTimer();
  }

  #startPerTryTimer(): void {
    if (this.#perTryMs > 0 && this.#perTryTimer === null && !this.#finished && !this.#committed) {
      this.#perTryTimer = setTimeout(() => this.#onPerTryTimeout(), this.#perTryMs);
    }
  }

  #stopPerTryTimer(): void {
    if (this.#perTryTimer !== null) {
      clearTimeout(this.#perTryTimer);
      this.#perTryTimer = null;
    }
  }

  /** The upstream socket is full: the request body waits for its 'drain'. */
  get awaitingDrain(): boolean {
    return this.#awaitingDrain;
  }

  // === the pooled connection (ConnectionUser) ===

  onSocketData(chunk: Buffer): void {
    // Coalesce the response head with the body bytes that came in the same read.
    this.#stream.beginBatch();
    this.#decoder!.push(chunk);
    this.#stream.endBatch();
  }

  onSocketClose(): void {
    if (this.#finished) return;
    const decoder = this.#decoder;
    // EOF completes a close-delimited body.
    if (decoder !== null && decoder.readingUntilClose) {
      decoder.end();
      return;
    }
    decoder?.stop();
    this.#conn = null;
    if (this.#committed) {
      this.#resetDownstream(ResponseFlag.UpstreamConnectionTermination);
    } else if (!this.#freshRetryUsed && !this.#stream.hasRequestBody && this.#connWasReused && this.#responseHead === null) {
      // A keep-alive connection the upstream had already closed failed before any response
      // byte, and the request has no body: replay once on a new connection.
      this.#freshRetryUsed = true;
      this.#headWritten = false;
      this.#pending = this.host.pool.acquire(this.#onAcquired);
    } else {
      this.host.outlier?.putReset();
      this.#fail('reset', CONNECTION_TERMINATION);
    }
  }

  // === request body, fed by the owner ===

  writeBody(chunk: Buffer): void {
    const conn = this.#conn;
    if (conn === null || this.#finished) return;
    const socket = conn.socket;
    let ok: boolean;
    if (this.#chunked) {
      socket.cork();
      socket.write(chunkPrefix(chunk.length), 'latin1');
      socket.write(chunk);
      ok = socket.write(CHUNK_SUFFIX, 'latin1');
      socket.uncork();
    } else {
      ok = socket.write(chunk);
    }
    if (!ok && !this.#awaitingDrain) {
      this.#awaitingDrain = true;
      this.#stream.pauseRequestBody();
      socket.once('drain', this.#onUpstreamDrain);
    }
  }

  endBody(trailers: HeaderMap | null): void {
    const conn = this.#conn;
    if (conn === null || this.#finished) return;
    if (this.#chunked) conn.socket.write(lastChunk(trailers), 'latin1');
    this.#requestSent = true;
  }

  // === the response (DecoderCallbacks) ===

  onHead(head: ResponseHead): void {
    // Informational heads are skipped in onComplete, except the 101 that accepts an upgrade.
    if (head.status < 200 && !(head.status === 101 && this.#stream.upgrade !== null)) return;
    this.#responseHead = head;
    this.host.outlier?.putStatus(head.status);
    if (!this.#owner.onAttemptHeaders(this, head)) {
      this.#abort();
      return;
    }
    this.#committed = true;
    this.#stopPerTryTimer();
    const headers = head.headers;
    const d = this.#decoration;
    prepareResponseHeaders(headers, performance.now() - this.#startMs, this.#stream.info);
    d.clusterResponseHeaders?.(headers, this.#stream.info);
    d.routeResponseHeaders?.(headers, this.#stream.info);
    if (d.setCookie !== undefined) headers.append('set-cookie', d.setCookie);
    if (head.status === 101) {
      appendUpgrade(headers, head.headers.get('upgrade')?.toLowerCase() ?? this.#stream.upgrade!);
      return; // the tunnel starts in onComplete, once the decoder has set aside what follows
    }
    // A response without body is relayed once complete, after the connection is back in the pool.
    if (this.#hasBody(head)) this.#stream.sendHead(head.status, head.headers, false, head.reason);
  }

  onBody(chunk: Buffer): void {
    if (!this.#committed) return;
    if (this.#stream.sendData(chunk) || this.#upstreamPaused) return;
    this.#upstreamPaused = true;
    this.#conn!.socket.pause();
    this.#stream.onWritable = this.#onDownstreamWritable;
  }

  onComplete(trailers: HeaderMap | null): void {
    const head = this.#responseHead;
    if (head === null) {
      // An informational (1xx) response ended; read the real one.
      this.#decoder!.resume();
      return;
    }
    if (!this.#committed) return;
    if (head.status === 101) {
      this.#startTunnel(head);
      return;
    }
    // Bytes after the response are a protocol violation: such a connection is not reused.
    const clean = this.#decoder!.takeHeld() === null;
    this.#release(this.#requestSent && head.keepAlive && clean);
    this.#finish();
    if (this.#hasBody(head)) this.#stream.sendEnd(trailers);
    else this.#stream.sendHead(head.status, head.headers, true, head.reason);
    this.#owner.onAttemptDone(this);
  }

  /**
   * The upstream accepted the upgrade: its connection leaves HTTP for good (never back in the
   * pool), the 101 goes downstream, and both connections become one tunnel.
   */
  #startTunnel(head: ResponseHead): void {
    const conn = this.#conn!;
    const fromUpstream = this.#decoder!.takeHeld();
    this.#decoder!.stop();
    conn.attachment = null;
    this.#detachFrom(conn);
    this.#conn = null;
    this.#finish();
    const { socket, buffered, finish } = this.#stream.acceptUpgrade(head.status, head.headers, head.reason);
    tunnelUpgrade(conn, socket, fromUpstream, buffered, (stats) => finish(stats.received, stats.sent));
    this.#owner.onAttemptDone(this);
  }

  onError(): void {
    this.#abortConnection();
    if (this.#committed) {
      this.#resetDownstream(ResponseFlag.UpstreamProtocolError);
    } else {
      this.host.outlier?.putStatus(502);
      this.#fail('reset', PROTOCOL_ERROR);
    }
  }

  #hasBody(head: ResponseHead): boolean {
    const s = head.status;
    if (this.#stream.method === 'HEAD' || s === 204 || s === 304) return false;
    return head.chunked || head.contentLength !== 0;
  }

  #onPerTryTimeout(): void {
    this.#perTryTimer = null;
    if (this.#finished || this.#committed) return;
    this.host.outlier?.putTimeout();
    this.#fail('per-try-timeout', PER_TRY_TIMEOUT);
  }

  // === endings ===

  /** Stops the attempt silently (route timeout, downstream gone, or the owner retries). */
  abort(): void {
    if (this.#finished) return;
    this.#abort();
  }

  #abort(): void {
    this.#pending?.cancel();
    this.#pending = null;
    this.#abortConnection();
    this.#finish();
  }

  /**
   * Stops after a route timeout. Outlier detection hears of it only for a host that was
   * reached and has not answered yet (as Envoy records it).
   */
  timeOut(): void {
    if (this.#finished) return;
    if (this.#committed) {
      this.#resetDownstream(ResponseFlag.UpstreamRequestTimeout);
      return;
    }
    if (this.#headWritten && this.#responseHead === null) this.host.outlier?.putTimeout();
    this.#abort();
  }

  #fail(failure: AttemptFailure, reset: UpstreamReset): void {
    if (this.#finished) return;
    this.#pending?.cancel();
    this.#pending = null;
    this.#abortConnection();
    this.#finish();
    this.#owner.onAttemptFailure(this, failure, reset);
  }

  #resetDownstream(flag: ResponseFlagCode): void {
    this.#stream.info.setFlag(flag);
    this.#abortConnection();
    this.#finish();
    this.#stream.reset();
    this.#owner.onAttemptDone(this);
  }

  #abortConnection(): void {
    const conn = this.#conn;
    if (conn === null) return;
    this.#conn = null;
    this.#decoder?.stop();
    this.#detachFrom(conn);
    this.host.pool.release(conn, false);
  }

  #release(reusable: boolean): void {
    const conn = this.#conn;
    if (conn === null) return;
    this.#conn = null;
    this.#detachFrom(conn);
    this.host.pool.release(conn, reusable);
  }

  /** Leaves the socket as the pool expects it: flowing, with none of this exchange's listeners. */
  #detachFrom(conn: PooledConnection): void {
    if (this.#awaitingDrain) {
      this.#awaitingDrain = false;
      conn.socket.removeListener('drain', this.#onUpstreamDrain);
      this.#stream.resumeRequestBody();
    }
    if (this.#upstreamPaused) {
      this.#upstreamPaused = false;
      conn.socket.resume();
    }
  }

  #finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#stopPerTryTimer();
    this.host.activeRequests--;
    if (this.#committed) this.#stream.onWritable = null;
  }
}
