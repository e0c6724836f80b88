/**
 * The fault filter (Envoy envoy.filters.http.fault, from an Istio HTTPFaultInjection): delays a
 * share of requests by a fixed time (flag DI), then aborts a share (flag FI) with an HTTP status
 * or, as Envoy does for gRPC aborts, HTTP 200 with `grpc-status`. The two draws are independent.
 */
import { chance, type CompiledFault } from '../../compile/policies.js';
import { ResponseFlag } from '../../core/response-flags.js';
import type { DownstreamStream } from '../stream.js';

export const FAULT_ABORT_BODY = 'fault filter abort';

/** Runs `next` now, after an injected delay, or never (aborted here, or the client left). */
export function faultFilter(stream: DownstreamStream, fault: CompiledFault, next: () => void): void {
  const delay = fault.delay;
  if (delay === undefined || !chance(delay.percentage)) {
    abortOrContinue(stream, fault, next);
    return;
  }
  stream.info.setFlag(ResponseFlag.DelayInjected);
  const timer = setTimeout(() => {
    stream.onAbort = null;
    abortOrContinue(stream, fault, next);
  }, delay.fixedDelayMs);
  stream.onAbort = () => clearTimeout(timer);
}

function abortOrContinue(stream: DownstreamStream, fault: CompiledFault, next: () => void): void {
  const abort = fault.abort;
  if (abort === undefined || !chance(abort.percentage)) {
    next();
    return;
  }
  const options = { details: 'fault_filter_abort', flag: ResponseFlag.FaultInjected };
  // A gRPC request gets a trailers-only gRPC response (the codec builds it): grpc-status is the
  // abort's, or its HTTP status mapped as Envoy maps it.
  if (abort.httpStatus !== undefined) stream.sendLocalReply(abort.httpStatus, FAULT_ABORT_BODY, options);
  else stream.sendLocalReply(200, FAULT_ABORT_BODY, { ...options, grpcStatus: abort.grpcStatus ?? 2 });
}
