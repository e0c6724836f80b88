/**
 * Spans for sampled requests, made from the finished request record and exported to Zipkin
 * (v2 JSON) or an OpenTelemetry collector (OTLP/HTTP JSON) in batches.
 *
 * Contract:
 * - `recordRequest` is called once per finished request. An unsampled or untraced record costs a
 *   null check and a boolean test. A sampled one becomes one span whose ids are exactly those of
 *   `info.trace` (the ones already sent upstream): span id = this proxy's span, parent = the span
 *   the request arrived with.
 * - Spans wait in a bounded queue (OTel's BatchSpanProcessor); when it is full, new spans are
 *   dropped and counted. Exporting happens off the request path; recordRequest never blocks and
 *   never throws. A collector that is down or slow costs the spans, nothing else.
 * - `shutdown` flushes what is queued and stops, resolving within the export timeout however the
 *   collector behaves.
 *
 * No global tracer provider, propagator or context manager is registered: spans are built as
 * plain ReadableSpan records and handed straight to the processor.
 */
import { splitHostPort } from '../compile/route-action.js';
import { isGrpcRequest } from '../http/codec/local-reply.js';
import { hostPort } from '../core/addresses.js';
import {
  SpanKind, SpanStatusCode, TraceFlags, createTraceState,
  type Attributes, type HrTime, type Link, type SpanContext, type SpanStatus,
} from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { ZipkinExporter } from '@opentelemetry/exporter-zipkin';
import { emptyResource, resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import {
  BatchSpanProcessor,
  type ReadableSpan, type SpanExporter, type TimedEvent,
} from '@opentelemetry/sdk-trace-base';
import { flagsText } from '../core/response-flags.js';
import type { StreamInfo } from '../http/stream.js';
import type { TracingSettings } from '../model/telemetry.js';

/** Who the spans come from. */
export interface TracerIdentity {
  /**
   * The service the spans belong to (Istio's service cluster, `<app>.<namespace>`, e.g.
   * `reviews.default`): Zipkin's localEndpoint.serviceName, OTLP's `service.name` resource.
   */
  readonly serviceName: string;
  /** Envoy's node id (`sidecar~<ip>~<pod>.<ns>~<ns>.svc.cluster.local`): the `node_id` tag. */
  readonly nodeId: string;
  /** Tags every span carries (Istio's `istio.mesh_id`, `istio.canonical_service`, …). */
  readonly tags?: Readonly<Record<string, string>>;
  /**
   * The FQDN of a known service a Host names (inbound spans are named after the service, as
   * Istio's inbound route decorator is); undefined when it names none.
   */
  resolveHost?(host: string): string | undefined;
}

export interface TracerOptions {
  /** How long one export may take, and the bound on shutdown. Default 5000 ms. */
  readonly exportTimeoutMs?: number;
  /** Longest a span waits before its batch is sent (Envoy's Zipkin flush interval). Default 5000 ms. */
  readonly scheduledDelayMs?: number;
  /** Spans that may wait; more are dropped. Default 2048. */
  readonly maxQueueSize?: number;
  /** Spans per export request. Default 512. */
  readonly maxExportBatchSize?: number;
}

/** Counters since the tracer started. `recorded = exported + failed + dropped + still queued/in flight`. */
export interface TracerStats {
  /** Sampled records handed to recordRequest while running. */
  readonly recorded: number;
  /** Spans the collector accepted. */
  readonly exported: number;
  /** Spans in exports that failed (collector down, timed out, rejected them). */
  readonly failed: number;
  /** Spans dropped before export: queue full, or a span that could not be built. */
  readonly dropped: number;
}

const DEFAULTS = { exportTimeoutMs: 5000, scheduledDelayMs: 5000, maxQueueSize: 2048, maxExportBatchSize: 512 } as const;

export class Tracer {
  /** Null when the settings export nothing: the tracer is then inert. */
  readonly #processor: BatchSpanProcessor | null = null;
  readonly #exporter: CountingExporter | null = null;
  readonly #resource: Resource = emptyResource();
  readonly #identity: TracerIdentity;
  readonly #maxQueueSize: number;
  readonly #exportTimeoutMs: number;
  #recorded = 0;
  #dropped = 0;
  /** Invariant: true once shutdown was called, or from the start when inert; records are then ignored. */
  #closed = false;
  #shutdown: Promise<void> | null = null;

  /**
   * Spans go where `settings.exporter` says; with tracing disabled or no exporter the tracer
   * records nothing. `settings.samplingPercent` is not used here (startTrace decides). Throws
   * (at configuration time) when the collector URL does not parse.
   */
  constructor(settings: TracingSettings, identity: TracerIdentity, options: TracerOptions = {}) {
    const o = { ...DEFAULTS, ...options };
    this.#identity = identity;
    this.#maxQueueSize = o.maxQueueSize;
    this.#exportTimeoutMs = o.exportTimeoutMs;
    const exporter = settings.enabled ? settings.exporter : null;
    if (exporter === null) {
      this.#closed = true;
      return;
    }
    let inner: SpanExporter;
    if (exporter.kind === 'zipkin') {
      // Zipkin copies resource attributes into every span's tags, so its spans keep the empty
      // resource and the service name travels as localEndpoint: the tags stay Envoy's.
      inner = new ZipkinExporter({ url: checkedUrl(exporter.url), serviceName: identity.serviceName });
    } else {
      inner = new OTLPTraceExporter({ url: checkedUrl(exporter.url), timeoutMillis: o.exportTimeoutMs });
      this.#resource = resourceFromAttributes({ 'service.name': identity.serviceName });
    }
    this.#exporter = new CountingExporter(inner);
    this.#processor = new BatchSpanProcessor(this.#exporter, {
      maxQueueSize: o.maxQueueSize,
      maxExportBatchSize: Math.min(o.maxExportBatchSize, o.maxQueueSize),
      scheduledDelayMillis: o.scheduledDelayMs,
      exportTimeoutMillis: o.exportTimeoutMs,
    });
  }

  /** Queues the span of a finished request when its trace is sampled. Never throws or blocks. */
  recordRequest(info: StreamInfo): void {
    const trace = info.trace;
    if (trace === null || !trace.sampled || this.#closed) return;
    this.#recorded++;
    // The processor's queue holds what was queued and not yet handed to the exporter; checking
    // here counts the drop and skips building a span the processor would throw away.
    if (this.#recorded - this.#dropped - this.#exporter!.handed > this.#maxQueueSize) {
      this.#dropped++;
      return;
    }
    try {
      this.#processor!.onEnd(new RequestSpan(info, this.#identity, this.#resource));
    } catch {
      this.#dropped++;
    }
  }

  stats(): TracerStats {
    const e = this.#exporter;
    return { recorded: this.#recorded, exported: e?.exported ?? 0, failed: e?.failed ?? 0, dropped: this.#dropped };
  }

  /** Exports what is queued and stops; resolves (never rejects) within the export timeout. Idempotent. */
  shutdown(): Promise<void> {
    if (this.#shutdown === null) {
      this.#closed = true;
      this.#shutdown = this.#stop();
    }
    return this.#shutdown;
  }

  async #stop(): Promise<void> {
    const processor = this.#processor;
    const exporter = this.#exporter;
    if (processor === null || exporter === null) return;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.#exportTimeoutMs);
    });
    try {
      // The processor shuts the exporter down only after a successful flush; otherwise do it
      // here, so an exporter waiting on a dead collector is told to stop.
      await Promise.race([processor.shutdown().catch(() => undefined), deadline]);
      if (!exporter.isShutdown) await Promise.race([exporter.shutdown().catch(() => undefined), deadline]);
    } finally {
      clearTimeout(timer);
    }
  }
}

// === impl span naming ===

/** An Istio decorator operation: `<host or VirtualService name>:<port><path match>`. */
const DECORATOR = /^[^\s:/]+:\d+\//;

/**
 * The span name, as Istio names sidecar spans. Istio gives every route an Envoy decorator
 * (pilot route.go getRouteOperation; telemetry.go TraceOperation) and Envoy uses its operation
 * as the span name: `<host>:<port><path>`, where host and port come from the destination cluster
 * (`outbound|<port>|<subset>|<host>`) and path is `/*` for catch-all and default routes (a
 * prefix match `p` gives `p*`, an exact match the path). Inbound routes are named
 * `<service FQDN>:<port>/*`. The request's own path never appears (bounded cardinality).
 *
 * skiff's record carries no route match, so, in order:
 * 1. inbound: an `x-envoy-decorator-operation` request header (Envoy lets the caller name the
 *    server span);
 * 2. the route name, when it is decorator-shaped (a control plane that sends Istio's decorator);
 * 3. an Istio cluster name `outbound|<port>|<subset>|<host>`: `<host>:<port>/*`;
 * 4. the Host: `<host, or its service FQDN>:<port>/*`, the port from the Host, else the cluster,
 *    else (inbound) the port the connection arrived on, else the scheme's default;
 * 5. Envoy's undecorated names, `ingress` / `egress`, when there is no Host.
 */
export function operationName(info: StreamInfo, resolveHost?: (host: string) => string | undefined): string {
  const req = info.request;
  if (info.direction === 'inbound' && req !== null) {
    const op = req.headers.get('x-envoy-decorator-operation');
    if (op) return op;
  }
  if (DECORATOR.test(info.routeName)) return info.routeName;
  const cluster = info.upstreamCluster;
  let clusterPort = '';
  if (cluster.startsWith('outbound|') || cluster.startsWith('inbound|')) {
    const [, port = '', , host = ''] = cluster.split('|');
    if (host !== '' && /^\d+$/.test(port)) return `${host}:${port}/*`;
    if (/^\d+$/.test(port)) clusterPort = port;
  }
  const authority = req?.authority ?? '';
  if (authority === '') return info.direction === 'inbound' ? 'ingress' : 'egress';
  const [host, authorityPort] = splitAuthority(authority);
  const port = authorityPort
    || clusterPort
    || (info.direction === 'inbound' && info.downstreamLocalPort > 0 ? String(info.downstreamLocalPort) : '')
    || (req!.scheme === 'https' ? '443' : '80');
  return `${resolveHost?.(host) ?? host}:${port}/*`;
}

/** `host[:port]` or `[v6]:port` → [host, port or '']; a port that is not digits stays in the host. */
function splitAuthority(authority: string): [string, string] {
  const [host, port] = splitHostPort(authority);
  return /^\d+$/.test(port) ? [host, port] : [authority, ''];
}

// === impl span record ===

/** Envoy's max_path_tag_length default: http.url keeps at most this much of the path. */
const MAX_PATH_TAG_LENGTH = 256;
const STATUS_OK: SpanStatus = { code: SpanStatusCode.UNSET };
const STATUS_ERROR: SpanStatus = { code: SpanStatusCode.ERROR };
/** Shared empty lists: exporters only read a finished span. */
const NO_LINKS: Link[] = [];
const NO_EVENTS: TimedEvent[] = [];
const SCOPE: ReadableSpan['instrumentationScope'] = { name: 'skiff' };

/**
 * One finished request as an OTel span. Tags follow Envoy's HTTP tracer
 * (HttpTracerUtility::finalizeDownstreamSpan): string values, `-` where Envoy writes it.
 */
class RequestSpan implements ReadableSpan {
  readonly name: string;
  readonly kind: SpanKind;
  readonly parentSpanContext: SpanContext | undefined;
  readonly startTime: HrTime;
  readonly endTime: HrTime;
  readonly duration: HrTime;
  readonly status: SpanStatus;
  readonly attributes: Attributes;
  readonly links = NO_LINKS;
  readonly events = NO_EVENTS;
  readonly ended = true;
  readonly resource: Resource;
  readonly instrumentationScope = SCOPE;
  readonly droppedAttributesCount = 0;
  readonly droppedEventsCount = 0;
  readonly droppedLinksCount = 0;
  readonly #context: SpanContext;

  /** `info.trace` is non-null and sampled. */
  constructor(info: StreamInfo, identity: TracerIdentity, resource: Resource) {
    const trace = info.trace!;
    this.#context = {
      traceId: trace.traceId,
      spanId: trace.spanId,
      traceFlags: TraceFlags.SAMPLED,
      ...(trace.traceState !== null ? { traceState: createTraceState(trace.traceState) } : {}),
    };
    this.parentSpanContext = trace.parentSpanId === null
      ? undefined
      : { traceId: trace.traceId, spanId: trace.parentSpanId, traceFlags: TraceFlags.SAMPLED, isRemote: true };
    this.name = operationName(info, identity.resolveHost);
    // Envoy: the sidecar's inbound (ingress) span is the server side of the call, its outbound
    // and gateway (egress) spans the client side.
    this.kind = info.direction === 'inbound' ? SpanKind.SERVER : SpanKind.CLIENT;
    // Epoch nanoseconds exceed 2^53: keep [seconds, nanoseconds] apart, never one float.
    const startSeconds = Math.floor(info.startTime / 1000);
    const startNanos = (info.startTime - startSeconds * 1000) * 1e6;
    const durationNs = info.endMs > info.startMs ? Math.round((info.endMs - info.startMs) * 1e6) : 0;
    this.startTime = [startSeconds, startNanos];
    this.endTime = hrTime(startSeconds, startNanos + durationNs);
    this.duration = hrTime(0, durationNs);
    const error = info.responseCode === 0 || info.responseCode >= 500;
    this.status = error ? STATUS_ERROR : STATUS_OK;
    this.attributes = spanTags(info, identity, error);
    this.resource = resource;
  }

  spanContext(): SpanContext {
    return this.#context;
  }
}

function spanTags(info: StreamInfo, identity: TracerIdentity, error: boolean): Attributes {
  const req = info.request;
  const h = req?.headers;
  const tags: Attributes = {
    'component': 'proxy',
    'node_id': identity.nodeId,
    'http.method': req?.method ?? '-',
    'http.url': req === null ? '-' : httpUrl(req.scheme, req.authority, h!.get('x-envoy-original-path') ?? req.path),
    'http.protocol': req === null ? '-' : `HTTP/${req.httpVersion}`,
    'downstream_cluster': h?.get('x-envoy-downstream-service-cluster') ?? '-',
    'user_agent': h?.get('user-agent') ?? '-',
    'peer.address': hostPort(info.downstreamRemoteAddress, info.downstreamRemotePort),
    'request_size': String(info.bytesReceived),
    'response_size': String(info.bytesSent),
    'response_flags': flagsText(info.responseFlags),
    'http.status_code': String(info.responseCode),
  };
  const requestId = h?.get('x-request-id');
  if (requestId !== undefined) tags['guid:x-request-id'] = requestId;
  const clientTraceId = h?.get('x-client-trace-id');
  if (clientTraceId !== undefined) tags['guid:x-client-trace-id'] = clientTraceId;
  if (info.upstreamCluster !== '') tags['upstream_cluster'] = info.upstreamCluster;
  if (info.upstreamHost !== '') tags['upstream_address'] = info.upstreamHost;
  if (h !== undefined && isGrpcRequest(h)) {
    const status = info.responseTrailers?.get('grpc-status') ?? info.responseHeaders?.get('grpc-status');
    if (status !== undefined) tags['grpc.status_code'] = status;
    const message = info.responseTrailers?.get('grpc-message') ?? info.responseHeaders?.get('grpc-message');
    if (message !== undefined) tags['grpc.message'] = message;
  }
  if (error) tags['error'] = 'true';
  const extra = identity.tags;
  if (extra !== undefined) for (const k in extra) tags[k] = extra[k];
  return tags;
}

function httpUrl(scheme: string, authority: string, path: string): string {
  const p = path.length > MAX_PATH_TAG_LENGTH ? path.slice(0, MAX_PATH_TAG_LENGTH) : path;
  return `${scheme}://${authority}${p}`;
}


/** [seconds, nanoseconds] normalised so nanoseconds < 1e9; `ns` is an integer below 2^53. */
function hrTime(seconds: number, ns: number): HrTime {
  const carry = Math.floor(ns / 1e9);
  return [seconds + carry, ns - carry * 1e9];
}

// === impl exporter ===

type ExportResult = Parameters<Parameters<SpanExporter['export']>[1]>[0];
/** ExportResultCode.SUCCESS (@opentelemetry/core, not a direct dependency). */
const EXPORT_SUCCESS = 0;

/**
 * Wraps the real exporter to count outcomes and keep exceptions inside. `handed` counts spans
 * the processor took off its queue, which gives recordRequest the queue length.
 */
class CountingExporter implements SpanExporter {
  handed = 0;
  exported = 0;
  failed = 0;
  isShutdown = false;

  constructor(readonly inner: SpanExporter) {}

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    const n = spans.length;
    this.handed += n;
    let done = false;
    const finish = (result: ExportResult): void => {
      if (done) return;
      done = true;
      if (result.code === EXPORT_SUCCESS) this.exported += n;
      else this.failed += n;
      resultCallback(result);
    };
    try {
      this.inner.export(spans, finish);
    } catch (e) {
      finish({ code: 1, error: e instanceof Error ? e : new Error(String(e)) });
    }
  }

  shutdown(): Promise<void> {
    this.isShutdown = true;
    try {
      return this.inner.shutdown();
    } catch (e) {
      return Promise.reject(e);
    }
  }

  forceFlush(): Promise<void> {
    try {
      return this.inner.forceFlush?.() ?? Promise.resolve();
    } catch (e) {
      return Promise.reject(e);
    }
  }
}

function checkedUrl(url: string): string {
  try {
    return new URL(url).href;
  } catch {
    throw new TypeError(`tracing: the collector URL '${url}' is not a valid URL`);
  }
}
