/** The mTLS mode a destination port of this workload requires (portLevelMtls over the workload mode). */
import type { MtlsMode, PeerAuthentication } from '../model/index.js';

export function mtlsModeFor(policy: PeerAuthentication, port: number): MtlsMode {
  return policy.portModes[port] ?? policy.mode;
}
