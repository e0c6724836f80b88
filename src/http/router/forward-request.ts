/**
 * One forwarded request across its attempts (the per-request half of Envoy's router filter):
 * the route timeout, retries with backoff on other hosts, request body buffering for replay,
 * and mirrors.
 *
 * - The route timeout runs from the end of the downstream request and covers every attempt and
 *   backoff; on expiry: 504 UT `upstream request timeout` (or a reset once a response started).
 * - The request body is kept for replay up to BODY_REPLAY_LIMIT; past it retries stop (and
 *   mirrors of it are dropped), as Envoy's buffer limit does.
 * - Once a response head has gone downstream nothing is retried.
 * - An outcome the policy would retry but cannot (retries used up, or the cluster's retry
 *   breaker full) is answered as it is, flagged URX or UO.
 */
import type { CompiledRetryPolicy } from '../../compile/policies.js';
import type { GrpcTimeoutPolicy } from '../../model/route.js';
import type { Cluster, Destination } from '../../upstream/cluster.js';
import type { Host } from '../../upstream/host.js';
import type { PickContext } from '../../upstream/lb/index.js';
import { ResponseFlag } from '../../core/response-flags.js';
import type { HeaderMap } from '../headers.js';
import type { BodySink, DownstreamStream } from '../stream.js';
import { mutatedHeaders, type PeerMetadataHeaders } from './headers.js';
import { injectTrace } from '../trace-context.js';
import { sendShadow } from './mirror.js';
import { usesHttp2 } from './upstream-protocol.js';
import { routeTimeoutFor } from './grpc-timeout.js';
import { RetryState, retriableFailure, retriableResponse, type AttemptFailure } from './retry-state.js';
import { replyNoHealthyUpstream, replyTimeout, replyUpstreamReset, type UpstreamReset } from './upstream-failure.js';
import { H2UpstreamRequest } from './h2-upstream-request.js';
import { UpstreamRequest, type Attempt, type AttemptOwner, type AttemptResponse, type ResponseDecoration } from './upstream-request.js';

/** Request bodies up to this size are kept for retries and mirrors (Envoy's default buffer limit). */
export const BODY_REPLAY_LIMIT = 64 * 1024;

export interface ForwardOptions {
  readonly cluster: Cluster;
  readonly pickContext: PickContext;
  readonly destination: Destination;
  /** Route timeout; 0 disables it. */
  readonly timeoutMs: number;
  /** How `grpc-timeout` bounds the request; undefined: Istio's reading. */
  readonly grpcTimeout?: GrpcTimeoutPolicy | undefined;
  /** Whether attempts carry x-envoy-attempt-count (the first one's is set by the router). */
  readonly requestAttemptCount?: boolean;
  readonly retryPolicy: CompiledRetryPolicy | null;
  readonly decoration: ResponseDecoration;
  /** Hosts chosen for the request's mirrors (after their percentages were drawn). */
  readonly mirrorHosts: readonly Host[];
  /** This workload's metadata exchange headers, for attempts to Istio mTLS hosts. */
  readonly peerMetadata: PeerMetadataHeaders | null;
}

export class ForwardRequest implements AttemptOwner, BodySink {
  readonly #stream: DownstreamStream;
  readonly #options: ForwardOptions;
  readonly #policy: CompiledRetryPolicy | null;
  /** Created at the first retriable outcome (most requests never have one). */
  #retry: RetryState | null = null;
  #firstHost: Host | null = null;
  #attempt: Attempt | null = null;
  #attempts = 0;
  /** Hosts tried so far (only tracked when retries avoid them). */
  #tried: Host[] | null = null;
  /** The request body so far, for replay; null when not kept (none, too large, or not needed). */
  #body: Buffer[] | null = null;
  #bodyBytes = 0;
  #requestComplete: boolean;
  #trailers: HeaderMap | null = null;
  #sinkSet = false;
  /** The downstream body is paused here, waiting for the next attempt's connection. */
  #holding = false;
  #committed = false;
  #finished = false;
  #timer: NodeJS.Timeout | null = null;
  #backoffTimer: NodeJS.Timeout | null = null;
  /** Shadows waiting for the end of the request body. */
  #shadowsWaiting: { headers: HeaderMap; hosts: readonly Host[] } | null = null;

  constructor(stream: DownstreamStream, options: ForwardOptions) {
    this.#stream = stream;
    this.#options = options;
    this.#policy = options.retryPolicy;
    this.#requestComplete = !stream.hasRequestBody;
    if (stream.hasRequestBody && (this.#policy !== null || options.mirrorHosts.length > 0)) this.#body = [];
  }

  start(first: Host): void {
    const stream = this.#stream;
    stream.onAbort = () => this.#onDownstreamAbort();
    // An upgrade is a connection, not a request to copy: it is not mirrored.
    if (this.#options.mirrorHosts.length > 0 && stream.upgrade === null) this.#mirror();
    this.#startAttempt(first);
    if (this.#requestComplete) this.#startTimer();
  }

  #startAttempt(host: Host): void {
    this.#attempts++;
    if (this.#firstHost === null) this.#firstHost = host;
    else this.#tried?.push(host);
    const attempt: Attempt = usesHttp2(host, this.#stream)
      ? new H2UpstreamRequest(this, this.#stream, host, this.#options.decoration, this.#options.peerMetadata)
      : new UpstreamRequest(this, this.#stream, host, this.#options.decoration, this.#options.peerMetadata);
    this.#attempt = attempt;
    attempt.start();
    if (this.#requestComplete && this.#policy !== null) attempt.armPerTryTimer(this.#policy.perTryTimeoutMs);
  }

  /** Retries are possible while the whole body so far is kept (or there is none). */
  get #canRetry(): boolean {
    return this.#policy !== null && (this.#body !== null || !this.#stream.hasRequestBody);
  }

  // === request body (BodySink, once the first attempt is connected) ===

  onAttemptConnected(attempt: Attempt): void {
    if (!this.#sinkSet) {
      // Delivers the body received so far through onData, to this attempt.
      this.#sinkSet = true;
      this.#stream.setBodySink(this);
      return;
    }
    for (const chunk of this.#body ?? []) attempt.writeBody(chunk);
    if (this.#requestComplete) attempt.endBody(this.#trailers);
    if (this.#holding) {
      this.#holding = false;
      // A replay that filled the socket keeps the body paused until the attempt's 'drain'.
      if (!attempt.awaitingDrain) this.#stream.resumeRequestBody();
    }
  }

  onData(chunk: Buffer): void {
    const attempt = this.#attempt;
    const connected = attempt !== null && attempt.connected;
    if (this.#body !== null) {
      if (connected && this.#bodyBytes + chunk.length > BODY_REPLAY_LIMIT) {
        // Too large to replay: no more retries or mirrors for this request.
        this.#body = null;
        this.#shadowsWaiting = null;
      } else {
        this.#body.push(chunk);
        this.#bodyBytes += chunk.length;
        if (!connected && this.#bodyBytes > BODY_REPLAY_LIMIT && !this.#holding) {
          this.#holding = true;
          this.#stream.pauseRequestBody();
        }
      }
    }
    if (connected) attempt.writeBody(chunk);
  }

  onEnd(trailers: HeaderMap | null): void {
    this.#requestComplete = true;
    this.#trailers = trailers;
    const attempt = this.#attempt;
    if (attempt !== null && attempt.connected) attempt.endBody(trailers);
    if (attempt !== null && this.#policy !== null) attempt.armPerTryTimer(this.#policy.perTryTimeoutMs);
    const shadows = this.#shadowsWaiting;
    if (shadows !== null) {
      this.#shadowsWaiting = null;
      this.#sendShadows(shadows.headers, shadows.hosts);
    }
    this.#startTimer();
  }

  // === attempt outcomes (AttemptOwner) ===

  onAttemptHeaders(_attempt: Attempt, head: AttemptResponse): boolean {
    if (this.#canRetry && retriableResponse(this.#policy!, head.status, head.headers)) {
      if (this.#retryOrFlag()) return false;
    } else {
      this.#retry?.release();
    }
    this.#committed = true;
    return true;
  }

  onAttemptFailure(attempt: Attempt, failure: AttemptFailure, reset: UpstreamReset): void {
    this.#attempt = null;
    if (this.#finished) return;
    if (this.#canRetry && retriableFailure(this.#policy!, failure, attempt.requestStarted) && this.#retryOrFlag()) return;
    this.#finish();
    if (failure === 'per-try-timeout') replyTimeout(this.#stream, this.#replyHeaders(), 'upstream_per_try_timeout');
    else replyUpstreamReset(this.#stream, reset, this.#replyHeaders(), this.#attempts > 1);
  }

  onAttemptDone(): void {
    this.#attempt = null;
    this.#finish();
  }

  /** Schedules a retry and returns true, or flags why none is possible and returns false. */
  #retryOrFlag(): boolean {
    const policy = this.#policy!;
    const retry = (this.#retry ??= new RetryState(policy, this.#options.cluster.resources));
    if (policy.avoidPreviousHosts) this.#tried ??= [this.#firstHost!];
    const verdict = retry.grant();
    if (verdict === 'retry') {
      this.#attempt = null;
      this.#backoffTimer = setTimeout(() => this.#retryNow(), retry.backoffMs());
      return true;
    }
    this.#stream.info.setFlag(verdict === 'overflow' ? ResponseFlag.UpstreamOverflow : ResponseFlag.UpstreamRetryLimitExceeded);
    return false;
  }

  #retryNow(): void {
    this.#backoffTimer = null;
    if (this.#finished) return;
    const host = this.#pickHost();
    if (host === undefined) {
      this.#finish();
      replyNoHealthyUpstream(this.#stream, this.#replyHeaders());
      return;
    }
    if (this.#options.requestAttemptCount !== false) this.#stream.headers.set('x-envoy-attempt-count', String(this.#attempts + 1));
    this.#startAttempt(host);
  }

  /** A host for a retry: re-picked up to the policy's limit while it is one already tried. */
  #pickHost(): Host | undefined {
    const { cluster, pickContext, destination } = this.#options;
    const tried = this.#tried;
    const tries = tried === null ? 1 : this.#policy!.hostSelectionRetryMaxAttempts;
    let host: Host | undefined;
    for (let i = 0; i < tries; i++) {
      host = cluster.pick(pickContext, destination);
      if (host === undefined || tried === null || !tried.includes(host)) break;
    }
    return host;
  }

  // === mirrors ===

  #mirror(): void {
    const headers = this.#stream.headers.clone();
    // Envoy's shadows are never sampled (trace_sampled: false): they must not add spans.
    const trace = this.#stream.info.trace;
    if (trace !== null && trace.sampled) injectTrace(headers, { ...trace, sampled: false });
    if (this.#requestComplete) this.#sendShadows(headers, this.#options.mirrorHosts);
    else this.#shadowsWaiting = { headers, hosts: this.#options.mirrorHosts };
  }

  #sendShadows(headers: HeaderMap, hosts: readonly Host[]): void {
    const stream = this.#stream;
    for (let i = 0; i < hosts.length; i++) {
      const copy = i === hosts.length - 1 ? headers : headers.clone();
      sendShadow(hosts[i]!, stream.method, stream.path, copy, this.#body, this.#options.timeoutMs, usesHttp2(hosts[i]!, stream));
    }
  }

  // === timeouts and endings ===

  #startTimer(): void {
    const ms = routeTimeoutFor(this.#stream, this.#options.timeoutMs, this.#options.grpcTimeout);
    if (ms > 0 && this.#timer === null && !this.#finished) {
      this.#timer = setTimeout(() => this.#onTimeout(), ms);
    }
  }

  #onTimeout(): void {
    this.#timer = null;
    if (this.#finished) return;
    const attempt = this.#attempt;
    if (this.#committed) {
      // The attempt resets the downstream stream and reports back through onAttemptDone.
      attempt?.timeOut();
      return;
    }
    attempt?.timeOut();
    this.#finish();
    replyTimeout(this.#stream, this.#replyHeaders());
  }

  #onDownstreamAbort(): void {
    if (this.#finished) return;
    this.#attempt?.abort();
    this.#finish();
  }

  /** The route's (and destination's) response header operations, for a local reply. */
  #replyHeaders(): Array<[string, string]> {
    const d = this.#options.decoration;
    return mutatedHeaders(this.#stream.info, d.clusterResponseHeaders, d.routeResponseHeaders);
  }

  #finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#attempt = null;
    if (this.#timer !== null) clearTimeout(this.#timer);
    if (this.#backoffTimer !== null) clearTimeout(this.#backoffTimer);
    this.#timer = this.#backoffTimer = null;
    this.#retry?.release();
    this.#stream.onAbort = null;
  }
}
