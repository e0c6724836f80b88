/**
 * One attempt of a request on one upstream host over HTTP/2: a stream on the host's session,
 * whatever protocol the client used. The request head is translated (Host becomes :authority,
 * connection-specific headers are dropped), the body is streamed under the stream's flow
 * control, and the response, trailers included, is relayed downstream as it arrives.
 *
 * The same invariants as the HTTP/1.1 attempt hold: `host.activeRequests` is counted once each
 * way, every outcome reaches the owner once, a failure before the response head goes to the
 * owner (retry or local reply) and one after it resets the downstream stream. A stream the
 * upstream refused (REFUSED_STREAM) is the retryable `refused-stream` failure.
 */
import { constants, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders } from 'node:http2';
import { ResponseFlag } from '../../core/response-flags.js';
import type { Host } from '../../upstream/host.js';
import type { ConnectFailure } from '../../upstream/pool/connection-pool.js';
import { OVERFLOW } from '../../upstream/pool/connection-pool.js';
import type { H2Waiter } from '../../upstream/pool/h2-pool.js';
import type { HeaderMap } from '../headers.js';
import type { DownstreamStream } from '../stream.js';
import { fromH2Headers, toH2Headers } from '../codec/h2/headers.js';
import { PEER_METADATA, PEER_METADATA_ID, prepareResponseHeaders, type PeerMetadataHeaders } from './headers.js';
import type { AttemptFailure } from './retry-state.js';
import { CONNECTION_TERMINATION, OVERFLOW_RESET, PER_TRY_TIMEOUT, connectFailure, type UpstreamReset } from './upstream-failure.js';
import type { Attempt, AttemptOwner, ResponseDecoration } from './upstream-request.js';

export class H2UpstreamRequest implements Attempt {
  readonly host: Host;
  readonly #owner: AttemptOwner;
  readonly #stream: DownstreamStream;
  readonly #decoration: ResponseDecoration;
  readonly #peerMetadata: PeerMetadataHeaders | null;
  #req: ClientHttp2Stream | null = null;
  #startMs = 0;
  #started = false;
  #committed = false;
  #finished = false;
  #trailers: HeaderMap | null = null;
  #perTryMs = 0;
  #perTryTimer: NodeJS.Timeout | null = null;
  #awaitingDrain = false;
  /** The session the pool granted a stream on: the stream is given back in #finish. */
  #session: ClientHttp2Session | null = null;
  /** Waiting for room on a session. */
  #waiter: H2Waiter | null = null;
  #bodyEnded = false;
  #requestTrailers: HeaderMap | null = null;

  constructor(owner: AttemptOwner, stream: DownstreamStream, host: Host, decoration: ResponseDecoration, peerMetadata: PeerMetadataHeaders | null = null) {
    this.#owner = owner;
    this.#stream = stream;
    this.host = host;
    this.#decoration = decoration;
    // Istio's metadata exchange goes to mesh peers only: decided per attempt, by the host.
    this.#peerMetadata = host.istioMtls ? peerMetadata : null;
  }

  get requestStarted(): boolean {
    return this.#started;
  }

  get connected(): boolean {
    return this.#req !== null;
  }

  get awaitingDrain(): boolean {
    return this.#awaitingDrain;
  }

  start(): void {
    this.host.activeRequests++;
    this.#stream.info.upstreamHost = this.host.key;
    this.#startMs = performance.now();
    this.#waiter = this.host.h2!.acquire((err, session) => this.#acquired(err, session));
  }

  #acquired(err: ConnectFailure | null, session: ClientHttp2Session | null): void {
    this.#waiter = null;
    if (this.#finished) {
      // Ended while the session was coming (route timeout, client gone): give the slot back.
      if (session !== null) this.host.h2!.release(session);
      return;
    }
    if (err !== null) {
      if (err === OVERFLOW) {
        this.#fail('overflow', OVERFLOW_RESET);
        return;
      }
      this.host.outlier?.putConnectFailure();
      this.#fail('connect-failure', connectFailure(err.reason, err.transport));
      return;
    }
    this.#session = session;
    const stream = this.#stream;
    const facts = this.host.h2!.factsOf(session!);
    if (facts !== undefined) {
      stream.info.upstreamPeerIdentity = facts.identity;
      stream.info.upstreamLocalAddress = facts.localAddress;
    }
    const pseudo = { ':method': stream.method, ':path': stream.path, ':authority': stream.authority, ':scheme': this.host.pool.target.tls !== undefined ? 'https' : 'http' };
    let req: ClientHttp2Stream;
    try {
      const h2Headers = toH2Headers(stream.headers, pseudo, true);
      if (this.#peerMetadata !== null) {
        h2Headers[PEER_METADATA_ID] = this.#peerMetadata.id;
        h2Headers[PEER_METADATA] = this.#peerMetadata.value;
      }
      req = session!.request(h2Headers, { endStream: !stream.hasRequestBody, waitForTrailers: stream.hasRequestBody });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // The session went away between acquire and request (GOAWAY): as if the stream was refused.
      if (code === 'ERR_HTTP2_GOAWAY_SESSION' || code === 'ERR_HTTP2_INVALID_SESSION') this.#fail('refused-stream', CONNECTION_TERMINATION);
      else this.#fail('reset', CONNECTION_TERMINATION);
      return;
    }
    req.on('wantTrailers', () => {
      try {
        req.sendTrailers(this.#requestTrailers === null ? {} : toH2Headers(this.#requestTrailers, {}));
      } catch {
        req.close(constants.NGHTTP2_INTERNAL_ERROR);
      }
    });
    this.#req = req;
    this.#started = true;
    this.#startPerTryTimer();
    req.on('response', (headers: IncomingHttpHeaders, flags: number) => this.#onResponse(headers, flags));
    req.on('data', (chunk: Buffer) => this.#onData(chunk));
    req.on('trailers', (t: IncomingHttpHeaders) => (this.#trailers = fromH2Headers(t)));
    req.on('end', () => this.#onEnd());
    req.on('error', () => undefined); // 'close' follows
    req.on('close', () => this.#onClose(req));
    if (this.#stream.hasRequestBody) this.#owner.onAttemptConnected(this);
  }

  // === request body ===

  writeBody(chunk: Buffer): void {
    const req = this.#req;
    if (req === null || this.#finished) return;
    if (!req.write(chunk) && !this.#awaitingDrain) {
      this.#awaitingDrain = true;
      this.#stream.pauseRequestBody();
      req.once('drain', () => {
        this.#awaitingDrain = false;
        this.#stream.resumeRequestBody();
      });
    }
  }

  endBody(trailers: HeaderMap | null): void {
    if (this.#req === null || this.#finished) return;
    this.#requestTrailers = trailers;
    this.#bodyEnded = true;
    this.#req.end();
  }

  // === response ===

  #onResponse(headers: IncomingHttpHeaders, flags: number): void {
    if (this.#finished) return;
    const status = Number(headers[':status']);
    // Informational heads (100-continue) are not relayed.
    if (status < 200) return;
    const map = fromH2Headers(headers);
    this.host.outlier?.putStatus(status);
    if (!this.#owner.onAttemptHeaders(this, { status, headers: map })) {
      this.abort();
      return;
    }
    this.#committed = true;
    this.#stopPerTryTimer();
    prepareResponseHeaders(map, performance.now() - this.#startMs, this.#stream.info);
    const d = this.#decoration;
    d.clusterResponseHeaders?.(map, this.#stream.info);
    d.routeResponseHeaders?.(map, this.#stream.info);
    if (d.setCookie !== undefined) map.append('set-cookie', d.setCookie);
    // A response that ends with its head (gRPC trailers-only) is sent whole.
    const endStream = (flags & constants.NGHTTP2_FLAG_END_STREAM) !== 0;
    this.#stream.sendHead(status, map, endStream);
    if (endStream) this.#done();
  }

  #onData(chunk: Buffer): void {
    if (!this.#committed || this.#finished) return;
    if (this.#stream.sendData(chunk)) return;
    // The client reads slower than the upstream sends: stop reading, so the window closes.
    const req = this.#req!;
    req.pause();
    this.#stream.onWritable = () => {
      this.#stream.onWritable = null;
      req.resume();
    };
  }

  #onEnd(): void {
    if (!this.#committed || this.#finished) return;
    this.#stream.sendEnd(this.#trailers);
    this.#done();
  }

  #onClose(req: ClientHttp2Stream): void {
    if (this.#finished) return;
    if (this.#committed) {
      // Closed before the response ended.
      this.#stream.info.setFlag(ResponseFlag.UpstreamConnectionTermination);
      this.#finish();
      this.#stream.reset();
      this.#owner.onAttemptDone(this);
      return;
    }
    if (req.rstCode === constants.NGHTTP2_REFUSED_STREAM) {
      this.#fail('refused-stream', CONNECTION_TERMINATION);
      return;
    }
    this.host.outlier?.putReset();
    this.#fail('reset', CONNECTION_TERMINATION);
  }

  // === timers ===

  armPerTryTimer(ms: number): void {
    this.#perTryMs = ms;
    if (this.#req !== null) this.#startPerTryTimer();
  }

  #startPerTryTimer(): void {
    if (this.#perTryMs > 0 && this.#perTryTimer === null && !this.#finished && !this.#committed) {
      this.#perTryTimer = setTimeout(() => {
        this.#perTryTimer = null;
        if (this.#finished || this.#committed) return;
        this.host.outlier?.putTimeout();
        this.#fail('per-try-timeout', PER_TRY_TIMEOUT);
      }, this.#perTryMs);
    }
  }

  #stopPerTryTimer(): void {
    if (this.#perTryTimer !== null) {
      clearTimeout(this.#perTryTimer);
      this.#perTryTimer = null;
    }
  }

  // === endings ===

  abort(): void {
    if (this.#finished) return;
    this.#cancel();
    this.#finish();
  }

  timeOut(): void {
    if (this.#finished) return;
    if (this.#committed) {
      this.#stream.info.setFlag(ResponseFlag.UpstreamRequestTimeout);
      this.#cancel();
      this.#finish();
      this.#stream.reset();
      this.#owner.onAttemptDone(this);
      return;
    }
    if (this.#started) this.host.outlier?.putTimeout();
    this.abort();
  }

  #fail(failure: AttemptFailure, reset: UpstreamReset): void {
    if (this.#finished) return;
    this.#cancel();
    this.#finish();
    this.#owner.onAttemptFailure(this, failure, reset);
  }

  #done(): void {
    // The response ended before the request body did: Envoy resets the upstream stream.
    if (!this.#bodyEnded && this.#stream.hasRequestBody) this.#cancel();
    this.#finish();
    this.#owner.onAttemptDone(this);
  }

  /** RST_STREAM(CANCEL) on a stream still open. */
  #cancel(): void {
    const req = this.#req;
    if (req !== null && !req.closed && !req.destroyed) req.close(constants.NGHTTP2_CANCEL);
  }

  #finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#stopPerTryTimer();
    this.host.activeRequests--;
    // Still waiting for room on a session: leave the queue.
    this.#waiter?.cancel();
    this.#waiter = null;
    if (this.#session !== null) this.host.h2!.release(this.#session);
    if (this.#committed) this.#stream.onWritable = null;
  }
}
