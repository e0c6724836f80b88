/**
 * Istio's standard metrics (istio_requests_total, istio_request_duration_milliseconds,
 * istio_request_bytes, istio_response_bytes, istio_tcp_*), with Istio's label set in Istio's
 * order, made from the records the data path hands over. Recording only queues the record; the
 * labels are worked out in a batch after the current I/O callbacks (setImmediate), so a response
 * is never held up by its metrics.
 *
 * Where label values come from:
 * - this workload: its metadata (flags, environment, MeshConfig) and its SPIFFE identity;
 * - the peer: the Istio metadata it sent (x-envoy-peer-metadata, on requests inbound and on
 *   responses outbound) and its mTLS identity;
 * - the destination service: the cluster's service (outbound), or the Host, when it names a
 *   known service (inbound).
 * Anything unknown is `unknown`. Label values are bounded: peer-supplied values are cut at
 * MAX_LABEL_LENGTH, and past MAX_SERIES series per metric, peer-supplied values become
 * `unknown` (counted in skiff_metric_series_overflow_total), so a client cannot grow memory
 * without bound by varying what it sends.
 */
import { Counter, type Registry } from 'prom-client';
import type { StreamInfo } from '../http/stream.js';
import type { TcpSessionInfo } from '../tcp/tcp-proxy.js';
import { decodePeerMetadataCached, type PeerWorkload } from './peer-metadata.js';
import { SeriesCounter, SeriesHistogram, type Labels } from './series.js';

export const MAX_SERIES = 10_000;
export const MAX_LABEL_LENGTH = 128;

const UNKNOWN = 'unknown';

/** The destination service labels of a cluster or host. */
export interface ServiceLabels {
  /** The FQDN (destination_service). */
  readonly host: string;
  /** destination_service_name: the Kubernetes service name, else the host. */
  readonly name: string;
  readonly namespace: string;
}

export interface IstioMetricsOptions {
  readonly registry: Registry;
  /** This proxy's workload. */
  readonly own: PeerWorkload;
  /** This workload's SPIFFE identity ('' without a certificate). */
  ownPrincipal(): string;
  /** The service a cluster sends to; undefined for passthrough clusters. */
  serviceOfCluster(cluster: string): ServiceLabels | undefined;
  /** The known service a Host names (inbound); undefined when it names none. */
  serviceOfHost(host: string): ServiceLabels | undefined;
}

/** A workload as the labels see it: every field a label value. */
interface Side {
  readonly workload: string;
  readonly canonicalService: string;
  readonly canonicalRevision: string;
  readonly namespace: string;
  readonly principal: string;
  readonly app: string;
  readonly version: string;
  readonly cluster: string;
}

const UNKNOWN_WORKLOAD: PeerWorkload = {
  workloadName: '',
  namespace: '',
  app: '',
  version: '',
  canonicalService: '',
  canonicalRevision: '',
  cluster: '',
};

/** The namespace in a SPIFFE identity (`spiffe://td/ns/<ns>/sa/<sa>`), or ''. */
function namespaceOfPrincipal(principal: string): string {
  const at = principal.indexOf('/ns/');
  if (at < 0) return '';
  const end = principal.indexOf('/', at + 4);
  return principal.slice(at + 4, end < 0 ? undefined : end);
}

function value(v: string): string {
  if (v === '') return UNKNOWN;
  return v.length > MAX_LABEL_LENGTH ? v.slice(0, MAX_LABEL_LENGTH) : v;
}

function side(w: PeerWorkload, principal: string): Side {
  return {
    workload: value(w.workloadName),
    canonicalService: value(w.canonicalService),
    canonicalRevision: value(w.canonicalRevision),
    namespace: value(w.namespace !== '' ? w.namespace : namespaceOfPrincipal(principal)),
    principal: value(principal),
    app: value(w.app),
    version: value(w.version),
    cluster: value(w.cluster),
  };
}

function peer(raw: string | null): PeerWorkload {
  return raw === null ? UNKNOWN_WORKLOAD : (decodePeerMetadataCached(raw) ?? UNKNOWN_WORKLOAD);
}

/** The labels common to HTTP and TCP metrics, in Istio's order up to destination_cluster. */
function endpointLabels(reporter: 'source' | 'destination', src: Side, dst: Side, service: ServiceLabels | undefined, serviceName: string): string[] {
  return [
    reporter,
    src.workload, src.canonicalService, src.canonicalRevision, src.namespace, src.principal, src.app, src.version, src.cluster,
    dst.workload, dst.namespace, dst.principal, dst.app, dst.version,
    service?.host ?? UNKNOWN, dst.canonicalService, dst.canonicalRevision, service?.name ?? serviceName, service?.namespace ?? UNKNOWN,
    dst.cluster,
  ];
}

const ENDPOINT_LABEL_NAMES = [
  'reporter',
  'source_workload', 'source_canonical_service', 'source_canonical_revision', 'source_workload_namespace', 'source_principal', 'source_app', 'source_version', 'source_cluster',
  'destination_workload', 'destination_workload_namespace', 'destination_principal', 'destination_app', 'destination_version',
  'destination_service', 'destination_canonical_service', 'destination_canonical_revision', 'destination_service_name', 'destination_service_namespace',
  'destination_cluster',
] as const;

export const HTTP_LABEL_NAMES = [...ENDPOINT_LABEL_NAMES, 'request_protocol', 'response_code', 'grpc_response_status', 'response_flags', 'connection_security_policy'] as const;
export const TCP_LABEL_NAMES = [...ENDPOINT_LABEL_NAMES, 'request_protocol', 'response_flags', 'connection_security_policy'] as const;

function labelsOf(names: readonly string[], values: readonly string[]): Labels {
  const labels: Record<string, string> = {};
  for (let i = 0; i < names.length; i++) labels[names[i]!] = values[i]!;
  return labels;
}

/** Envoy's rough header size: the bytes of names and values (HeaderMap::byteSize). */
function headerBytes(h: { readonly names: readonly string[]; readonly values: readonly string[] } | null | undefined): number {
  if (h == null) return 0;
  let n = 0;
  for (let i = 0; i < h.names.length; i++) n += h.names[i]!.length + h.values[i]!.length;
  return n;
}

function isGrpc(info: StreamInfo): boolean {
  return info.request?.headers.get('content-type')?.startsWith('application/grpc') === true;
}

/** grpc-status of a gRPC response (trailers, else a trailers-only head), when it is a valid code. */
function grpcStatus(info: StreamInfo): string {
  const s = info.responseTrailers?.get('grpc-status') ?? info.responseHeaders?.get('grpc-status');
  return s !== undefined && /^(?:\d|1[0-6])$/.test(s) ? s : '';
}

interface HttpSeries {
  readonly requests: ReturnType<SeriesCounter['series']>;
  readonly duration: ReturnType<SeriesHistogram['series']>;
  readonly requestBytes: ReturnType<SeriesHistogram['series']>;
  readonly responseBytes: ReturnType<SeriesHistogram['series']>;
}

export class IstioMetrics {
  readonly #options: IstioMetricsOptions;
  readonly #requests: SeriesCounter;
  readonly #duration: SeriesHistogram;
  readonly #requestBytes: SeriesHistogram;
  readonly #responseBytes: SeriesHistogram;
  readonly #tcpOpened: SeriesCounter;
  readonly #tcpClosed: SeriesCounter;
  readonly #tcpSent: SeriesCounter;
  readonly #tcpReceived: SeriesCounter;
  readonly #overflow: Counter;
  readonly #ownSide: PeerWorkload;
  #queue: Array<StreamInfo | TcpEvent> = [];
  #scheduled = false;

  constructor(options: IstioMetricsOptions) {
    this.#options = options;
    this.#ownSide = options.own;
    const r = options.registry;
    this.#requests = new SeriesCounter('istio_requests_total', 'Requests, by source, destination and response.', r);
    this.#duration = new SeriesHistogram('istio_request_duration_milliseconds', 'Request duration in milliseconds.', r);
    this.#requestBytes = new SeriesHistogram('istio_request_bytes', 'Request size (headers and body) in bytes.', r);
    this.#responseBytes = new SeriesHistogram('istio_response_bytes', 'Response size (headers and body) in bytes.', r);
    this.#tcpOpened = new SeriesCounter('istio_tcp_connections_opened_total', 'TCP connections opened.', r);
    this.#tcpClosed = new SeriesCounter('istio_tcp_connections_closed_total', 'TCP connections closed.', r);
    this.#tcpSent = new SeriesCounter('istio_tcp_sent_bytes_total', 'Bytes sent to the client during the connection.', r);
    this.#tcpReceived = new SeriesCounter('istio_tcp_received_bytes_total', 'Bytes received from the client during the connection.', r);
    const flush = (): void => this.flush();
    for (const m of [this.#requests, this.#duration, this.#requestBytes, this.#responseBytes, this.#tcpOpened, this.#tcpClosed, this.#tcpSent, this.#tcpReceived]) m.beforeCollect = flush;
    this.#overflow = new Counter({
      name: 'skiff_metric_series_overflow_total',
      help: 'Records whose peer-supplied labels were replaced by unknown because a metric reached its series limit.',
      registers: [r],
    });
  }

  /** Queues a finished request; its metrics are recorded after the current I/O callbacks. */
  recordRequest(info: StreamInfo): void {
    this.#enqueue(info);
  }

  recordTcpOpen(info: TcpSessionInfo): void {
    this.#enqueue({ kind: 'open', info });
  }

  recordTcpClose(info: TcpSessionInfo): void {
    this.#enqueue({ kind: 'close', info });
  }

  /** Records everything queued now (scrapes call this so they see every finished request). */
  flush(): void {
    const queue = this.#queue;
    this.#queue = [];
    this.#scheduled = false;
    for (const item of queue) {
      if ('kind' in item) this.#tcp(item);
      else this.#http(item);
    }
  }

  #enqueue(item: StreamInfo | TcpEvent): void {
    this.#queue.push(item);
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  #http(info: StreamInfo): void {
    const grpc = isGrpc(info);
    let values = this.#httpLabels(info, grpc, true);
    let key = values.join('\u0001');
    if (this.#requests.size >= MAX_SERIES && !this.#requests.has(key)) {
      this.#overflow.inc();
      values = this.#httpLabels(info, grpc, false);
      key = values.join('\u0001');
    }
    const s = this.#httpSeries(key, values);
    s.requests.value++;
    s.duration.observe(Math.max(0, info.endMs - info.startMs));
    s.requestBytes.observe(headerBytes(info.request?.headers) + info.bytesReceived);
    s.responseBytes.observe(headerBytes(info.responseHeaders) + headerBytes(info.responseTrailers) + info.bytesSent);
  }

  #httpSeries(key: string, values: string[]): HttpSeries {
    const labels = (): Labels => labelsOf(HTTP_LABEL_NAMES, values);
    return {
      requests: this.#requests.series(key, labels),
      duration: this.#duration.series(key, labels),
      requestBytes: this.#requestBytes.series(key, labels),
      responseBytes: this.#responseBytes.series(key, labels),
    };
  }

  /** The label values of a request, in HTTP_LABEL_NAMES order; `trustPeer` false drops what the peer supplied. */
  #httpLabels(info: StreamInfo, grpc: boolean, trustPeer: boolean): string[] {
    const [reporter, src, dst, service, serviceName] = this.#endpoints(
      info.direction === 'inbound',
      trustPeer ? info.downstreamPeerMetadata : null,
      trustPeer ? info.upstreamPeerMetadata : null,
      info.connection.peer?.identity ?? '',
      info.upstreamPeerIdentity,
      info.upstreamCluster,
      info.request?.authority ?? '',
    );
    const values = endpointLabels(reporter, src, dst, service, serviceName);
    values.push(
      grpc ? 'grpc' : 'http',
      String(info.responseCode),
      grpc ? grpcStatus(info) : '',
      info.responseFlags === null ? '-' : info.responseFlags.join(','),
      reporter === 'source' ? UNKNOWN : info.connection.peer !== null ? 'mutual_tls' : 'none',
    );
    return values;
  }

  /**
   * Who is source and destination, by which side reports: inbound, this workload is the
   * destination and the downstream peer the source; otherwise this workload is the source.
   */
  #endpoints(
    inbound: boolean,
    downstreamMetadata: string | null,
    upstreamMetadata: string | null,
    downstreamIdentity: string,
    upstreamIdentity: string,
    cluster: string,
    authority: string,
  ): ['source' | 'destination', Side, Side, ServiceLabels | undefined, string] {
    const o = this.#options;
    if (inbound) {
      const own = side(this.#ownSide, downstreamIdentity !== '' ? o.ownPrincipal() : '');
      const colon = authority.lastIndexOf(':');
      const host = (colon > 0 && !authority.endsWith(']') ? authority.slice(0, colon) : authority).toLowerCase();
      const service = o.serviceOfHost(host);
      return ['destination', side(peer(downstreamMetadata), downstreamIdentity), own, service, own.canonicalService];
    }
    const own = side(this.#ownSide, upstreamIdentity !== '' ? o.ownPrincipal() : '');
    const service = o.serviceOfCluster(cluster);
    return ['source', own, side(peer(upstreamMetadata), upstreamIdentity), service, cluster !== '' ? cluster : UNKNOWN];
  }

  #tcp(event: TcpEvent): void {
    const info = event.info;
    let values = this.#tcpLabels(info);
    let key = values.join('\u0001');
    const counter = event.kind === 'open' ? this.#tcpOpened : this.#tcpClosed;
    if (counter.size >= MAX_SERIES && !counter.has(key)) {
      this.#overflow.inc();
      values = values.map((v, i) => (i === 0 ? v : UNKNOWN));
      key = values.join('\u0001');
    }
    const labels = (): Labels => labelsOf(TCP_LABEL_NAMES, values);
    if (event.kind === 'open') {
      this.#tcpOpened.series(key, labels).value++;
      return;
    }
    this.#tcpClosed.series(key, labels).value++;
    this.#tcpSent.series(key, labels).value += info.bytesSent;
    this.#tcpReceived.series(key, labels).value += info.bytesReceived;
  }

  #tcpLabels(info: TcpSessionInfo): string[] {
    const [reporter, src, dst, service, serviceName] = this.#endpoints(info.direction === 'inbound', null, null, info.downstreamPeerIdentity, info.upstreamPeerIdentity, info.upstreamCluster, '');
    const values = endpointLabels(reporter, src, dst, service, serviceName);
    values.push('tcp', info.responseFlags === null ? '-' : info.responseFlags.join(','), reporter === 'source' ? UNKNOWN : info.downstreamPeerIdentity !== '' ? 'mutual_tls' : 'none');
    return values;
  }
}

interface TcpEvent {
  readonly kind: 'open' | 'close';
  readonly info: TcpSessionInfo;
}
