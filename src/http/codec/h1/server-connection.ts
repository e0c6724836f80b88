/**
 * One downstream HTTP/1.1 connection: decodes requests, turns each into a `DownstreamStream`,
 * and encodes its response. Requests are served one at a time: a pipelined request is not read
 * until the previous response has been written (RFC 9112 §9.3.2 ordering for free).
 *
 * Invariants:
 * - `#stream` is the request being served, or null between requests.
 * - A stream is handed to the handler only after the read that carried its head has been fully
 *   decoded (`#pending` until then). A framing error later in the same read therefore answers
 *   the client without anything having gone upstream, and a handler that answers synchronously
 *   never re-enters the decoder: the next pipelined request is read by the loop in `#dispatch`.
 * - The socket is paused while request body bytes wait for a sink (above `BODY_BUFFER_LIMIT`)
 *   or the sink applies backpressure, and while more than `PIPELINE_BUFFER_LIMIT` bytes of
 *   pipelined requests wait for the current response.
 * - A decoding error answers with Envoy's status and reason-phrase body, then closes. Closing
 *   ends our side first and destroys the socket once the peer has closed too, or after
 *   `CLOSE_LINGER_MS` (Envoy's delayed close), so the client reads the whole reply.
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { unmappedAddress } from '../../../core/addresses.js';
import { httpDate } from '../../../core/http-date.js';
import { reasonPhrase } from '../../../core/http-status.js';
import { ResponseFlag } from '../../../core/response-flags.js';
import { HeaderMap } from '../../headers.js';
import { buildLocalReply } from '../local-reply.js';
import { upgradeRequestFrame, upgradedStream } from '../h2/upgrade.js';
import { StreamInfo, type BodySink, type DownstreamConnectionInfo, type DownstreamPeer, type DownstreamStream, type LocalReplyOptions } from '../../stream.js';
import { RequestDecoder } from './decoder.js';
import { CHUNK_SUFFIX, chunkPrefix, lastChunk, responseHead } from './encoder.js';
import type { H1Error, RequestHead } from './head.js';

/** Receives each new request stream; implemented by the connection manager. */
export interface StreamHandler {
  /** An HTTP/1.1 request: the checks only HTTP/1 needs, then `handle`. */
  onStream(stream: H1ServerStream): void;
  /** A request of any protocol (HTTP/2 streams come here directly). */
  handle(stream: DownstreamStream): void;
}

/** What the listener learned about a connection before HTTP started on it. */
export interface DownstreamContext {
  /**
   * The address the client connected to before iptables redirected it (Envoy's restored local
   * address); requests then route by its port and pass through to it.
   */
  readonly originalDestination?: { readonly address: string; readonly port: number };
  /** The client's mTLS identity. */
  readonly peer?: DownstreamPeer;
  /** The client's address, when `socket` is a TLS layer over another stream and cannot tell. */
  readonly remote?: { readonly address: string; readonly port: number };
  /** The address the client connected to, when `socket` cannot tell (a TLS layer over a stream). */
  readonly local?: { readonly address: string; readonly port: number };
  /** TLS was terminated here (requests' scheme is https), with this SNI if the client sent one. */
  readonly tls?: { readonly serverName: string | undefined };
}

export interface ServerConnectionOptions {
  /** Time allowed from the first byte of a request to the end of its head. */
  readonly requestHeadersTimeoutMs: number;
  /** Idle keep-alive connections are closed after this long. */
  readonly idleTimeoutMs: number;
  /**
   * Receives each request's record once it ended (response complete, reset, or the client gone).
   * Runs after the response; telemetry is built from it.
   */
  readonly onRequestDone?: (info: StreamInfo) => void;
  /** The `server` header of responses (Envoy's server_name; default `envoy`). */
  readonly serverHeader?: string;
  /**
   * Takes over a connection that opened with the HTTP/2 preface (h2c with prior knowledge):
   * the socket, its first bytes, and what is known about the connection. Without it such a
   * connection is refused as malformed HTTP/1.
   */
  readonly http2?: (transport: Socket | Duplex, initial: Buffer | null, connection: DownstreamConnectionInfo) => void;
}

/** The start of the HTTP/2 connection preface, `PRI * HTTP/2.0`. */
const H2_PREFACE_START = Buffer.from('PRI * HTTP/2.0\r\n', 'latin1');

/** Request body bytes held before the router attaches a sink; above this the socket pauses. */
const BODY_BUFFER_LIMIT = 64 * 1024;
/** Bytes of later requests held while one is served; above this the socket pauses. */
const PIPELINE_BUFFER_LIMIT = 64 * 1024;
/** How long a closing connection waits for the peer's close (Envoy's delayed_close_timeout). */
const CLOSE_LINGER_MS = 1000;
/** Envoy's local reply body when the request headers timeout fires. */
const HEADER_TIMEOUT_BODY = 'request header timeout';

const CONTINUE_100 = 'HTTP/1.1 100 Continue\r\n\r\n';

export class H1ServerConnection {
  readonly socket: Socket;
  /** What every request on this connection records about it. */
  readonly info: DownstreamConnectionInfo;
  /** Where HTTP/2 goes (prior knowledge, or an accepted h2c upgrade); undefined: no HTTP/2. */
  readonly http2: ServerConnectionOptions['http2'];
  readonly requestHeadersTimeoutMs: number;
  readonly #handler: StreamHandler;
  readonly #options: ServerConnectionOptions;
  readonly #decoder: RequestDecoder;
  #stream: H1ServerStream | null = null;
  /** The stream whose head the current read decoded, not yet handed to the handler. */
  #pending: H1ServerStream | null = null;
  /** True while decoding or dispatching; a response that completes meanwhile sets `#resumeWanted`. */
  #dispatching = false;
  /** The current response completed during `#dispatching`: read the next request afterwards. */
  #resumeWanted = false;
  /** Destroys a closing socket whose peer does not close in time. */
  #lingerTimer: NodeJS.Timeout | null = null;
  /** Set when the connection must close after the current response. */
  #closeAfterResponse = false;
  #closed = false;
  /** performance.now() when the current head started arriving; 0 when not waiting for one. */
  #headStartedAt = 0;
  #lastActivity = performance.now();
  /** No byte has arrived yet: the first ones may be the HTTP/2 preface. */
  #firstData = true;
  /** The start of the HTTP/2 preface, when it came in pieces. */
  #prefaceHeld: Buffer | null = null;
  /** Nesting depth of write batches; the socket is corked while it is above 0. */
  #batchDepth = 0;
  onClose: ((conn: H1ServerConnection) => void) | null = null;

  constructor(socket: Socket, handler: StreamHandler, options: ServerConnectionOptions, context: DownstreamContext = {}) {
    this.socket = socket;
    this.#handler = handler;
    this.#options = options;
    this.http2 = options.http2;
    this.requestHeadersTimeoutMs = options.requestHeadersTimeoutMs;
    const remote = context.remote;
    const local = context.originalDestination ?? context.local;
    this.info = {
      remoteAddress: remote?.address ?? unmappedAddress(socket.remoteAddress ?? ''),
      remotePort: remote?.port ?? socket.remotePort ?? 0,
      localAddress: local?.address ?? unmappedAddress(socket.localAddress ?? ''),
      localPort: local?.port ?? socket.localPort ?? 0,
      localAddressRestored: context.originalDestination !== undefined,
      peer: context.peer ?? null,
      tls: context.tls !== undefined,
      requestedServerName: context.tls?.serverName,
      serverHeader: options.serverHeader ?? 'envoy',
    };
    this.#decoder = new RequestDecoder({
      onHead: (head) => this.#onHead(head),
      onBody: (chunk) => this.#stream?.deliverBody(chunk),
      onComplete: (trailers) => this.#onRequestComplete(trailers),
      onError: (err) => this.#onDecodeError(err),
    });
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('end', () => this.#onEnd());
    socket.on('close', () => this.#onSocketClose());
    socket.on('error', () => {
      /* 'close' follows; nothing to report to the client */
    });
    socket.on('drain', () => this.#stream?.onWritable?.());
  }

  get idle(): boolean {
    return this.#stream === null && this.#decoder.idle;
  }

  /** Hands a finished request's record to the listener's consumer, if any. */
  requestDone(info: StreamInfo): void {
    this.#options.onRequestDone?.(info);
  }

  /** Called periodically by the listener: enforces the header and idle timeouts. */
  sweep(now: number): void {
    if (this.#closed) return;
    if (this.#headStartedAt !== 0 && now - this.#headStartedAt > this.#options.requestHeadersTimeoutMs) {
      this.#headStartedAt = 0;
      this.#writeErrorAndClose(408, HEADER_TIMEOUT_BODY);
      return;
    }
    if (this.idle && now - this.#lastActivity > this.#options.idleTimeoutMs) this.close();
  }

  /** Graceful close: now if idle, else after the current response (also one whose head is still arriving). */
  close(): void {
    if (this.#closed) return;
    if (this.idle) {
      this.#destroy();
    } else {
      this.#closeAfterResponse = true;
    }
  }

  #destroy(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#pending = null;
    this.#decoder.stop();
    this.socket.destroy();
  }

  /**
   * Ends our side after `data`, keeps reading (and discarding) so the peer's close is seen and
   * unread bytes do not turn our close into a reset, and destroys the socket after the linger.
   */
  #endSocket(data?: string): void {
    this.#closed = true;
    this.#pending = null;
    this.#decoder.stop();
    if (data === undefined) this.socket.end();
    else this.socket.end(data, 'latin1');
    this.socket.resume();
    if (this.#lingerTimer === null) {
      this.#lingerTimer = setTimeout(() => this.socket.destroy(), CLOSE_LINGER_MS);
      this.#lingerTimer.unref();
    }
  }

  #onData(chunk: Buffer): void {
    if (this.#firstData && this.#options.http2 !== undefined) {
      if (this.#prefaceHeld !== null) {
        chunk = Buffer.concat([this.#prefaceHeld, chunk]);
        this.#prefaceHeld = null;
      }
      const n = Math.min(chunk.length, H2_PREFACE_START.length);
      if (chunk.subarray(0, n).equals(H2_PREFACE_START.subarray(0, n))) {
        if (n === H2_PREFACE_START.length) {
          this.#firstData = false;
          const { socket } = this.detach();
          this.#options.http2(socket, chunk, this.info);
          return;
        }
        // The preface so far, split across reads: wait for the rest (under the headers timeout).
        this.#prefaceHeld = chunk;
        if (this.#headStartedAt === 0) this.#headStartedAt = performance.now();
        return;
      }
    }
    this.#firstData = false;
    this.#lastActivity = performance.now();
    if (this.#stream === null && this.#headStartedAt === 0) this.#headStartedAt = this.#lastActivity;
    this.#dispatching = true;
    try {
      this.#decoder.push(chunk);
      this.#dispatch();
    } finally {
      this.#dispatching = false;
    }
    // Empty lines before a request line do not start its headers timeout.
    if (this.#stream === null && this.#decoder.idle) this.#headStartedAt = 0;
    if (!this.#closed && this.#decoder.heldBytes > PIPELINE_BUFFER_LIMIT) this.socket.pause();
  }

  /**
   * Hands decoded streams to the handler and reads the next pipelined request when a response
   * completed meanwhile; a loop, so a run of synchronously answered requests does not recurse.
   */
  #dispatch(): void {
    for (;;) {
      if (this.#closed) {
        this.#pending = null;
        return;
      }
      const stream = this.#pending;
      if (stream !== null) {
        this.#pending = null;
        this.#handler.onStream(stream);
      } else if (this.#resumeWanted) {
        this.#resumeWanted = false;
        this.#decoder.resume();
        // A partial head held from the pipelined bytes starts its own headers timeout.
        if (this.#stream === null && !this.#decoder.idle && this.#headStartedAt === 0) {
          this.#headStartedAt = performance.now();
        }
      } else {
        return;
      }
    }
  }

  #onEnd(): void {
    // Half-close from the client: finish the current response, then close.
    this.#decoder.end();
    this.#closeAfterResponse = true;
    if (this.#stream === null && !this.#closed) this.#endSocket();
  }

  #onSocketClose(): void {
    this.#closed = true;
    this.#pending = null;
    if (this.#lingerTimer !== null) {
      clearTimeout(this.#lingerTimer);
      this.#lingerTimer = null;
    }
    this.#decoder.stop();
    const stream = this.#stream;
    this.#stream = null;
    if (stream !== null) stream.abortFromDownstream();
    this.onClose?.(this);
  }

  #onHead(head: RequestHead): void {
    this.#headStartedAt = 0;
    const info = new StreamInfo(this.info);
    const stream = new H1ServerStream(this, head, info);
    this.#stream = stream;
    this.#pending = stream;
    if (!head.keepAlive) this.#closeAfterResponse = true;
    if (head.expectsContinue && stream.hasRequestBody) {
      // Envoy answers 100-continue itself and does not forward the expectation.
      this.socket.write(CONTINUE_100);
      head.headers.remove('expect');
    }
  }

  #onRequestComplete(trailers: HeaderMap | null): void {
    const stream = this.#stream;
    if (stream === null) return;
    stream.completeBody(trailers);
  }

  #onDecodeError(err: H1Error): void {
    const stream = this.#stream;
    if (stream !== null && stream.responseStarted) {
      stream.abortFromDownstream();
      this.#destroy();
      return;
    }
    if (stream !== null) stream.abortFromDownstream();
    this.#writeErrorAndClose(err.status);
  }

  /** Writes an error reply (protocol errors: Envoy's reason phrase as body) and closes. */
  #writeErrorAndClose(status: number, body = reasonPhrase(status)): void {
    if (this.#closed) return;
    this.#stream = null;
    const headers = new HeaderMap(
      ['content-length', 'content-type', 'date', 'server', 'connection'],
      [String(body.length), 'text/plain', httpDate(), this.info.serverHeader, 'close'],
    );
    this.#endSocket(responseHead(status, headers) + body);
  }

  // === used by H1ServerStream ===

  /** Whether the response being written must end with `connection: close`. */
  get closing(): boolean {
    return this.#closeAfterResponse;
  }

  markClose(): void {
    this.#closeAfterResponse = true;
  }

  write(data: string | Buffer): boolean {
    if (this.#closed) return true;
    return typeof data === 'string' ? this.socket.write(data, 'latin1') : this.socket.write(data);
  }

  beginBatch(): void {
    if (this.#batchDepth++ === 0 && !this.#closed) this.socket.cork();
  }

  endBatch(): void {
    if (--this.#batchDepth === 0) this.socket.uncork();
  }

  pauseReading(): void {
    this.socket.pause();
  }

  resumeReading(): void {
    if (!this.#closed) this.socket.resume();
  }

  /** The response to `stream` has been fully written. */
  responseComplete(stream: H1ServerStream): void {
    if (this.#stream !== stream) return;
    this.#stream = null;
    this.#lastActivity = performance.now();
    if (this.#closeAfterResponse || !stream.requestComplete) {
      // An unread request body would be taken for the next request: close instead.
      this.#endSocket();
      return;
    }
    this.socket.resume();
    if (this.#dispatching) {
      // Answered from inside a decoder callback or the handler: `#dispatch` reads on.
      this.#resumeWanted = true;
      return;
    }
    this.#dispatching = true;
    this.#resumeWanted = true;
    try {
      this.#dispatch();
    } finally {
      this.#dispatching = false;
    }
    if (!this.#closed && this.#decoder.heldBytes > PIPELINE_BUFFER_LIMIT) this.socket.pause();
  }

  /** Hands the raw socket to a tunnel (CONNECT); the connection stops speaking HTTP. */
  detach(): { socket: Socket; buffered: Buffer | null } {
    const buffered = this.#decoder.takeHeld();
    this.#decoder.stop();
    this.#stream = null;
    this.#pending = null;
    this.#closed = true;
    this.socket.removeAllListeners('data');
    this.socket.removeAllListeners('end');
    this.socket.removeAllListeners('drain');
    return { socket: this.socket, buffered };
  }

  resetConnection(): void {
    this.#destroy();
  }
}

const enum BodyMode {
  None,
  Length,
  Chunked,
}

/** One request/response exchange on an H1ServerConnection. */
export class H1ServerStream implements DownstreamStream {
  readonly method: string;
  path: string;
  authority: string;
  readonly scheme: string;
  readonly httpVersion: '1.0' | '1.1';
  readonly headers: HeaderMap;
  readonly hasRequestBody: boolean;
  readonly info: StreamInfo;
  readonly head: RequestHead;
  upgrade: string | null = null;
  onWritable: (() => void) | null = null;
  onAbort: (() => void) | null = null;
  onResponseHeaders: ((headers: HeaderMap) => void) | null = null;

  readonly #conn: H1ServerConnection;
  #sink: BodySink | null = null;
  #held: Buffer[] | null = null;
  #heldBytes = 0;
  #requestComplete: boolean;
  #trailers: HeaderMap | null = null;
  #responseStarted = false;
  #responseMode = BodyMode.None;
  #done = false;
  #paused = false;

  constructor(conn: H1ServerConnection, head: RequestHead, info: StreamInfo) {
    this.#conn = conn;
    this.head = head;
    this.method = head.method;
    this.path = head.path;
    this.authority = head.authority;
    this.scheme = head.scheme ?? (conn.info.tls ? 'https' : 'http');
    this.httpVersion = head.minorVersion === 0 ? '1.0' : '1.1';
    this.headers = head.headers;
    this.hasRequestBody = head.chunked || head.contentLength > 0;
    this.#requestComplete = !this.hasRequestBody;
    this.info = info;
    info.request = this;
  }

  get responseStarted(): boolean {
    return this.#responseStarted;
  }

  get requestComplete(): boolean {
    return this.#requestComplete;
  }

  // === request body ===

  deliverBody(chunk: Buffer): void {
    this.info.bytesReceived += chunk.length;
    if (this.#sink !== null && this.#held === null) {
      this.#sink.onData(chunk);
      return;
    }
    (this.#held ??= []).push(chunk);
    this.#heldBytes += chunk.length;
    if (this.#heldBytes > BODY_BUFFER_LIMIT) this.#conn.pauseReading();
  }

  completeBody(trailers: HeaderMap | null): void {
    this.#requestComplete = true;
    this.#trailers = trailers;
    if (this.#sink !== null && this.#held === null) this.#sink.onEnd(trailers);
  }

  setBodySink(sink: BodySink): void {
    this.#sink = sink;
    const held = this.#held;
    if (held !== null) {
      this.#held = null;
      this.#heldBytes = 0;
      for (const c of held) sink.onData(c);
      if (!this.#paused) this.#conn.resumeReading();
    }
    if (this.#requestComplete && this.hasRequestBody) sink.onEnd(this.#trailers);
  }

  pauseRequestBody(): void {
    this.#paused = true;
    this.#conn.pauseReading();
  }

  resumeRequestBody(): void {
    this.#paused = false;
    this.#conn.resumeReading();
  }

  // === response ===

  sendHead(status: number, headers: HeaderMap, endStream: boolean, reason?: string): void {
    if (this.#done || this.#responseStarted) return;
    this.#responseStarted = true;
    this.info.responseCode = status;
    this.onResponseHeaders?.(headers);
    this.info.responseHeaders = headers;
    const bodyless = this.method === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200);
    if (bodyless) {
      this.#responseMode = BodyMode.None;
    } else if (endStream) {
      if (!headers.has('content-length')) headers.append('content-length', '0');
      this.#responseMode = BodyMode.None;
    } else if (headers.has('content-length')) {
      this.#responseMode = BodyMode.Length;
    } else {
      headers.append('transfer-encoding', 'chunked');
      this.#responseMode = BodyMode.Chunked;
    }
    if (!this.#requestComplete) this.#conn.markClose();
    if (this.#conn.closing) headers.set('connection', 'close');
    this.#conn.write(responseHead(status, headers, reason));
    if (endStream) this.#finish();
  }

  sendData(chunk: Buffer): boolean {
    if (this.#done || chunk.length === 0) return true;
    this.info.bytesSent += chunk.length;
    switch (this.#responseMode) {
      case BodyMode.Length:
        return this.#conn.write(chunk);
      case BodyMode.Chunked: {
        this.#conn.beginBatch();
        this.#conn.write(chunkPrefix(chunk.length));
        this.#conn.write(chunk);
        const ok = this.#conn.write(CHUNK_SUFFIX);
        this.#conn.endBatch();
        return ok;
      }
      case BodyMode.None:
        return true;
    }
  }

  sendEnd(trailers: HeaderMap | null): void {
    if (this.#done) return;
    this.info.responseTrailers = trailers;
    if (this.#responseMode === BodyMode.Chunked) this.#conn.write(lastChunk(trailers));
    this.#finish();
  }

  sendLocalReply(status: number, body: string | Buffer, options: LocalReplyOptions): void {
    if (this.#done || this.#responseStarted) return;
    this.info.responseCodeDetails = options.details;
    if (options.flag !== undefined) this.info.setFlag(options.flag);
    if (options.closeConnection) this.#conn.markClose();
    const reply = buildLocalReply(this.headers, status, body, options, this.info.connection.serverHeader);
    this.#conn.beginBatch();
    this.sendHead(reply.status, reply.headers, reply.body.length === 0);
    if (reply.body.length > 0) {
      this.sendData(reply.body);
      this.sendEnd(null);
    }
    this.#conn.endBatch();
  }

  beginBatch(): void {
    this.#conn.beginBatch();
  }

  endBatch(): void {
    this.#conn.endBatch();
  }

  reset(): void {
    if (this.#done) return;
    this.#done = true;
    this.info.endMs = performance.now();
    this.#conn.resetConnection();
    this.#conn.requestDone(this.info);
  }

  /** Switches the connection to an opaque tunnel after a 200 to CONNECT. */
  acceptTunnel(): { socket: Socket; buffered: Buffer | null } {
    this.#responseStarted = true;
    this.#done = true;
    this.info.responseCode = 200;
    this.#conn.write('HTTP/1.1 200 OK\r\n\r\n');
    return this.#conn.detach();
  }

  /**
   * Takes an `Upgrade: h2c` offer (a request without a body, with HTTP2-Settings): answers 101
   * and serves the connection as HTTP/2, this request becoming its stream 1. False when the
   * offer cannot be taken; the request is then served over HTTP/1.1.
   */
  acceptH2cUpgrade(): boolean {
    const settings = this.headers.get('http2-settings');
    const http2 = this.#conn.http2;
    // h2c is cleartext only (RFC 9113 §3.1): over TLS the offer is ignored.
    if (http2 === undefined || settings === undefined || this.hasRequestBody || this.#conn.info.tls || this.headers.count('http2-settings') !== 1) return false;
    const requestFrame = upgradeRequestFrame(this, settings);
    if (requestFrame === undefined) return false;
    this.#responseStarted = true;
    this.#done = true;
    this.#conn.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n');
    const { socket, buffered } = this.#conn.detach();
    http2(upgradedStream(socket, requestFrame, buffered, this.#conn.requestHeadersTimeoutMs), null, this.#conn.info);
    return true;
  }

  acceptUpgrade(status: number, headers: HeaderMap, reason?: string): { socket: Socket; buffered: Buffer | null; finish(received: number, sent: number): void } {
    this.onResponseHeaders?.(headers);
    this.#responseStarted = true;
    this.#done = true;
    this.info.responseCode = status;
    this.#conn.write(responseHead(status, headers, reason));
    const info = this.info;
    const conn = this.#conn;
    const finish = (received: number, sent: number): void => {
      info.bytesReceived += received;
      info.bytesSent += sent;
      info.endMs = performance.now();
      conn.requestDone(info);
    };
    return { ...this.#conn.detach(), finish };
  }

  /** The client went away (or sent garbage) before the response ended. */
  abortFromDownstream(): void {
    if (this.#done) return;
    this.#done = true;
    this.info.setFlag(ResponseFlag.DownstreamConnectionTermination);
    this.info.endMs = performance.now();
    const onAbort = this.onAbort;
    this.onAbort = null;
    onAbort?.();
    this.#conn.requestDone(this.info);
  }

  #finish(): void {
    this.#done = true;
    this.info.endMs = performance.now();
    this.onAbort = null;
    this.#conn.responseComplete(this);
    this.#conn.requestDone(this.info);
  }
}

