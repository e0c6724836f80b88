/**
 * The traffic-capture flags of the init container, as Istio's injection template passes them to
 * istio-iptables (IST:manifests/charts/istio-control/istio-discovery/files/injection-template.yaml;
 * reference §1.1): the defaults, overridden per pod by the `traffic.sidecar.istio.io/*`
 * annotations, each value passed through unchanged once it passes Istio's check.
 */
import { ANNOTATION, checkCidrList, checkPortList, type Annotations } from './annotations.js';

export const OUTBOUND_CAPTURE_PORT = 15001;
export const INBOUND_CAPTURE_PORT = 15006;
export const PROXY_UID = 1337;
/** Envoy's Prometheus port and the readiness port: never captured inbound. */
const ALWAYS_EXCLUDED_INBOUND = '15090,15021';
/** The status port (merged metrics), excluded unless already listed (Istio's excludeInboundPort). */
const STATUS_PORT = '15020';

/** The arguments of `skiff iptables` for this pod (the init container's args, after "iptables"). */
export function captureArgs(annotations: Annotations): string[] {
  const includeIPs = annotations[ANNOTATION.includeOutboundIPRanges] ?? '*';
  const excludeIPs = annotations[ANNOTATION.excludeOutboundIPRanges] ?? '';
  const includeInbound = annotations[ANNOTATION.includeInboundPorts] ?? '*';
  const excludeInbound = annotations[ANNOTATION.excludeInboundPorts] ?? '';
  const includeOutboundPorts = annotations[ANNOTATION.includeOutboundPorts];
  const excludeOutboundPorts = annotations[ANNOTATION.excludeOutboundPorts];

  checkCidrList(ANNOTATION.includeOutboundIPRanges, includeIPs, true);
  checkCidrList(ANNOTATION.excludeOutboundIPRanges, excludeIPs, false);
  checkPortList(ANNOTATION.includeInboundPorts, includeInbound, true);
  checkPortList(ANNOTATION.excludeInboundPorts, excludeInbound, false);
  if (includeOutboundPorts !== undefined) checkPortList(ANNOTATION.includeOutboundPorts, includeOutboundPorts, false);
  if (excludeOutboundPorts !== undefined) checkPortList(ANNOTATION.excludeOutboundPorts, excludeOutboundPorts, false);

  const args = [
    '-p', String(OUTBOUND_CAPTURE_PORT),
    '-z', String(INBOUND_CAPTURE_PORT),
    '-u', String(PROXY_UID),
    '-m', 'REDIRECT',
    '-i', includeIPs,
    '-x', excludeIPs,
    '-b', includeInbound,
    '-d', `${ALWAYS_EXCLUDED_INBOUND},${withStatusPort(excludeInbound)}`,
  ];
  // Only when annotated, as the template does (`isset .ObjectMeta.Annotations ...`).
  if (includeOutboundPorts !== undefined) args.push('-q', includeOutboundPorts);
  if (excludeOutboundPorts !== undefined) args.push('-o', excludeOutboundPorts);
  return args;
}

/**
 * Istio's `excludeInboundPort(statusPort, excluded)`: the user's list, trimmed and without empty
 * entries, then the status port; the list unchanged when it already names the status port.
 */
function withStatusPort(excluded: string): string {
  const ports = excluded.split(',');
  if (ports.includes(STATUS_PORT)) return excluded;
  const out = ports.map((p) => p.trim()).filter((p) => p !== '');
  out.push(STATUS_PORT);
  return out.join(',');
}
