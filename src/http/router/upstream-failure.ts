/**
 * Local replies for upstream failures, with Envoy's statuses, bodies, response flags and
 * response code details (router.cc; bodies as captured from Envoy, see the semantics reference).
 * Each takes the extra headers the chosen route's response header operations produce: Envoy's
 * filter manager applies them to every local reply made once a route was selected.
 */
import { ResponseFlag, type ResponseFlagCode } from '../../core/response-flags.js';
import type { DownstreamStream } from '../stream.js';

const RESET_PREFIX = 'upstream connect error or disconnect/reset before headers. ';

export interface UpstreamReset {
  readonly status: number;
  readonly flag: ResponseFlagCode;
  /** Envoy's reset reason text, e.g. `connection termination`. */
  readonly reason: string;
  /** Envoy's transport failure reason, when there is one. */
  readonly transport?: string;
}

export function connectFailure(reason: string, transport: string): UpstreamReset {
  return { status: 503, flag: ResponseFlag.UpstreamConnectionFailure, reason, transport };
}

export const CONNECTION_TERMINATION: UpstreamReset = {
  status: 503,
  flag: ResponseFlag.UpstreamConnectionTermination,
  reason: 'connection termination',
};

/** A circuit breaker refused the request: Envoy adds `x-envoy-overloaded: true`. */
export const OVERFLOW_RESET: UpstreamReset = {
  status: 503,
  flag: ResponseFlag.UpstreamOverflow,
  reason: 'overflow',
};

/** A per-try timeout, as the router reports it when no retry follows (504 UT). */
export const PER_TRY_TIMEOUT: UpstreamReset = {
  status: 504,
  flag: ResponseFlag.UpstreamRequestTimeout,
  reason: 'per-try timeout',
};

export const PROTOCOL_ERROR: UpstreamReset = {
  status: 502,
  flag: ResponseFlag.UpstreamProtocolError,
  reason: 'protocol error',
};

/** Extra headers of a local reply. */
export type ReplyHeaders = ReadonlyArray<readonly [string, string]>;

/**
 * Replies for a reset before any response header arrived. After retries Envoy's body reads
 * "retried and the latest reset reason: …".
 */
export function replyUpstreamReset(stream: DownstreamStream, reset: UpstreamReset, headers: ReplyHeaders = [], retried = false): void {
  const transport = reset.transport ? `, transport failure reason: ${reset.transport}` : '';
  const detailReason = `${reset.reason}${reset.transport ? `,${reset.transport}` : ''}`.replace(/ /g, '_');
  const body = `${RESET_PREFIX}${retried ? 'retried and the latest ' : ''}reset reason: ${reset.reason}${transport}`;
  if (reset.transport) stream.info.upstreamTransportFailureReason = reset.transport;
  stream.sendLocalReply(reset.status, body, {
    details: `upstream_reset_before_response_started{${detailReason}}`,
    flag: reset.flag,
    headers: reset === OVERFLOW_RESET ? [['x-envoy-overloaded', 'true'], ...headers] : headers,
  });
}

export function replyNoHealthyUpstream(stream: DownstreamStream, headers: ReplyHeaders = []): void {
  stream.sendLocalReply(503, 'no healthy upstream', {
    details: 'no_healthy_upstream',
    flag: ResponseFlag.NoHealthyUpstream,
    headers,
  });
}

export function replyTimeout(stream: DownstreamStream, headers: ReplyHeaders = [], details = 'upstream_response_timeout'): void {
  stream.sendLocalReply(504, 'upstream request timeout', {
    details,
    flag: ResponseFlag.UpstreamRequestTimeout,
    headers,
  });
}
