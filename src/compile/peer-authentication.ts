/** The mTLS mode a destination port of this workload requires (portLevelMtls over the workload mode). */
import type { MtlsMode, PeerAuthentication } from '../model/index.js';

export function mtlsModeFor(policy: PeerAuthentication, port: number): MtlsMode {
  return policy.portModes[port] ?? policy.mode;
}

/** Whether a connection without a verified client certificate is refused on `port` (STRICT). */
export function plaintextRefused(policy: PeerAuthentication, port: number): boolean {
  return mtlsModeFor(policy, port) === 'STRICT';
}
