/** Which protocol a request speaks to a host. */
import type { Host } from '../../upstream/host.js';
import type { DownstreamStream } from '../stream.js';

/**
 * HTTP/2 for hosts of an HTTP/2 cluster, and of a client-protocol one when the client spoke
 * HTTP/2; HTTP/1.1 otherwise, and always for a WebSocket upgrade.
 */
export function usesHttp2(host: Host, stream: Pick<DownstreamStream, 'upgrade' | 'httpVersion'>): boolean {
  const h2 = host.h2;
  if (h2 === null || stream.upgrade !== null) return false;
  return !h2.clientProtocol || stream.httpVersion === '2';
}
