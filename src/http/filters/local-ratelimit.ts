/**
 * The local rate limit filter (Envoy envoy.filters.http.local_ratelimit): takes a token from the
 * route's bucket; on an empty bucket answers 429 `local_rate_limited` with
 * `x-envoy-ratelimited: true` and flag RL.
 */
import type { TokenBucket } from '../../compile/policies.js';
import { ResponseFlag } from '../../core/response-flags.js';
import type { DownstreamStream } from '../stream.js';

/** Returns false when the request was rejected. */
export function localRateLimitFilter(stream: DownstreamStream, bucket: TokenBucket): boolean {
  if (bucket.tryConsume()) return true;
  stream.sendLocalReply(429, 'local_rate_limited', {
    details: 'local_rate_limited',
    flag: ResponseFlag.RateLimited,
    headers: [['x-envoy-ratelimited', 'true']],
  });
  return false;
}
