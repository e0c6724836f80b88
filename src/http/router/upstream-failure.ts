/**
 * Local replies for upstream failures, with Envoy's statuses, bodies, response flags and
 * response code details (router.cc; bodies as captured from Envoy, see the semantics reference).
 * Each takes the extra headers the chosen route's response header operations produce: Envoy's
 * filter manager applies them to every local reply made once a route was selected.
 */
import { ResponseFlag, type ResponseFlagCode } from '../../core/response-flags.js';
import type { DownstreamStream } from '../stream.js';

const RESET_PREFIX = 'upstream connect error or disconnect/reset before headers. reset reason: ';

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

export const PROTOCOL_ERROR: UpstreamReset = {
  status: 502,
  flag: ResponseFlag.UpstreamProtocolError,
  reason: 'protocol error',
};

/** Extra headers of a local reply. */
export type ReplyHeaders = ReadonlyArray<readonly [string, string]>;

/** Replies for a reset before any response header arrived. */
export function replyUpstreamReset(stream: DownstreamStream, reset: UpstreamReset, headers: ReplyHeaders = []): void {
  const transport = reset.transport ? `, transport failure reason: ${reset.transport}` : '';
  const detailReason = `${reset.reason}${reset.transport ? `,${reset.transport}` : ''}`.replace(/ /g, '_');
  stream.sendLocalReply(reset.status, `${RESET_PREFIX}${reset.reason}${transport}`, {
    details: `upstream_reset_before_response_started{${detailReason}}`,
    flag: reset.flag,
    headers,
  });
}

export function replyNoHealthyUpstream(stream: DownstreamStream, headers: ReplyHeaders = []): void {
  stream.sendLocalReply(503, 'no healthy upstream', {
    details: 'no_healthy_upstream',
    flag: ResponseFlag.NoHealthyUpstream,
    headers,
  });
}

export function replyTimeout(stream: DownstreamStream, headers: ReplyHeaders = []): void {
  stream.sendLocalReply(504, 'upstream request timeout', {
    details: 'upstream_response_timeout',
    flag: ResponseFlag.UpstreamRequestTimeout,
    headers,
  });
}
