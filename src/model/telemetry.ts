/** Telemetry settings (MeshConfig) and the workload metadata that metrics and peers see. */

/**
 * Which side of the workload traffic is on: the application's own calls (outbound, reported as
 * `source`), calls to the application (inbound, `destination`), or a gateway's (`source`).
 */
export type TrafficDirection = 'outbound' | 'inbound' | 'gateway';

/**
 * The workload this proxy runs for, as Istio's node metadata describes it. Filled from the
 * environment an injected pod has (POD_NAME, POD_NAMESPACE, ISTIO_META_*), flags and MeshConfig;
 * unknown values are ''.
 */
export interface WorkloadMetadata {
  /** The pod's name (Istio's NAME). */
  readonly name: string;
  readonly namespace: string;
  /** The workload (Deployment) name; metrics' *_workload labels. */
  readonly workloadName: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly clusterId: string;
  readonly meshId: string;
  readonly serviceAccount: string;
  readonly instanceIps: readonly string[];
}

export type AccessLogEncoding = 'TEXT' | 'JSON';

/** Istio's accessLogFile, accessLogEncoding and accessLogFormat. */
export interface AccessLogSettings {
  /** '' means off (Istio's default); `/dev/stdout` or a file path otherwise. */
  readonly file: string;
  readonly encoding: AccessLogEncoding;
  /** An Envoy format string; '' uses Istio's default TEXT format (or its JSON form). */
  readonly format: string;
}

export type TraceExporter =
  /** Zipkin v2 JSON, POSTed to `url` (e.g. http://zipkin:9411/api/v2/spans). */
  | { readonly kind: 'zipkin'; readonly url: string }
  /** OTLP/HTTP, POSTed to `url` (e.g. http://collector:4318/v1/traces). */
  | { readonly kind: 'otlp-http'; readonly url: string };

export interface TracingSettings {
  /** MeshConfig enableTracing (default true): trace headers are read, made and passed on. */
  readonly enabled: boolean;
  /** Percentage (0–100) of requests without an upstream decision to sample (Istio's 1). */
  readonly samplingPercent: number;
  /** Where sampled spans go; null: spans are not exported (headers still propagate). */
  readonly exporter: TraceExporter | null;
}

export const DEFAULT_ACCESS_LOG: AccessLogSettings = { file: '', encoding: 'TEXT', format: '' };
export const DEFAULT_TRACING: TracingSettings = { enabled: true, samplingPercent: 1, exporter: null };
