/**
 * skiff's mesh settings kind (apiVersion skiff.dev/v1alpha1, kind MeshConfig). Field names follow
 * Istio's MeshConfig where one exists; `defaultNamespace` and `ports` are skiff's own.
 */
import { array, boolean, duration, enumOf, integer, object, record, string, type Infer } from '../schema.js';

const port = integer({ min: 0, max: 65535 });

export const meshConfigSpecSchema = object({
  outboundTrafficPolicy: object({ mode: enumOf(['ALLOW_ANY', 'REGISTRY_ONLY']) }),
  trustDomain: string({ nonEmpty: true }),
  /** Other trust domains whose identities count as the mesh's (AuthorizationPolicy principals). */
  trustDomainAliases: array(string({ nonEmpty: true })),
  defaultNamespace: string({
    nonEmpty: true,
    pattern: /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/,
    patternHint: 'must be a lowercase DNS-1123 label',
  }),
  rootNamespace: string({ nonEmpty: true }),
  /** Labels of the workload this proxy runs for (VirtualService sourceLabels, LocalRateLimit). */
  workloadLabels: record(string()),
  connectTimeout: duration({ minMs: 1 }),
  dnsRefreshRate: duration({ minMs: 1 }),
  requestHeadersTimeout: duration({ minMs: 1 }),
  idleTimeout: duration({ minMs: 1 }),
  /** How long the sidecar waits for a client's first bytes before treating it as TCP; 0s waits forever. */
  protocolDetectionTimeout: duration({ minMs: 0 }),
  /** Idle time after which a proxied TCP connection is closed (Envoy tcp_proxy idle_timeout, 1h). */
  tcpIdleTimeout: duration({ minMs: 1 }),
  /** Istio enableAutoMtls (default true): mTLS to endpoints labelled security.istio.io/tlsMode: istio. */
  enableAutoMtls: boolean(),
  ports: object({
    outbound: port,
    inbound: port,
    admin: port,
    status: port,
    readiness: port,
    stats: port,
  }),
});
export type MeshConfigSpec = Infer<typeof meshConfigSpecSchema>;
