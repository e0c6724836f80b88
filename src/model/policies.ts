/**
 * Per-route traffic policies (Envoy route fields and per-filter configs): retries, fault
 * injection, mirroring, CORS and local rate limiting.
 */
import type { StringMatch } from './string-match.js';

/** Envoy RetryPolicy as Istio builds it (pilot retry.go). */
export interface RetryPolicy {
  /** Retries after the first attempt. */
  readonly numRetries: number;
  /** Envoy `retry_on` condition names (x-envoy-retry-on and x-envoy-retry-grpc-on). */
  readonly retryOn: readonly string[];
  /** Statuses that `retriable-status-codes` retries. */
  readonly retriableStatusCodes: readonly number[];
  /** Per-attempt timeout; undefined means the route timeout alone. */
  readonly perTryTimeoutMs?: number;
  /** Fully jittered exponential backoff: retry N waits up to (2^N − 1) × base, capped at max. */
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
  /** Retry on a host not tried yet (retry_host_predicate previous_hosts), up to this many picks. */
  readonly avoidPreviousHosts: boolean;
  readonly hostSelectionRetryMaxAttempts: number;
}

/** Envoy HTTPFault (Istio HTTPFaultInjection). Percentages are 0–100; absent means none. */
export interface FaultPolicy {
  readonly delay?: { readonly fixedDelayMs: number; readonly percentage: number };
  readonly abort?: {
    /** An HTTP status, or a gRPC status code (answered as HTTP 200 with grpc-status). */
    readonly httpStatus?: number;
    readonly grpcStatus?: number;
    readonly percentage: number;
  };
}

/** Envoy RequestMirrorPolicy: a copy of the request to `cluster`, fire-and-forget. */
export interface MirrorPolicy {
  readonly cluster: string;
  /** 0–100. */
  readonly percentage: number;
}

/** Envoy CorsPolicy (Istio CorsPolicy). */
export interface CorsPolicy {
  readonly allowOrigins: readonly StringMatch[];
  readonly allowMethods: string;
  readonly allowHeaders: string;
  readonly exposeHeaders: string;
  /** Seconds, as Access-Control-Max-Age gives it; '' when unset. */
  readonly maxAge: string;
  readonly allowCredentials: boolean;
  /** Preflights from origins that are not allowed go upstream (true) or are answered 200 without CORS headers. */
  readonly forwardNotMatchingPreflights: boolean;
}

/** A token bucket (Envoy local_ratelimit). Buckets start full. */
export interface LocalRateLimit {
  /** Identifies the bucket: routes with the same key share one (a skiff rate-limit rule). */
  readonly key: string;
  readonly maxTokens: number;
  readonly tokensPerFill: number;
  readonly fillIntervalMs: number;
}
