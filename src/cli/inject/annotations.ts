/**
 * The Istio pod annotations and labels the injector reads, and Istio's checks on their values
 * (IST:pkg/kube/inject/validate.go). A value that fails a check is an `InvalidAnnotation`; the
 * YAML layer adds the file position.
 */

export const ANNOTATION = {
  inject: 'sidecar.istio.io/inject',
  status: 'sidecar.istio.io/status',
  proxyImage: 'sidecar.istio.io/proxyImage',
  proxyCPU: 'sidecar.istio.io/proxyCPU',
  proxyMemory: 'sidecar.istio.io/proxyMemory',
  proxyCPULimit: 'sidecar.istio.io/proxyCPULimit',
  proxyMemoryLimit: 'sidecar.istio.io/proxyMemoryLimit',
  interceptionMode: 'sidecar.istio.io/interceptionMode',
  holdApplicationUntilProxyStarts: 'sidecar.istio.io/holdApplicationUntilProxyStarts',
  proxyConfig: 'proxy.istio.io/config',
  includeOutboundIPRanges: 'traffic.sidecar.istio.io/includeOutboundIPRanges',
  excludeOutboundIPRanges: 'traffic.sidecar.istio.io/excludeOutboundIPRanges',
  includeInboundPorts: 'traffic.sidecar.istio.io/includeInboundPorts',
  excludeInboundPorts: 'traffic.sidecar.istio.io/excludeInboundPorts',
  includeOutboundPorts: 'traffic.sidecar.istio.io/includeOutboundPorts',
  excludeOutboundPorts: 'traffic.sidecar.istio.io/excludeOutboundPorts',
  readinessInitialDelaySeconds: 'readiness.status.sidecar.istio.io/initialDelaySeconds',
  readinessPeriodSeconds: 'readiness.status.sidecar.istio.io/periodSeconds',
  readinessFailureThreshold: 'readiness.status.sidecar.istio.io/failureThreshold',
  rewriteAppHTTPProbers: 'sidecar.istio.io/rewriteAppHTTPProbers',
  prometheusMergeMetrics: 'prometheus.istio.io/merge-metrics',
  defaultContainer: 'kubectl.kubernetes.io/default-container',
  defaultLogsContainer: 'kubectl.kubernetes.io/default-logs-container',
} as const;

/** The label form of `sidecar.istio.io/inject`; when both are present the label wins (Istio). */
export const INJECT_LABEL = 'sidecar.istio.io/inject';

export type Annotations = Readonly<Record<string, string>>;

/** An annotation whose value Istio would refuse. `annotation` names it, for the position. */
export class InvalidAnnotation extends Error {
  readonly annotation: string;

  constructor(annotation: string, message: string) {
    super(message);
    this.name = 'InvalidAnnotation';
    this.annotation = annotation;
  }
}

/** Istio's parsePort: a decimal 0-65535, surrounding spaces allowed. */
function isPort(text: string): boolean {
  const t = text.trim();
  return /^\d{1,5}$/.test(t) && Number(t) <= 65535;
}

/** A comma-separated port list (empty entries skipped, as Istio's splitPorts does). */
export function checkPortList(annotation: string, value: string, allowWildcard: boolean): void {
  if (allowWildcard && value === '*') return;
  for (const p of value.split(',')) {
    if (p.trim() === '') continue;
    if (!isPort(p)) throw new InvalidAnnotation(annotation, `invalid port "${p}" in "${value}": expected a comma-separated list of ports (0-65535)${allowWildcard ? ' or "*"' : ''}`);
  }
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

function isCidr(text: string): boolean {
  const slash = text.indexOf('/');
  if (slash < 0) return false;
  const addr = text.slice(0, slash);
  const bits = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(bits)) return false;
  if (IPV4.test(addr)) return Number(bits) <= 32;
  // IPv6: hex groups with at most one "::", validated by URL's host parser.
  if (!/^[0-9a-fA-F:.]+$/.test(addr) || !addr.includes(':')) return false;
  try {
    new URL(`http://[${addr}]/`);
  } catch {
    return false;
  }
  return Number(bits) <= 128;
}

/** A comma-separated CIDR list, as netip.ParsePrefix reads each entry (no spaces). */
export function checkCidrList(annotation: string, value: string, allowWildcard: boolean): void {
  if (allowWildcard && value === '*') return;
  if (value === '') return;
  for (const c of value.split(',')) {
    if (!isCidr(c)) throw new InvalidAnnotation(annotation, `invalid CIDR "${c}" in "${value}": expected a comma-separated list of CIDRs such as 10.0.0.0/8${allowWildcard ? ' or "*"' : ''}`);
  }
}

const TRUE_WORDS: ReadonlySet<string> = new Set(['1', 't', 'T', 'true', 'TRUE', 'True']);
const FALSE_WORDS: ReadonlySet<string> = new Set(['0', 'f', 'F', 'false', 'FALSE', 'False']);

/** Go's strconv.ParseBool, which Istio reads its boolean annotations with; undefined when it refuses. */
export function parseBool(value: string): boolean | undefined {
  if (TRUE_WORDS.has(value)) return true;
  if (FALSE_WORDS.has(value)) return false;
  return undefined;
}

/** A non-negative 32-bit integer (probe timings). */
export function uint32(annotation: string, value: string): number {
  if (!/^\d+$/.test(value) || Number(value) > 0xffffffff) throw new InvalidAnnotation(annotation, `"${value}" is not a non-negative integer`);
  return Number(value);
}

const QUANTITY = /^[+-]?(\d+(\.\d*)?|\.\d+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?\d+)?$/;

/** A Kubernetes resource quantity such as `100m`, `1.5` or `128Mi`. */
export function quantity(annotation: string, value: string): string {
  if (!QUANTITY.test(value)) throw new InvalidAnnotation(annotation, `"${value}" is not a resource quantity (e.g. 100m, 1, 128Mi)`);
  return value;
}
