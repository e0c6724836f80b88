/** What the inbound listener requires and does per destination port: the mTLS mode and the protocol. */
import type { InboundProtocol, Model, MtlsMode, PeerAuthentication } from '../model/index.js';

export function mtlsModeFor(policy: PeerAuthentication, port: number): MtlsMode {
  return policy.portModes[port] ?? policy.mode;
}

/** Whether a connection without a verified client certificate is refused on `port` (STRICT). */
export function plaintextRefused(policy: PeerAuthentication, port: number): boolean {
  return mtlsModeFor(policy, port) === 'STRICT';
}

/** How an inbound connection to `port` is served (AUTO when the model does not say). */
export function inboundProtocolFor(model: Model, port: number): InboundProtocol {
  const p = model.inboundProtocols;
  return p === undefined ? 'AUTO' : (p.ports[port] ?? p.default);
}
