/**
 * Downstream HTTP/2 (h2c with prior knowledge, h2 and istio-h2 by ALPN) on Node's http2 module:
 * each accepted connection
 * becomes a session, each request stream an H2ServerStream, which speaks the same
 * DownstreamStream contract as HTTP/1.1 streams, so routing, policies and the router do not
 * care which protocol the client used.
 *
 * Flow control is end to end: the request body is read only as fast as the upstream takes it
 * (a paused stream stops returning window to the client), and a response write that does not
 * fit the client's window reports backpressure until the stream drains.
 *
 * Envoy's HTTP/2 defaults apply: 2^31-1 concurrent streams advertised as Envoy does (Istio keeps
 * it), a 60 KiB header list, and connection-specific headers removed from responses.
 */
import { constants, createServer, type Http2Server, type Http2Session, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';
import { replayStream } from '../../../core/replay-stream.js';
import { ResponseFlag } from '../../../core/response-flags.js';
import type { HeaderMap } from '../../headers.js';
import { buildLocalReply } from '../local-reply.js';
import { fromH2Headers, toH2Headers } from './headers.js';
import { STREAM_IDLE_TIMEOUT_MS, StreamInfo, type BodySink, type DownstreamConnectionInfo, type DownstreamStream, type LocalReplyOptions } from '../../stream.js';

/** Receives every new request stream of every session. */
export interface H2StreamHandler {
  handle(stream: DownstreamStream): void;
}

export interface H2ServerOptions {
  /** A session without traffic this long is closed (GOAWAY). */
  readonly idleTimeoutMs: number;
  readonly onRequestDone?: (info: StreamInfo) => void;
}

/** Envoy's max_request_headers_kb default. */
const MAX_HEADER_LIST = 60 * 1024;

export class H2ServerStream implements DownstreamStream {
  readonly method: string;
  path: string;
  authority: string;
  readonly scheme: string;
  readonly httpVersion = '2' as const;
  readonly headers: HeaderMap;
  readonly hasRequestBody: boolean;
  readonly info: StreamInfo;
  upgrade: string | null = null;
  onWritable: (() => void) | null = null;
  onAbort: (() => void) | null = null;
  onResponseHeaders: ((headers: HeaderMap) => void) | null = null;

  readonly #h2: ServerHttp2Stream;
  readonly #onDone: ((info: StreamInfo) => void) | undefined;
  #sink: BodySink | null = null;
  #held: Buffer[] | null = null;
  #requestComplete: boolean;
  #requestTrailers: HeaderMap | null = null;
  #responseTrailers: HeaderMap | null = null;
  #responseStarted = false;
  #done = false;

  constructor(h2: ServerHttp2Stream, headers: IncomingHttpHeaders, connection: DownstreamConnectionInfo, onDone?: (info: StreamInfo) => void) {
    this.#h2 = h2;
    this.#onDone = onDone;
    this.method = String(headers[':method'] ?? 'GET');
    this.path = String(headers[':path'] ?? '/');
    this.authority = String(headers[':authority'] ?? headers['host'] ?? '');
    this.scheme = String(headers[':scheme'] ?? (connection.tls ? 'https' : 'http'));
    this.headers = fromH2Headers(headers);
    // :authority is the request's host: a Host header the client added cannot say otherwise
    // (policies read `host`), and HTTP/1.1 upstreams get it as Host.
    if (this.authority !== '') this.headers.set('host', this.authority);
    this.hasRequestBody = !h2.endAfterHeaders;
    this.#requestComplete = !this.hasRequestBody;
    this.info = new StreamInfo(connection);
    this.info.request = this;
    h2.on('data', (chunk: Buffer) => this.#onRequestData(chunk));
    h2.on('trailers', (t: IncomingHttpHeaders) => (this.#requestTrailers = fromH2Headers(t)));
    h2.on('end', () => this.#onRequestEnd());
    h2.on('drain', () => this.onWritable?.());
    h2.on('wantTrailers', () => this.#sendTrailers());
    h2.on('error', () => undefined); // 'close' follows
    h2.on('close', () => this.#onClose());
    // Until a sink attaches, body bytes are held (bounded by the stream's flow-control window).
    if (this.hasRequestBody) h2.pause();
    h2.setTimeout(STREAM_IDLE_TIMEOUT_MS, () => this.#abort());
  }

  #sendTrailers(): void {
    try {
      this.#h2.sendTrailers(this.#responseTrailers === null ? {} : toH2Headers(this.#responseTrailers, {}));
    } catch {
      // Trailers HTTP/2 cannot carry: the stream ends in error rather than the process.
      this.#h2.close(constants.NGHTTP2_INTERNAL_ERROR);
    }
  }

  get responseStarted(): boolean {
    return this.#responseStarted;
  }

  // === request body ===

  #onRequestData(chunk: Buffer): void {
    this.info.bytesReceived += chunk.length;
    if (this.#sink !== null && this.#held === null) this.#sink.onData(chunk);
    else (this.#held ??= []).push(chunk);
  }

  #onRequestEnd(): void {
    this.#requestComplete = true;
    if (this.#sink !== null && this.#held === null) this.#sink.onEnd(this.#requestTrailers);
  }

  setBodySink(sink: BodySink): void {
    this.#sink = sink;
    const held = this.#held;
    this.#held = null;
    if (held !== null) for (const c of held) sink.onData(c);
    if (this.#requestComplete && this.hasRequestBody) sink.onEnd(this.#requestTrailers);
    else if (this.hasRequestBody) this.#h2.resume();
  }

  pauseRequestBody(): void {
    this.#h2.pause();
  }

  resumeRequestBody(): void {
    if (this.#sink !== null) this.#h2.resume();
  }

  // === response ===

  sendHead(status: number, headers: HeaderMap, endStream: boolean): void {
    if (this.#done || this.#responseStarted || this.#h2.destroyed) return;
    this.#responseStarted = true;
    this.info.responseCode = status;
    this.onResponseHeaders?.(headers);
    this.info.responseHeaders = headers;
    const bodyless = this.method === 'HEAD' || status === 204 || status === 304;
    try {
      this.#h2.respond(toH2Headers(headers, { ':status': status }), { endStream: endStream || bodyless, waitForTrailers: !(endStream || bodyless) });
    } catch {
      // Headers HTTP/2 cannot carry (invalid values): the stream cannot be answered, and
      // whoever produces the response must stop.
      this.#abort();
      return;
    }
    if (endStream || bodyless) this.#finish();
  }

  sendData(chunk: Buffer): boolean {
    if (this.#done || chunk.length === 0) return true;
    this.info.bytesSent += chunk.length;
    return this.#h2.write(chunk);
  }

  sendEnd(trailers: HeaderMap | null): void {
    if (this.#done) return;
    this.#responseTrailers = trailers;
    this.info.responseTrailers = trailers;
    this.#h2.end();
    this.#finish();
  }

  sendLocalReply(status: number, body: string | Buffer, options: LocalReplyOptions): void {
    if (this.#done || this.#responseStarted) return;
    this.info.responseCodeDetails = options.details;
    if (options.flag !== undefined) this.info.setFlag(options.flag);
    const reply = buildLocalReply(this.headers, status, body, options, this.info.connection.serverHeader);
    this.sendHead(reply.status, reply.headers, reply.body.length === 0);
    if (reply.body.length > 0) {
      this.sendData(reply.body);
      this.sendEnd(null);
    }
  }

  beginBatch(): void {}

  endBatch(): void {}

  reset(): void {
    if (this.#done) return;
    this.#done = true;
    this.info.endMs = performance.now();
    this.#h2.close(constants.NGHTTP2_INTERNAL_ERROR);
    this.#onDone?.(this.info);
  }

  acceptUpgrade(): never {
    throw new Error('HTTP/2 streams are never upgraded');
  }

  #finish(): void {
    if (this.#done) return;
    this.#done = true;
    this.info.endMs = performance.now();
    this.onAbort = null;
    // The response is complete but the request is not: RST_STREAM(NO_ERROR) once the response
    // is flushed tells the client to stop sending (RFC 9113 §8.1), as Envoy does.
    if (!this.#requestComplete) {
      const h2 = this.#h2;
      const rst = (): void => void (h2.closed || h2.close(constants.NGHTTP2_NO_ERROR));
      if (h2.writableFinished) setImmediate(rst);
      else h2.once('finish', () => setImmediate(rst));
    }
    this.#onDone?.(this.info);
  }

  /** The stream closed: if the response had not ended, the client went away (or reset it). */
  #onClose(): void {
    this.#abort();
  }

  /** Ends the exchange before its response did: the producer stops, the stream is reset. */
  #abort(): void {
    if (this.#done) return;
    this.#done = true;
    this.info.setFlag(ResponseFlag.DownstreamConnectionTermination);
    this.info.endMs = performance.now();
    if (!this.#h2.closed) this.#h2.close(constants.NGHTTP2_INTERNAL_ERROR);
    const onAbort = this.onAbort;
    this.onAbort = null;
    onAbort?.();
    this.#onDone?.(this.info);
  }
}

/** The HTTP/2 sessions of one listener. */
export class H2Connections {
  readonly #server: Http2Server;
  readonly #sessions = new Map<Http2Session, DownstreamConnectionInfo>();
  /** The connection being adopted: its session is created synchronously by `adopt`. */
  #adopting: DownstreamConnectionInfo | null = null;
  #closing = false;

  constructor(handler: H2StreamHandler, options: H2ServerOptions) {
    this.#server = createServer({
      maxHeaderListPairs: 128,
      settings: { maxHeaderListSize: MAX_HEADER_LIST, maxConcurrentStreams: 2 ** 31 - 1 },
    });
    this.#server.on('session', (session: Http2Session) => {
      const info = this.#adopting;
      this.#adopting = null;
      if (info === null) {
        session.destroy();
        return;
      }
      this.#sessions.set(session, info);
      session.on('close', () => this.#sessions.delete(session));
      session.on('error', () => undefined);
      // Envoy's connection idle timeout: a session without traffic this long is closed.
      session.setTimeout(options.idleTimeoutMs, () => session.close());
      if (this.#closing) session.close();
    });
    this.#server.on('stream', (h2: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
      // First, so a stream that failed before it got here cannot throw an unheard 'error'.
      h2.on('error', () => undefined);
      if (h2.destroyed) return;
      const info = this.#sessions.get(h2.session as Http2Session);
      if (info === undefined) {
        h2.close(constants.NGHTTP2_REFUSED_STREAM);
        return;
      }
      handler.handle(new H2ServerStream(h2, headers, info, options.onRequestDone));
    });
  }

  get size(): number {
    return this.#sessions.size;
  }

  /**
   * Serves HTTP/2 on `socket`, whose first bytes (`initial`, the connection preface) were
   * already read from it; or on a stream that yields everything itself (`initial` null).
   */
  adopt(socket: Socket | Duplex, initial: Buffer | null, connection: DownstreamConnectionInfo): void {
    let transport: Duplex = socket;
    if (!(socket instanceof Socket)) {
      // A stream that already yields everything the session must read (an h2c upgrade).
    } else if (socket instanceof TLSSocket) {
      // A session takes a TLS socket's handle, which never sees bytes put back on the JS side
      // (and may sit on a JS stream itself): it gets a plain stream over the socket instead.
      transport = replayStream(socket, initial);
    } else {
      // Paused, so the bytes put back wait for the session instead of flowing to no listener;
      // the session reads them before its socket's handle.
      socket.pause();
      if (initial !== null && initial.length > 0) socket.unshift(initial);
    }
    this.#adopting = connection;
    this.#server.emit('connection', transport);
    this.#adopting = null;
  }

  /** GOAWAY on every session: open streams finish (graceful) or are cut (`force`). */
  closeAll(force: boolean): void {
    this.#closing = true;
    for (const s of this.#sessions.keys()) {
      if (force) s.destroy();
      else s.close();
    }
  }
}
