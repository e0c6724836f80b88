/**
 * One HTTP/1.1 exchange with an upstream host on a pooled connection: writes the request head,
 * streams the body with backpressure in both directions, decodes the response and relays it.
 * It is the connection's user, the response decoder's callbacks and the request body's sink,
 * so an exchange allocates no closures on the usual path.
 *
 * Invariants:
 * - `#host.activeRequests` is incremented once in `start` and decremented once in `#finish`.
 * - The pooled connection is given back exactly once: reusable only if both messages completed
 *   and both sides allow keep-alive.
 * - Before any response header has gone downstream a failure becomes a local reply; after, the
 *   downstream stream is reset (a partial response must not look complete).
 */
import type { HeaderMutator } from '../../compile/header-mutation.js';
import { ResponseFlag, type ResponseFlagCode } from '../../core/response-flags.js';
import type { Host } from '../../upstream/host.js';
import type { ConnectFailure, ConnectionUser, PooledConnection } from '../../upstream/pool/connection-pool.js';
import { ResponseDecoder, type DecoderCallbacks } from '../codec/h1/decoder.js';
import { CHUNK_SUFFIX, chunkPrefix, lastChunk, requestHead } from '../codec/h1/encoder.js';
import type { ResponseHead } from '../codec/h1/head.js';
import type { HeaderMap } from '../headers.js';
import type { BodySink, DownstreamStream } from '../stream.js';
import { mutatedHeaders, prepareResponseHeaders } from './headers.js';
import {
  CONNECTION_TERMINATION,
  PROTOCOL_ERROR,
  connectFailure,
  replyTimeout,
  replyUpstreamReset,
  type UpstreamReset,
} from './upstream-failure.js';

export interface UpstreamRequestOptions {
  /** Applied to the response headers in order: the weighted cluster's, then the route's. */
  readonly clusterResponseHeaders: HeaderMutator | null;
  readonly routeResponseHeaders: HeaderMutator | null;
  /** A generated session cookie (consistent hashing) to set on the response. */
  readonly setCookie: string | undefined;
  /** Route timeout; 0 disables it. */
  readonly timeoutMs: number;
}

export class UpstreamRequest implements BodySink, ConnectionUser, DecoderCallbacks<ResponseHead> {
  readonly #stream: DownstreamStream;
  readonly #host: Host;
  readonly #options: UpstreamRequestOptions;
  readonly #chunked: boolean;
  readonly #onAcquired = (err: ConnectFailure | null, conn: PooledConnection | null): void => this.#acquired(err, conn);
  #conn: PooledConnection | null = null;
  #decoder: ResponseDecoder | null = null;
  #head = '';
  #startMs = 0;
  #requestSent = false;
  #bodyStarted = false;
  #responseHead: ResponseHead | null = null;
  #finished = false;
  #freshRetryUsed = false;
  #connWasReused = false;
  #timer: NodeJS.Timeout | null = null;
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

  constructor(stream: DownstreamStream, host: Host, options: UpstreamRequestOptions) {
    this.#stream = stream;
    this.#host = host;
    this.#options = options;
    this.#chunked = stream.hasRequestBody && !stream.headers.has('content-length');
  }

  start(): void {
    const stream = this.#stream;
    this.#host.activeRequests++;
    stream.info.upstreamHost = this.#host.key;
    stream.onAbort = () => this.#onDownstreamAbort();
    if (!stream.hasRequestBody) this.#startTimer();
    this.#head = requestHead(stream.method, stream.path, stream.headers);
    this.#startMs = performance.now();
    this.#host.pool.acquire(this.#onAcquired);
  }

  #acquired(err: ConnectFailure | null, conn: PooledConnection | null): void {
    if (this.#finished) {
      if (conn !== null) this.#host.pool.release(conn, true);
      return;
    }
    if (err !== null) this.#fail(connectFailure(err.reason, err.transport));
    else this.#attach(conn!);
  }

  #attach(conn: PooledConnection): void {
    this.#conn = conn;
    this.#connWasReused = conn.reused;
    let decoder = conn.attachment as ResponseDecoder | null;
    if (decoder === null) {
      decoder = new ResponseDecoder(this);
      conn.attachment = decoder;
    } else {
      decoder.callbacks = this;
      decoder.resume();
    }
    decoder.expectBodylessResponse = this.#stream.method === 'HEAD';
    this.#decoder = decoder;
    conn.user = this;
    const socket = conn.socket;
    if (!this.#stream.hasRequestBody) {
      socket.write(this.#head, 'latin1');
      this.#requestSent = true;
      return;
    }
    // The head and any body bytes already received leave in one write.
    socket.cork();
    socket.write(this.#head, 'latin1');
    this.#stream.setBodySink(this);
    socket.uncork();
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
    if (this.#responseHead !== null) {
      this.#resetDownstream(ResponseFlag.UpstreamConnectionTermination);
    } else if (!this.#freshRetryUsed && !this.#bodyStarted && this.#connWasReused) {
      // A keep-alive connection the upstream had already closed failed before any response
      // byte, and no body byte was sent: replay once on a new connection.
      this.#freshRetryUsed = true;
      this.#host.pool.acquire(this.#onAcquired);
    } else {
      this.#fail(CONNECTION_TERMINATION);
    }
  }

  // === request body (BodySink) ===

  onData(chunk: Buffer): void {
    const conn = this.#conn;
    if (conn === null || this.#finished) return;
    this.#bodyStarted = true;
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

  onEnd(trailers: HeaderMap | null): void {
    const conn = this.#conn;
    if (conn === null || this.#finished) return;
    if (this.#chunked) conn.socket.write(lastChunk(trailers), 'latin1');
    this.#requestSent = true;
    this.#startTimer();
  }

  // === the response (DecoderCallbacks) ===

  onHead(head: ResponseHead): void {
    if (head.status < 200) return; // informational: skipped in onComplete
    this.#responseHead = head;
    const headers = head.headers;
    const options = this.#options;
    prepareResponseHeaders(headers, performance.now() - this.#startMs);
    options.clusterResponseHeaders?.(headers);
    options.routeResponseHeaders?.(headers);
    if (options.setCookie !== undefined) headers.append('set-cookie', options.setCookie);
    // A response without body is relayed once complete, after the connection is back in the pool.
    if (this.#hasBody(head)) this.#stream.sendHead(head.status, head.headers, false, head.reason);
  }

  onBody(chunk: Buffer): void {
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
    // Bytes after the response are a protocol violation: such a connection is not reused.
    const clean = this.#decoder!.takeHeld() === null;
    this.#release(this.#requestSent && head.keepAlive && clean);
    this.#finish();
    if (this.#hasBody(head)) this.#stream.sendEnd(trailers);
    else this.#stream.sendHead(head.status, head.headers, true, head.reason);
  }

  onError(): void {
    this.#abortConnection();
    if (this.#responseHead === null) this.#fail(PROTOCOL_ERROR);
    else this.#resetDownstream(ResponseFlag.UpstreamProtocolError);
  }

  #hasBody(head: ResponseHead): boolean {
    const s = head.status;
    if (this.#stream.method === 'HEAD' || s === 204 || s === 304) return false;
    return head.chunked || head.contentLength !== 0;
  }

  // === timeouts and aborts ===

  /** Envoy's route timeout runs from the end of the downstream request to the end of the response. */
  #startTimer(): void {
    if (this.#options.timeoutMs > 0 && this.#timer === null && !this.#finished) {
      this.#timer = setTimeout(() => this.#onTimeout(), this.#options.timeoutMs);
    }
  }

  #onTimeout(): void {
    this.#timer = null;
    if (this.#finished) return;
    this.#abortConnection();
    if (this.#responseHead === null) {
      this.#finish();
      replyTimeout(this.#stream, this.#replyHeaders());
    } else {
      this.#resetDownstream(ResponseFlag.UpstreamRequestTimeout);
    }
  }

  #onDownstreamAbort(): void {
    if (this.#finished) return;
    this.#abortConnection();
    this.#finish();
  }

  // === endings ===

  #fail(reset: UpstreamReset): void {
    if (this.#finished) return;
    this.#abortConnection();
    this.#finish();
    replyUpstreamReset(this.#stream, reset, this.#replyHeaders());
  }

  /** The route's (and destination's) response header operations, for a local reply. */
  #replyHeaders(): Array<[string, string]> {
    return mutatedHeaders(this.#options.clusterResponseHeaders, this.#options.routeResponseHeaders);
  }

  #resetDownstream(flag: ResponseFlagCode): void {
    this.#stream.info.setFlag(flag);
    this.#abortConnection();
    this.#finish();
    this.#stream.reset();
  }

  #abortConnection(): void {
    const conn = this.#conn;
    if (conn === null) return;
    this.#conn = null;
    this.#decoder?.stop();
    this.#detachFrom(conn);
    this.#host.pool.release(conn, false);
  }

  #release(reusable: boolean): void {
    const conn = this.#conn;
    if (conn === null) return;
    this.#conn = null;
    this.#detachFrom(conn);
    this.#host.pool.release(conn, reusable);
  }

  /** Leaves the socket as the pool expects it: flowing, with none of this exchange's listeners. */
  #detachFrom(conn: PooledConnection): void {
    if (this.#awaitingDrain) {
      this.#awaitingDrain = false;
      conn.socket.removeListener('drain', this.#onUpstreamDrain);
    }
    if (this.#upstreamPaused) {
      this.#upstreamPaused = false;
      conn.socket.resume();
    }
  }

  #finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    this.#host.activeRequests--;
    this.#stream.onAbort = null;
    this.#stream.onWritable = null;
  }
}
