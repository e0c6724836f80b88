/**
 * Istio's standard metrics (istio_requests_total, istio_request_duration_milliseconds,
 * istio_request_bytes, istio_response_bytes, istio_tcp_*), with Istio's label set in Istio's
 * order, made from the records the data path hands over. The owner calls in off the request
 * path (lifecycle/telemetry.ts batches records after the response).
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
import { splitHostPort } from '../compile/route-action.js';
import { Counter, type Registry } from 'prom-client';
import { flagsText } from '../core/response-flags.js';
import { grpcStatusForHttp, isGrpcRequest } from '../http/codec/local-reply.js';
import type { StreamInfo } from '../http/stream.js';
import type { TcpSessionInfo } from '../tcp/tcp-proxy.js';
import { decodePeerMetadataCached, type PeerWorkload } from './peer-metadata.js';
import { SeriesCounter, SeriesHistogram, type CounterSeries, type Labels } from './series.js';

export const MAX_SERIES = 2_000;
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
  return info.request !== null && isGrpcRequest(info.request.headers);
}

/**
 * grpc-status of a gRPC response (trailers, else a trailers-only head); without a valid one,
 * the HTTP status mapped as Envoy's Grpc::Common::getGrpcStatus does (503 → 14).
 */
function grpcStatus(info: StreamInfo): string {
  const s = info.responseTrailers?.get('grpc-status') ?? info.responseHeaders?.get('grpc-status');
  if (s !== undefined && /^(?:\d|1[0-6])$/.test(s)) return s;
  return info.responseCode === 0 ? '' : String(grpcStatusForHttp(info.responseCode));
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
  /** Series of requests seen before, by what decides their labels (most requests find theirs here). */
  readonly #known = new KnownSeries<HttpSeries>();
  #principal = '';
  /** Open TCP connections: their series and the bytes reported so far. */
  readonly #openTcp = new Map<TcpSessionInfo, OpenTcp>();
  #tcpTimer: NodeJS.Timeout | null = null;

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
    this.#overflow = new Counter({
      name: 'skiff_metric_series_overflow_total',
      help: 'Records whose peer-supplied labels were replaced by unknown because a metric reached its series limit.',
      registers: [r],
    });
  }

  /** Runs before every collection of Istio's metrics (the owner records what it still holds). */
  set beforeCollect(hook: () => void) {
    for (const m of [this.#requests, this.#duration, this.#requestBytes, this.#responseBytes, this.#tcpOpened, this.#tcpClosed, this.#tcpSent, this.#tcpReceived]) m.beforeCollect = hook;
  }

  /** Forgets the series requests found before; call after the registry's metrics were reset. */
  forgetSeries(): void {
    this.#known.clear();
  }

  /** Records a finished request (called off the request path, by the owner's batch). */
  recordRequest(info: StreamInfo): void {
    this.#http(info);
  }

  /**
   * Records a TCP connection opened (once its upstream side is known, so opened and closed
   * share labels). While it stays open, its bytes are reported every TCP_REPORTING_MS, as
   * Istio's tcp_reporting_duration does.
   */
  recordTcpOpen(info: TcpSessionInfo): void {
    const s = this.#tcpSeries(info);
    s.opened.value++;
    this.#openTcp.set(info, { series: s, received: 0, sent: 0 });
    if (this.#tcpTimer === null) {
      this.#tcpTimer = setInterval(() => this.#reportOpenTcp(), TCP_REPORTING_MS);
      this.#tcpTimer.unref();
    }
  }

  /** Records a TCP connection closed, with the bytes not reported yet. */
  recordTcpClose(info: TcpSessionInfo): void {
    const open = this.#openTcp.get(info) ?? { series: this.#tcpSeries(info), received: 0, sent: 0 };
    this.#openTcp.delete(info);
    open.series.closed.value++;
    open.series.received.value += info.bytesReceived - open.received;
    open.series.sent.value += info.bytesSent - open.sent;
    if (this.#openTcp.size === 0 && this.#tcpTimer !== null) {
      clearInterval(this.#tcpTimer);
      this.#tcpTimer = null;
    }
  }

  #reportOpenTcp(): void {
    for (const [info, open] of this.#openTcp) {
      const live = info.liveBytes();
      open.series.received.value += live.received - open.received;
      open.series.sent.value += live.sent - open.sent;
      open.received = live.received;
      open.sent = live.sent;
    }
  }

  #http(info: StreamInfo): void {
    const grpc = isGrpc(info);
    const protocol = grpc ? 'grpc' : 'http';
    const status = grpc ? grpcStatus(info) : '';
    const flags = flagsText(info.responseFlags);
    const downId = info.connection.peer?.identity ?? '';
    const authority = info.direction === 'inbound' ? (info.request?.authority ?? '') : '';
    const principal = this.#options.ownPrincipal();
    if (principal !== this.#principal) {
      // A new workload identity changes this side's principal label: work labels out again.
      this.#principal = principal;
      this.#known.clear();
    }
    const known = this.#known;
    let s = known.get(info.upstreamCluster, info.responseCode, info.direction, protocol, status, flags, info.downstreamPeerMetadata, info.upstreamPeerMetadata, downId, info.upstreamPeerIdentity, authority);
    if (s === undefined) {
      s = this.#newHttpSeries(info, grpc);
      known.set(info.upstreamCluster, info.responseCode, info.direction, protocol, status, flags, info.downstreamPeerMetadata, info.upstreamPeerMetadata, downId, info.upstreamPeerIdentity, authority, s);
    }
    s.requests.value++;
    s.duration.observe(Math.max(0, info.endMs - info.startMs));
    s.requestBytes.observe(headerBytes(info.request?.headers) + info.bytesReceived);
    s.responseBytes.observe(headerBytes(info.responseHeaders) + headerBytes(info.responseTrailers) + info.bytesSent);
  }

  /** Works out a request's labels and finds (or makes) their series. */
  #newHttpSeries(info: StreamInfo, grpc: boolean): HttpSeries {
    let values = this.#httpLabels(info, grpc, true);
    let key = values.join('\u0001');
    if (this.#requests.size >= MAX_SERIES && !this.#requests.has(key)) {
      this.#overflow.inc();
      values = this.#httpLabels(info, grpc, false);
      key = values.join('\u0001');
    }
    return this.#httpSeries(key, values);
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
      flagsText(info.responseFlags),
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
      const service = o.serviceOfHost(splitHostPort(authority)[0].toLowerCase());
      return ['destination', side(peer(downstreamMetadata), downstreamIdentity), own, service, own.canonicalService];
    }
    const own = side(this.#ownSide, upstreamIdentity !== '' ? o.ownPrincipal() : '');
    const service = o.serviceOfCluster(cluster);
    return ['source', own, side(peer(upstreamMetadata), upstreamIdentity), service, cluster !== '' ? cluster : UNKNOWN];
  }

  #tcpSeries(info: TcpSessionInfo): TcpSeries {
    let values = this.#tcpLabels(info);
    let key = values.join('\u0001');
    if (this.#tcpOpened.size >= MAX_SERIES && !this.#tcpOpened.has(key)) {
      this.#overflow.inc();
      values = values.map((v, i) => (i === 0 ? v : UNKNOWN));
      key = values.join('\u0001');
    }
    const labels = (): Labels => labelsOf(TCP_LABEL_NAMES, values);
    return {
      opened: this.#tcpOpened.series(key, labels),
      closed: this.#tcpClosed.series(key, labels),
      sent: this.#tcpSent.series(key, labels),
      received: this.#tcpReceived.series(key, labels),
    };
  }

  #tcpLabels(info: TcpSessionInfo): string[] {
    const [reporter, src, dst, service, serviceName] = this.#endpoints(info.direction === 'inbound', null, null, info.downstreamPeerIdentity, info.upstreamPeerIdentity, info.upstreamCluster, '');
    const values = endpointLabels(reporter, src, dst, service, serviceName);
    values.push('tcp', flagsText(info.responseFlags), reporter === 'source' ? UNKNOWN : info.downstreamPeerIdentity !== '' ? 'mutual_tls' : 'none');
    return values;
  }
}

/** How often the bytes of open TCP connections are reported (Istio's tcp_reporting_duration). */
export const TCP_REPORTING_MS = 15_000;

interface TcpSeries {
  readonly opened: CounterSeries;
  readonly closed: CounterSeries;
  readonly sent: CounterSeries;
  readonly received: CounterSeries;
}

interface OpenTcp {
  readonly series: TcpSeries;
  /** Bytes already added to the series. */
  received: number;
  sent: number;
}

/**
 * Series found by what decides a request's labels, without building the labels: the cluster and
 * the response code pick a short list, whose entries compare the rest field by field. Bounded:
 * past MAX_KNOWN entries, requests take the slow path (they still count correctly).
 */
class KnownSeries<S> {
  static readonly MAX_KNOWN = 4_096;
  static readonly MAX_PER_CODE = 16;
  readonly #byCluster = new Map<string, Map<number, Array<KnownEntry<S>>>>();
  #size = 0;

  get(
    cluster: string, code: number, direction: string, protocol: string, grpcStatus: string, flags: string,
    downMeta: string | null, upMeta: string | null, downId: string, upId: string, authority: string,
  ): S | undefined {
    const entries = this.#byCluster.get(cluster)?.get(code);
    if (entries === undefined) return undefined;
    for (const e of entries) {
      if (e.direction === direction && e.protocol === protocol && e.grpcStatus === grpcStatus && e.flags === flags && e.downMeta === downMeta
        && e.upMeta === upMeta && e.downId === downId && e.upId === upId && e.authority === authority) return e.series;
    }
    return undefined;
  }

  set(
    cluster: string, code: number, direction: string, protocol: string, grpcStatus: string, flags: string,
    downMeta: string | null, upMeta: string | null, downId: string, upId: string, authority: string, series: S,
  ): void {
    if (this.#size >= KnownSeries.MAX_KNOWN) return;
    let byCode = this.#byCluster.get(cluster);
    if (byCode === undefined) this.#byCluster.set(cluster, (byCode = new Map()));
    let entries = byCode.get(code);
    if (entries === undefined) byCode.set(code, (entries = []));
    if (entries.length >= KnownSeries.MAX_PER_CODE) return;
    entries.push({ direction, protocol, grpcStatus, flags, downMeta, upMeta, downId, upId, authority, series });
    this.#size++;
  }

  clear(): void {
    this.#byCluster.clear();
    this.#size = 0;
  }
}

interface KnownEntry<S> {
  readonly direction: string;
  readonly protocol: string;
  readonly grpcStatus: string;
  readonly flags: string;
  readonly downMeta: string | null;
  readonly upMeta: string | null;
  readonly downId: string;
  readonly upId: string;
  readonly authority: string;
  readonly series: S;
}
