/** Compiled resilience policies: token buckets, retry conditions, backoff bounds, origin matching. */
import { describe, expect, it } from 'vitest';
import { compileCors, compileRetryPolicy, TokenBucket } from '../../src/compile/policies.js';
import { HeaderMap } from '../../src/http/headers.js';
import { RetryState, retriableFailure, retriableResponse } from '../../src/http/router/retry-state.js';
import { ResourceManager } from '../../src/upstream/resource-manager.js';

const policy = (retryOn: string[], codes: number[] = [], numRetries = 3) =>
  compileRetryPolicy({
    numRetries,
    retryOn,
    retriableStatusCodes: codes,
    backoffBaseMs: 25,
    backoffMaxMs: 250,
    avoidPreviousHosts: true,
    hostSelectionRetryMaxAttempts: 5,
  });

const limits = (maxRetries: number) => ({ maxConnections: 1, maxPendingRequests: 1, maxRequests: 1, maxRetries });

describe('TokenBucket', () => {
  it('starts full, refills tokensPerFill per whole interval, never above maxTokens', () => {
    const bucket = new TokenBucket({ key: 'k', maxTokens: 2, tokensPerFill: 1, fillIntervalMs: 100 }, 0);
    expect([bucket.tryConsume(0), bucket.tryConsume(0), bucket.tryConsume(0)]).toEqual([true, true, false]);
    expect(bucket.tryConsume(99)).toBe(false);
    expect(bucket.tryConsume(100)).toBe(true);
    expect(bucket.tryConsume(150)).toBe(false);
    // A long idle time refills to the cap only.
    expect([bucket.tryConsume(10_000), bucket.tryConsume(10_000), bucket.tryConsume(10_000)]).toEqual([true, true, false]);
  });
});

describe('retry conditions', () => {
  const none = new HeaderMap();
  it('maps each retryOn name to the statuses Envoy retries', () => {
    expect(retriableResponse(policy(['5xx']), 500, none)).toBe(true);
    expect(retriableResponse(policy(['gateway-error']), 500, none)).toBe(false);
    expect(retriableResponse(policy(['gateway-error']), 504, none)).toBe(true);
    expect(retriableResponse(policy(['retriable-4xx']), 409, none)).toBe(true);
    expect(retriableResponse(policy(['retriable-4xx']), 404, none)).toBe(false);
    expect(retriableResponse(policy(['retriable-status-codes'], [418]), 418, none)).toBe(true);
    // retriable-status-codes retries only the codes listed.
    expect(retriableResponse(policy(['connect-failure', 'retriable-status-codes']), 503, none)).toBe(false);
    expect(retriableResponse(policy(['connect-failure', 'retriable-status-codes'], [503]), 503, none)).toBe(true);
    // A rate-limited response is retried under envoy-ratelimited only, whatever its status.
    const limited = new HeaderMap(['x-envoy-ratelimited'], ['true']);
    expect(retriableResponse(policy(['envoy-ratelimited']), 429, limited)).toBe(true);
    expect(retriableResponse(policy(['5xx']), 503, limited)).toBe(false);
    expect(retriableResponse(policy(['retriable-status-codes'], [429]), 429, limited)).toBe(false);
    const grpc = new HeaderMap(['grpc-status'], ['4']);
    expect(retriableResponse(policy(['deadline-exceeded']), 200, grpc)).toBe(true);
    expect(retriableResponse(policy(['unavailable']), 200, grpc)).toBe(false);
  });

  it('retries failures as Envoy does: connect failures, resets before the request, and resets under 5xx/gateway-error/reset', () => {
    expect(retriableFailure(policy(['connect-failure']), 'connect-failure', false)).toBe(true);
    expect(retriableFailure(policy(['connect-failure']), 'reset', true)).toBe(false);
    expect(retriableFailure(policy(['reset-before-request']), 'reset', false)).toBe(true);
    expect(retriableFailure(policy(['reset-before-request']), 'reset', true)).toBe(false);
    expect(retriableFailure(policy(['gateway-error']), 'per-try-timeout', true)).toBe(true);
    expect(retriableFailure(policy(['5xx', 'reset', 'connect-failure']), 'overflow', false)).toBe(false);
  });
});

describe('RetryState', () => {
  it('grants numRetries retries, then reports the limit', () => {
    const state = new RetryState(policy(['5xx'], [], 2), new ResourceManager(limits(100)));
    expect([state.grant(), state.grant(), state.grant()]).toEqual(['retry', 'retry', 'limit-exceeded']);
  });

  it('holds one cluster retry slot per granted retry until its outcome is known', () => {
    const resources = new ResourceManager(limits(1));
    const first = new RetryState(policy(['5xx']), resources);
    const second = new RetryState(policy(['5xx']), resources);
    expect(first.grant()).toBe('retry');
    expect(second.grant()).toBe('overflow');
    first.release();
    expect(resources.retries).toBe(0);
    expect(second.grant()).toBe('retry');
  });

  it('backs off with full jitter below (2^N − 1) × 25ms, capped at 250ms', () => {
    const ceilings = [25, 75, 175, 250, 250];
    const state = new RetryState(policy(['5xx'], [], 5), new ResourceManager(limits(100)));
    for (const ceiling of ceilings) {
      state.grant();
      const samples = Array.from({ length: 200 }, () => state.backoffMs());
      expect(Math.max(...samples)).toBeLessThan(ceiling);
      expect(Math.min(...samples)).toBeGreaterThanOrEqual(0);
      // Fully jittered: the draws spread over the range.
      expect(Math.max(...samples)).toBeGreaterThan(ceiling / 2);
      state.release();
    }
  });
});

describe('CORS origins', () => {
  it('echoes an origin a matcher accepts; a matcher that accepts "*" allows every origin', () => {
    const base = { allowMethods: '', allowHeaders: '', exposeHeaders: '', maxAge: '', allowCredentials: false, forwardNotMatchingPreflights: true };
    const exact = compileCors({ ...base, allowOrigins: [{ kind: 'exact', value: 'https://a.example', ignoreCase: false }] });
    expect(exact.allowsOrigin('https://a.example')).toBe(true);
    expect(exact.allowsOrigin('https://b.example')).toBe(false);
    const star = compileCors({ ...base, allowOrigins: [{ kind: 'exact', value: '*', ignoreCase: false }] });
    expect(star.allowsOrigin('https://anything.example')).toBe(true);
  });
});
