/**
 * The HTTP filter chain between route selection and the router, in Istio's order: CORS, fault,
 * local rate limit. Each filter either lets the request through or answers it locally; only
 * the fault filter can hold a request (an injected delay).
 */
import type { RouteFilters } from '../compile/route-table.js';
import { corsFilter } from './filters/cors.js';
import { faultFilter } from './filters/fault.js';
import { localRateLimitFilter } from './filters/local-ratelimit.js';
import type { DownstreamStream } from './stream.js';

/** Runs the route's filters; calls `proceed` once if every filter lets the request through. */
export function runRouteFilters(stream: DownstreamStream, filters: RouteFilters, proceed: () => void): void {
  if (filters.cors !== null && !corsFilter(stream, filters.cors)) return;
  if (filters.fault === null) rateLimitThen(stream, filters, proceed);
  else faultFilter(stream, filters.fault, () => rateLimitThen(stream, filters, proceed));
}

function rateLimitThen(stream: DownstreamStream, filters: RouteFilters, proceed: () => void): void {
  if (filters.rateLimit !== null && !localRateLimitFilter(stream, filters.rateLimit)) return;
  proceed();
}
