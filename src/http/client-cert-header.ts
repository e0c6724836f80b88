/**
 * `x-forwarded-client-cert`, as Istio configures it. Sidecars inbound (Envoy's APPEND_FORWARD
 * with the subject, URI and hash of the client certificate): over mTLS the client's details are
 * appended to what the request carried; over plaintext the header is removed, since nothing
 * vouches for it. Gateways (SANITIZE_SET): whatever the request carried is replaced by the
 * verified client's details, or removed.
 */
import type { DownstreamStream } from './stream.js';

const XFCC = 'x-forwarded-client-cert';

export function setClientCertHeader(stream: DownstreamStream): void {
  const peer = stream.info.downstreamPeer;
  const headers = stream.headers;
  if (peer === null) {
    headers.remove(XFCC);
    return;
  }
  const element = `By=${peer.localIdentity};Hash=${peer.certHash};Subject="";URI=${peer.identity}`;
  const existing = headers.getJoined(XFCC);
  headers.set(XFCC, existing === undefined || existing === '' ? element : `${existing},${element}`);
}

export function setGatewayClientCertHeader(stream: DownstreamStream): void {
  const details = stream.info.downstreamPeer?.clientCertDetails;
  if (details === undefined) stream.headers.remove(XFCC);
  else stream.headers.set(XFCC, details);
}
