/**
 * The proxy's telemetry, wired: the Prometheus registry with Istio's metrics and skiff's own
 * gauges, the access log and the tracer, all fed by the records the data path hands over
 * (StreamInfo, TcpSessionInfo). Settings come from MeshConfig and follow reloads.
 */
import { Counter, Registry } from 'prom-client';
import type { Snapshot } from '../compile/snapshot.js';
import { SkiffError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { peerMetadataHeaders, type PeerMetadataHeaders } from '../http/router/headers.js';
import { StreamInfo } from '../http/stream.js';
import type { MeshSettings, WorkloadMetadata } from '../model/index.js';
import type { TcpSessionInfo, TcpSessionObserver } from '../tcp/tcp-proxy.js';
import { IstioMetrics, type ServiceLabels } from '../telemetry/istio-metrics.js';
import { encodePeerMetadata, nodeId, workloadFromMetadata } from '../telemetry/peer-metadata.js';
import { AccessLog, accessLogFormatter } from '../telemetry/access-log.js';
import type { Tracer } from '../telemetry/tracing.js';
import { registerOperatorGauges, type ProxyGauges } from './operator-gauges.js';

export interface TelemetryOptions {
  readonly metadata: WorkloadMetadata;
  /** sidecar or router (gateway): Istio's node type. */
  readonly nodeType: 'sidecar' | 'router';
  /** This workload's SPIFFE identity now ('' without a certificate). */
  principal(): string;
  readonly log: Logger;
  /** Also receives each request's record (tests, embedding). */
  readonly onRequestDone?: (info: StreamInfo) => void;
  readonly onTcpDone?: (info: TcpSessionInfo) => void;
}

/** A TCP connection's record, when it opened (its upstream side known) or closed. */
interface TcpEvent {
  readonly tcp: 'open' | 'close';
  readonly info: TcpSessionInfo;
}

export class Telemetry {
  readonly registry = new Registry();
  readonly metrics: IstioMetrics;
  /** This workload's metadata exchange headers, sent to mesh peers. */
  readonly peerMetadata: PeerMetadataHeaders;
  readonly nodeId: string;
  readonly #options: TelemetryOptions;
  readonly #reloads: Counter<'result'>;
  #snapshot: Snapshot | null = null;
  #services = new Map<string, ServiceLabels>();
  #mesh: MeshSettings | null = null;
  #accessLog: AccessLog | null = null;
  #tracer: Tracer | null = null;
  #queue: Array<StreamInfo | TcpEvent> = [];
  #scheduled = false;

  constructor(options: TelemetryOptions) {
    this.#options = options;
    this.nodeId = nodeId(options.metadata, options.nodeType);
    this.peerMetadata = peerMetadataHeaders(this.nodeId, encodePeerMetadata(options.metadata));
    this.metrics = new IstioMetrics({
      registry: this.registry,
      own: workloadFromMetadata(options.metadata),
      ownPrincipal: options.principal,
      serviceOfCluster: (name) => this.#serviceOfCluster(name),
      serviceOfHost: (host) => this.#services.get(host),
    });
    this.metrics.beforeCollect = () => this.flush();
    this.#reloads = new Counter({
      name: 'skiff_config_reloads_total',
      help: 'Configuration reloads, by result (success or failure).',
      labelNames: ['result'],
      registers: [this.registry],
    });
  }

  /**
   * Receives every finished request. The data path only queues it: metrics, the access-log
   * line and the span are made in a batch after the current I/O callbacks (setImmediate).
   */
  readonly onRequestDone = (info: StreamInfo): void => {
    this.#enqueue(info);
    this.#options.onRequestDone?.(info);
  };

  readonly tcpObserver: TcpSessionObserver = {
    onOpen: (info) => this.#enqueue({ tcp: 'open', info }),
    onDone: (info) => {
      this.#enqueue({ tcp: 'close', info });
      this.#options.onTcpDone?.(info);
    },
  };

  /** Records everything queued now (scrapes call this, so they count every finished request). */
  flush(): void {
    const queue = this.#queue;
    this.#queue = [];
    this.#scheduled = false;
    for (const item of queue) {
      if (item instanceof StreamInfo) {
        this.metrics.recordRequest(item);
        this.#accessLog?.logRequest(item);
        if (item.trace?.sampled === true) this.#tracer?.recordRequest(item);
        // The record outlives the request (a pooled upstream connection keeps its last user):
        // let go of the request and response it pointed at, so they die young.
        item.releaseMessages();
      } else if (item.tcp === 'open') {
        this.metrics.recordTcpOpen(item.info);
      } else {
        this.metrics.recordTcpClose(item.info);
        this.#accessLog?.logTcp(item.info);
      }
    }
  }

  #enqueue(item: StreamInfo | TcpEvent): void {
    this.#queue.push(item);
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** The gauges operators watch, read at scrape time. */
  registerGauges(g: ProxyGauges): void {
    registerOperatorGauges(this.registry, g);
  }

  countReload(ok: boolean): void {
    this.#reloads.inc({ result: ok ? 'success' : 'failure' });
  }

  /**
   * Readies the telemetry a new snapshot asks for and returns the commit that switches to it:
   * the service names metrics report, and a new access log and tracer when their settings
   * changed (the old ones are then flushed and closed). Throws, changing nothing, when the
   * settings are unusable (an access log format with an unknown operator, say).
   */
  async prepare(snapshot: Snapshot): Promise<{ commit(): void; abort(): void }> {
    const mesh = snapshot.mesh;
    const previous = this.#mesh;
    const logChanged = previous === null || JSON.stringify(previous.accessLog) !== JSON.stringify(mesh.accessLog);
    const tracingChanged = previous === null || JSON.stringify(previous.tracing) !== JSON.stringify(mesh.tracing);
    const services = serviceIndex(snapshot);
    const tracer = tracingChanged ? await this.#tracerFor(mesh) : null;
    let accessLog: AccessLog | null;
    try {
      accessLog = logChanged ? this.#accessLogFor(mesh) : null;
    } catch (err) {
      void tracer?.shutdown();
      throw err;
    }
    return {
      commit: () => {
        this.#snapshot = snapshot;
        this.#services = services;
        this.#mesh = mesh;
        if (logChanged) {
          void this.#accessLog?.close();
          this.#accessLog = accessLog;
        }
        if (tracingChanged) {
          void this.#tracer?.shutdown();
          this.#tracer = tracer;
        }
      },
      abort: () => {
        void accessLog?.close();
        void tracer?.shutdown();
      },
    };
  }

  #accessLogFor(mesh: MeshSettings): AccessLog | null {
    const log = this.#options.log;
    try {
      return AccessLog.open(mesh.accessLog, { onError: (err) => log.warn(`access log: ${err.message}`), onWarning: (m) => log.warn(`access log: ${m}`) });
    } catch (err) {
      throw new SkiffError('CONFIG_INVALID', `MeshConfig accessLogFormat: ${(err as Error).message}`, { cause: err });
    }
  }

  /** The tracer a mesh asks for; its module (OpenTelemetry's SDK and exporters) loads only then. */
  async #tracerFor(mesh: MeshSettings): Promise<Tracer | null> {
    if (!mesh.tracing.enabled || mesh.tracing.exporter === null) return null;
    const identity = { serviceName: this.#serviceName(), nodeId: this.nodeId, resolveHost: (host: string) => this.#services.get(host)?.host };
    try {
      const { Tracer } = await import('../telemetry/tracing.js');
      return new Tracer(mesh.tracing, identity);
    } catch (err) {
      throw new SkiffError('CONFIG_INVALID', `MeshConfig tracing: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Every metric in Prometheus' text format, with every finished request counted. */
  async prometheus(): Promise<string> {
    this.flush();
    return this.registry.metrics();
  }

  /** Envoy's /stats text: one `name{labels}: value` line per series. */
  async statsText(): Promise<string> {
    this.flush();
    return statsLines(await this.registry.getMetricsAsJSON());
  }

  resetCounters(): void {
    this.flush();
    this.registry.resetMetrics();
    this.metrics.forgetSeries();
  }

  async close(): Promise<void> {
    this.flush();
    await Promise.all([this.#accessLog?.close(), this.#tracer?.shutdown()]);
    this.#accessLog = null;
    this.#tracer = null;
  }

  #serviceOfCluster(name: string): ServiceLabels | undefined {
    const service = this.#snapshot?.clusters.get(name)?.service;
    return service === undefined ? undefined : serviceLabels(service.host, service.namespace);
  }

  /** The tracing service name, Istio's `<canonical service>.<namespace>`. */
  #serviceName(): string {
    const w = workloadFromMetadata(this.#options.metadata);
    return `${w.canonicalService || 'skiff'}.${w.namespace || 'default'}`;
  }
}

/** destination_service_name: a Kubernetes service's own name, else the host. */
function serviceLabels(host: string, namespace: string): ServiceLabels {
  const svc = host.indexOf('.svc.');
  return { host, name: svc > 0 ? host.slice(0, host.indexOf('.')) : host, namespace };
}

/**
 * Hosts that name a service of the snapshot, by every name a client may use for it: the FQDN,
 * and for Kubernetes services `name`, `name.ns` and `name.ns.svc`. Built once per snapshot.
 */
function serviceIndex(snapshot: Snapshot): Map<string, ServiceLabels> {
  const index = new Map<string, ServiceLabels>();
  for (const spec of snapshot.clusters.values()) {
    const s = spec.service;
    if (s === undefined || index.has(s.host)) continue;
    const labels = serviceLabels(s.host, s.namespace);
    index.set(s.host, labels);
    const svc = s.host.indexOf('.svc.');
    if (svc > 0) {
      const short = s.host.slice(0, svc);
      const name = short.slice(0, short.indexOf('.'));
      for (const alias of [short, `${short}.svc`, ...(s.namespace === snapshot.mesh.defaultNamespace ? [name] : [])]) if (!index.has(alias)) index.set(alias, labels);
    }
  }
  return index;
}

/** Envoy's /stats text from prom-client's JSON: one `name{labels}: value` line per series. */
export function statsLines(metrics: ReadonlyArray<{ name: string; values: ReadonlyArray<{ labels: object; value: number; metricName?: string }> }>): string {
  const lines: string[] = [];
  for (const m of metrics) {
    for (const v of m.values) {
      // Escaped as Prometheus escapes label values, so no value can start a line of its own.
      const labels = Object.entries(v.labels).map(([k, x]) => `${k}="${String(x).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`).join(',');
      lines.push(`${v.metricName ?? m.name}${labels === '' ? '' : `{${labels}}`}: ${v.value}`);
    }
  }
  return lines.join('\n') + '\n';
}

/**
 * Problems with the telemetry settings that only compiling them shows (an access log format
 * operator skiff does not know, say), for `skiff validate`; empty when they are usable.
 */
export function telemetrySettingsProblems(mesh: MeshSettings): string[] {
  try {
    accessLogFormatter(mesh.accessLog);
    return [];
  } catch (err) {
    return [`MeshConfig accessLogFormat: ${(err as Error).message}`];
  }
}
