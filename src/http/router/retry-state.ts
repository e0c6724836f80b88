/**
 * Retry decisions for one request (Envoy RetryStateImpl): whether an attempt's outcome is
 * retriable under the route's policy, whether the request still has retries left and the
 * cluster a free retry slot, and how long to back off.
 *
 * Invariant: a retry slot of the cluster (max retries breaker) is held from the moment a retry
 * is granted until the outcome of that retried attempt is known (`release`), so at most
 * maxRetries retries run at once across the cluster and a retry storm cannot build up.
 */
import type { CompiledRetryPolicy } from '../../compile/policies.js';
import type { ResourceManager } from '../../upstream/resource-manager.js';
import type { HeaderMap } from '../headers.js';

/** How an attempt failed before a response head arrived. */
export type AttemptFailure = 'connect-failure' | 'reset' | 'refused-stream' | 'per-try-timeout' | 'overflow';

/** The verdict on an outcome that the policy would retry. */
export type RetryVerdict = 'retry' | 'limit-exceeded' | 'overflow';

/** Would the policy retry a response with this status and headers? */
export function retriableResponse(p: CompiledRetryPolicy, status: number, headers: HeaderMap): boolean {
  // A rate-limited response is retried only under envoy-ratelimited.
  if (headers.has('x-envoy-ratelimited')) return p.onEnvoyRateLimited;
  // A 503 that says the upstream is overloaded is never retried.
  if (status === 503 && headers.has('x-envoy-overloaded')) return false;
  if (p.on5xx && status >= 500) return true;
  if (p.onGatewayError && (status === 502 || status === 503 || status === 504)) return true;
  if (p.onRetriable4xx && status === 409) return true;
  if (p.onRetriableStatusCodes && p.retriableStatusCodes.has(status)) return true;
  if (p.grpcStatuses.size > 0) {
    const grpc = headers.get('grpc-status');
    if (grpc !== undefined && p.grpcStatuses.has(Number(grpc))) return true;
  }
  return false;
}

/** Would the policy retry this failure? `requestStarted`: bytes of the request reached the upstream. */
export function retriableFailure(p: CompiledRetryPolicy, failure: AttemptFailure, requestStarted: boolean): boolean {
  if (failure === 'overflow') return false;
  if (failure === 'connect-failure' && p.onConnectFailure) return true;
  // An HTTP/2 stream the upstream refused (REFUSED_STREAM) never reached the application.
  if (failure === 'refused-stream' && p.onRefusedStream) return true;
  if (p.onResetBeforeRequest && !requestStarted) return true;
  return p.on5xx || p.onGatewayError || p.onReset;
}

/** The retries granted to one request; created when its first retriable outcome comes. */
export class RetryState {
  readonly #policy: CompiledRetryPolicy;
  readonly #resources: ResourceManager;
  #remaining: number;
  #holdsSlot = false;
  /** Retries granted so far. */
  retries = 0;

  constructor(policy: CompiledRetryPolicy, resources: ResourceManager) {
    this.#policy = policy;
    this.#resources = resources;
    this.#remaining = policy.numRetries;
  }

  /** Called for a retriable outcome: grants a retry (taking a cluster retry slot) or says why not. */
  grant(): RetryVerdict {
    this.release();
    if (this.#remaining === 0) return 'limit-exceeded';
    this.#remaining--;
    if (!this.#resources.tryStartRetry()) return 'overflow';
    this.#holdsSlot = true;
    this.retries++;
    return 'retry';
  }

  /** The outcome of the retried attempt is known (or the request ended): frees the retry slot. */
  release(): void {
    if (!this.#holdsSlot) return;
    this.#holdsSlot = false;
    this.#resources.endRetry();
  }

  /** Fully jittered exponential backoff before retry N (1-based): uniform in [0, min((2^N − 1) × base, max)). */
  backoffMs(): number {
    const { backoffBaseMs: base, backoffMaxMs: max } = this.#policy;
    const ceiling = Math.min((2 ** this.retries - 1) * base, max);
    return Math.floor(Math.random() * ceiling);
  }
}
