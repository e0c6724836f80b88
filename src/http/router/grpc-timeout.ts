/**
 * The timeout a request gets: the route's, or for a gRPC call carrying `grpc-timeout` that
 * deadline capped by the route's (Istio sets Envoy's grpc_timeout_header_max to the route
 * timeout; a route timeout of 0 leaves the deadline uncapped). An xDS route says how Envoy reads
 * the header (GrpcTimeoutPolicy).
 *
 * One difference: Envoy answers an expired stream duration (the `stream` policy) from its
 * connection manager, `downstream duration timeout` with DEADLINE_EXCEEDED; skiff arms the
 * route timer with it and answers as for a route timeout (504 UT).
 */
import type { GrpcTimeoutPolicy } from '../../model/route.js';
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
export function routeTimeoutFor(stream: Pick<DownstreamStream, 'headers'>, routeTimeoutMs: number, policy?: GrpcTimeoutPolicy): number {
  if (policy !== undefined) return envoyTimeoutFor(stream, routeTimeoutMs, policy);
  const header = stream.headers.get('grpc-timeout');
  if (header === undefined || !isGrpcRequest(stream.headers)) return routeTimeoutMs;
  const deadline = parseGrpcTimeout(header);
  if (deadline === undefined || deadline === 0) return routeTimeoutMs;
  return routeTimeoutMs > 0 ? Math.min(deadline, routeTimeoutMs) : deadline;
}

/** The header's deadline in ms (0: none), or undefined without a valid header. */
function headerDeadline(stream: Pick<DownstreamStream, 'headers'>): number | undefined {
  const header = stream.headers.get('grpc-timeout');
  return header === undefined ? undefined : parseGrpcTimeout(header);
}

function envoyTimeoutFor(stream: Pick<DownstreamStream, 'headers'>, routeTimeoutMs: number, policy: GrpcTimeoutPolicy): number {
  switch (policy.kind) {
    case 'ignore':
      return routeTimeoutMs;
    case 'grpc': {
      if (!isGrpcRequest(stream.headers)) return routeTimeoutMs;
      let ms = headerDeadline(stream) ?? 0;
      // The offset only applies when it leaves a deadline (0 would be none).
      if (policy.offsetMs < ms) ms -= policy.offsetMs;
      if (policy.maxMs !== 0 && (ms === 0 || ms > policy.maxMs)) ms = policy.maxMs;
      return ms;
    }
    case 'stream': {
      // Envoy's connection manager reads the header on any request, gRPC or not.
      const deadline = policy.headerMaxMs === undefined ? undefined : headerDeadline(stream);
      if (deadline === undefined || policy.headerMaxMs === undefined) return policy.streamMs;
      let ms = policy.headerMaxMs !== 0 && deadline > policy.headerMaxMs ? policy.headerMaxMs : deadline;
      // An offset that eats the whole deadline leaves Envoy a timer of 0, which fires at once.
      if (ms !== 0 && policy.offsetMs > 0) ms = policy.offsetMs < ms ? ms - policy.offsetMs : 1;
      return ms;
    }
  }
}
