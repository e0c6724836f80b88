/**
 * skiff's mesh settings kind (apiVersion skiff.dev/v1alpha1, kind MeshConfig). Field names follow
 * Istio's MeshConfig where one exists; `defaultNamespace` and `ports` are skiff's own.
 */
import { array, boolean, duration, enumOf, integer, number, object, record, string, type Infer } from '../schema.js';

const port = integer({ min: 0, max: 65535 });
const servicePort = integer({ min: 1, max: 65535 });

/** Istio's MeshConfig.extensionProviders, the tracing kinds skiff exports to. */
const extensionProvider = object({
  name: string({ nonEmpty: true }),
  zipkin: object({ service: string({ nonEmpty: true }), port: servicePort, path: string({ nonEmpty: true }) }),
  opentelemetry: object({
    service: string({ nonEmpty: true }),
    port: servicePort,
    /** OTLP over HTTP; without it Istio exports over gRPC, which skiff does not. */
    http: object({ path: string({ nonEmpty: true }), timeout: duration({ minMs: 1 }) }),
  }),
});

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
  /** Istio's access log: off unless a file is named (`/dev/stdout` for the container log). */
  accessLogFile: string(),
  accessLogEncoding: enumOf(['TEXT', 'JSON']),
  /** An Envoy format string (`%COMMAND%` operators); empty uses Istio's default. */
  accessLogFormat: string(),
  enableTracing: boolean(),
  /** Istio's ProxyConfig defaults: tracing, and the drain on shutdown. */
  defaultConfig: object({
    tracing: object({
      /** Percentage of requests to sample, 0–100 (Istio's default 1). */
      sampling: number({ min: 0, max: 100 }),
      zipkin: object({ address: string({ nonEmpty: true }) }),
    }),
    /** How long outbound keeps serving after SIGTERM (Istio's default 5s). */
    terminationDrainDuration: duration({ minMs: 0, allowZero: true }),
    /** The longest a drain may take before connections are closed (Envoy's --drain-time-s, 45s). */
    drainDuration: duration({ minMs: 0, allowZero: true }),
  }),
  extensionProviders: array(extensionProvider),
  defaultProviders: object({ tracing: array(string({ nonEmpty: true }), { maxItems: 1 }) }),
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
