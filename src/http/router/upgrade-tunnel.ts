/**
 * The tunnel an accepted upgrade (WebSocket) becomes once the upstream answered 101: the
 * upstream connection stays borrowed from its pool (it counts as an active connection and
 * request until the tunnel ends) and its bytes flow to the downstream socket and back, with
 * backpressure both ways. A half-close from the client is passed upstream; an upstream close,
 * an error on either side, or STREAM_IDLE_TIMEOUT_MS without a byte either way ends both.
 */
import type { Socket } from 'node:net';
import type { ConnectionUser, PooledConnection } from '../../upstream/pool/connection-pool.js';
import { STREAM_IDLE_TIMEOUT_MS } from '../stream.js';

/** Bytes relayed by a tunnel, for telemetry once it ends. */
export interface UpgradeTunnelStats {
  received: number;
  sent: number;
}

export function tunnelUpgrade(
  conn: PooledConnection,
  downstream: Socket,
  fromUpstream: Buffer | null,
  fromDownstream: Buffer | null,
  onClose?: (stats: UpgradeTunnelStats) => void,
): void {
  const upstream = conn.socket;
  const stats: UpgradeTunnelStats = { received: 0, sent: 0 };
  let ended = false;
  const end = (): void => {
    if (ended) return;
    ended = true;
    downstream.destroy();
    conn.destroy();
    onClose?.(stats);
  };
  const toDownstream = relay(upstream, downstream, (n) => (stats.sent += n));
  const toUpstream = relay(downstream, upstream, (n) => (stats.received += n));
  const user: ConnectionUser = { onSocketData: toDownstream, onSocketClose: end };
  conn.user = user;
  if (fromUpstream !== null && fromUpstream.length > 0) toDownstream(fromUpstream);
  if (fromDownstream !== null && fromDownstream.length > 0) toUpstream(fromDownstream);
  downstream.on('data', toUpstream);
  downstream.on('end', () => upstream.end());
  downstream.on('error', end);
  downstream.on('close', end);
  // Every byte either way passes through the downstream socket, so its inactivity is the stream's.
  downstream.setTimeout(STREAM_IDLE_TIMEOUT_MS, end);
  downstream.resume();
}

/**
 * Writes what `from` sends to `to`, counting it; when `to` is full, `from` pauses until `to`
 * drains.
 */
function relay(from: Socket, to: Socket, count: (bytes: number) => void): (chunk: Buffer) => void {
  let paused = false;
  return (chunk) => {
    count(chunk.length);
    if (to.write(chunk) || paused) return;
    paused = true;
    from.pause();
    to.once('drain', () => {
      paused = false;
      from.resume();
    });
  };
}
