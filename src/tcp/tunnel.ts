/**
 * An opaque TCP tunnel between two sockets (CONNECT, and later the TCP proxy): bytes flow both
 * ways with stream backpressure, a half-close on one side is passed to the other, and an error
 * on either side tears down both.
 */
import type { Socket } from 'node:net';

export interface TunnelStats {
  /** Bytes from the downstream client to upstream. */
  received: number;
  /** Bytes from upstream to the downstream client. */
  sent: number;
}

/** Joins two connected sockets. `initial` holds client bytes that arrived with the CONNECT head. */
export function joinSockets(downstream: Socket, upstream: Socket, initial: Buffer | null): TunnelStats {
  const stats: TunnelStats = { received: 0, sent: 0 };
  if (initial !== null && initial.length > 0) {
    stats.received += initial.length;
    upstream.write(initial);
  }
  const teardown = (): void => {
    downstream.destroy();
    upstream.destroy();
  };
  downstream.on('data', (c: Buffer) => (stats.received += c.length));
  upstream.on('data', (c: Buffer) => (stats.sent += c.length));
  downstream.on('error', teardown);
  upstream.on('error', teardown);
  downstream.on('close', () => upstream.end());
  upstream.on('close', () => downstream.end());
  downstream.pipe(upstream);
  upstream.pipe(downstream);
  downstream.resume();
  return stats;
}
