/**
 * The timeout a request gets: the route's, or for a gRPC call carrying `grpc-timeout` that
 * deadline capped by the route's (Istio sets Envoy's grpc_timeout_header_max to the route
 * timeout; a route timeout of 0 leaves the deadline uncapped).
 */
import { isGrpcRequest } from '../codec/local-reply.js';
import type { DownstreamStream } from '../stream.js';

/** gRPC's timeout units (PROTOCOL-HTTP2: at most 8 digits and a unit). */
const UNIT_MS: Readonly<Record<string, number>> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };

/** The longest timer Node keeps (2^31-1 ms); longer deadlines are as good as none. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * A `grpc-timeout` value in ms (0: no deadline, as Envoy reads a zero or one beyond what a
 * timer can hold), or undefined when it is not one.
 */
export function parseGrpcTimeout(value: string): number | undefined {
  const m = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (m === null) return undefined;
  const ms = Math.ceil(Number(m[1]) * UNIT_MS[m[2]!]!);
  return ms > MAX_TIMER_MS ? 0 : ms;
}

/** The request's timeout in ms (0: none). */
export function routeTimeoutFor(stream: Pick<DownstreamStream, 'headers'>, routeTimeoutMs: number): number {
  const header = stream.headers.get('grpc-timeout');
  if (header === undefined || !isGrpcRequest(stream.headers)) return routeTimeoutMs;
  const deadline = parseGrpcTimeout(header);
  if (deadline === undefined || deadline === 0) return routeTimeoutMs;
  return routeTimeoutMs > 0 ? Math.min(deadline, routeTimeoutMs) : deadline;
}
