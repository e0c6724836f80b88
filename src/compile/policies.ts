/**
 * Compiled per-route policies: retry conditions as flags, fault and mirror percentages, CORS
 * origin matchers, and the token buckets of local rate limits (one per rule, shared by every
 * route the rule covers, created once per snapshot).
 */
import type { CorsPolicy, FaultPolicy, LocalRateLimit, MirrorPolicy, RetryPolicy } from '../model/policies.js';
import { compileStringMatch, type StringPredicate } from './string-matcher.js';

/** Envoy retry_on conditions, as flags read on every attempt outcome. */
export interface CompiledRetryPolicy {
  readonly numRetries: number;
  readonly on5xx: boolean;
  readonly onGatewayError: boolean;
  readonly onReset: boolean;
  readonly onResetBeforeRequest: boolean;
  readonly onConnectFailure: boolean;
  readonly onRetriable4xx: boolean;
  readonly onRefusedStream: boolean;
  readonly onEnvoyRateLimited: boolean;
  readonly onRetriableStatusCodes: boolean;
  readonly retriableStatusCodes: ReadonlySet<number>;
  /** gRPC status codes retried when the response headers carry them (cancelled=1, …). */
  readonly grpcStatuses: ReadonlySet<number>;
  readonly perTryTimeoutMs: number;
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
  readonly avoidPreviousHosts: boolean;
  readonly hostSelectionRetryMaxAttempts: number;
}

const GRPC_RETRY_ON: Readonly<Record<string, number>> = {
  cancelled: 1,
  'deadline-exceeded': 4,
  'resource-exhausted': 8,
  internal: 13,
  unavailable: 14,
};

/** Routes that share a policy object (Istio's default) share its compiled form. */
const compiledRetryPolicies = new WeakMap<RetryPolicy, CompiledRetryPolicy>();

export function compileRetryPolicy(p: RetryPolicy): CompiledRetryPolicy {
  let compiled = compiledRetryPolicies.get(p);
  if (compiled === undefined) compiledRetryPolicies.set(p, (compiled = buildRetryPolicy(p)));
  return compiled;
}

function buildRetryPolicy(p: RetryPolicy): CompiledRetryPolicy {
  const on = new Set(p.retryOn);
  return {
    numRetries: p.numRetries,
    on5xx: on.has('5xx'),
    onGatewayError: on.has('gateway-error'),
    onReset: on.has('reset'),
    onResetBeforeRequest: on.has('reset-before-request'),
    onConnectFailure: on.has('connect-failure'),
    onRetriable4xx: on.has('retriable-4xx'),
    onRefusedStream: on.has('refused-stream'),
    onEnvoyRateLimited: on.has('envoy-ratelimited'),
    onRetriableStatusCodes: on.has('retriable-status-codes'),
    retriableStatusCodes: new Set(p.retriableStatusCodes),
    grpcStatuses: new Set(p.retryOn.filter((n) => n in GRPC_RETRY_ON).map((n) => GRPC_RETRY_ON[n]!)),
    perTryTimeoutMs: p.perTryTimeoutMs ?? 0,
    backoffBaseMs: p.backoffBaseMs,
    backoffMaxMs: p.backoffMaxMs,
    avoidPreviousHosts: p.avoidPreviousHosts,
    hostSelectionRetryMaxAttempts: p.hostSelectionRetryMaxAttempts,
  };
}

/** True with probability `percentage` / 100. */
export function chance(percentage: number): boolean {
  return percentage >= 100 || (percentage > 0 && Math.random() * 100 < percentage);
}

export type CompiledFault = FaultPolicy;

export type CompiledMirror = MirrorPolicy;

/** A CORS policy with its origin matchers compiled. */
export interface CompiledCors extends Omit<CorsPolicy, 'allowOrigins'> {
  readonly allowsOrigin: (origin: string) => boolean;
}

export function compileCors(c: CorsPolicy): CompiledCors {
  const { allowOrigins, ...rest } = c;
  const matchers: StringPredicate[] = allowOrigins.map(compileStringMatch);
  // Envoy: an origin matcher that accepts "*" allows every origin.
  return { ...rest, allowsOrigin: (origin) => matchers.some((m) => m('*') || m(origin)) };
}

/**
 * A token bucket (Envoy local_ratelimit): starts full; every `fillIntervalMs` adds
 * `tokensPerFill`, never above `maxTokens`. Refilled lazily when a token is asked for, so an
 * idle bucket costs nothing.
 */
export class TokenBucket {
  readonly #max: number;
  readonly #perFill: number;
  readonly #intervalMs: number;
  #tokens: number;
  #lastFill: number;

  constructor(limit: LocalRateLimit, now = performance.now()) {
    this.#max = limit.maxTokens;
    this.#perFill = limit.tokensPerFill;
    this.#intervalMs = limit.fillIntervalMs;
    this.#tokens = limit.maxTokens;
    this.#lastFill = now;
  }

  /** Takes one token; false when the bucket is empty. */
  tryConsume(now = performance.now()): boolean {
    const fills = Math.floor((now - this.#lastFill) / this.#intervalMs);
    if (fills > 0) {
      this.#tokens = Math.min(this.#max, this.#tokens + fills * this.#perFill);
      this.#lastFill += fills * this.#intervalMs;
    }
    if (this.#tokens < 1) return false;
    this.#tokens--;
    return true;
  }
}
