/**
 * Span export end to end: real request records through the Tracer to in-test collectors
 * (OTLP/HTTP JSON at /v1/traces, Zipkin v2 JSON at /api/v2/spans), decoded and checked for the
 * exact ids sent upstream, kind, name, times and Envoy's tags; and a collector that is down.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { HeaderMap } from '../../src/http/headers.js';
import { StreamInfo, type TrafficDirection } from '../../src/http/stream.js';
import { startTrace } from '../../src/http/trace-context.js';
import type { TracingSettings } from '../../src/model/telemetry.js';
import { operationName, Tracer } from '../../src/telemetry/tracing.js';
import { otlpSpans, startCollector, zipkinSpans, type Collector } from '../helpers/collector.js';
import { closedPort } from '../helpers/ports.js';
import { connection, getRequest } from '../helpers/records.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const INCOMING_SPAN = '00f067aa0ba902b7';
const IDENTITY = { serviceName: 'reviews.default', nodeId: 'sidecar~10.0.0.1~reviews-v1-abc.default~default.svc.cluster.local' };

// === collectors ===

let collector: Collector | null = null;
afterEach(async () => {
  await collector?.close();
  collector = null;
});

// === records ===

interface RecordOptions {
  direction: TrafficDirection;
  traceparent?: string;
  status?: number;
  sampled?: boolean;
}

/** A finished request record, its trace started from the request's headers as the data path does. */
function record(o: RecordOptions): StreamInfo {
  const info = new StreamInfo(connection({ remotePort: 40000, localAddress: '10.0.0.1', localPort: 9080 }));
  const headers = new HeaderMap(['user-agent', 'x-request-id'], ['curl/8.5.0', 'c5d0bb1e-0000-4000-8000-000000000001']);
  if (o.traceparent !== undefined) headers.append('traceparent', o.traceparent);
  info.direction = o.direction;
  info.request = getRequest('/reviews/0?x=1', 'reviews:9080', headers);
  info.trace = startTrace(headers, o.sampled === false ? 0 : 100);
  info.responseCode = o.status ?? 200;
  info.routeName = 'default';
  info.upstreamCluster = o.direction === 'inbound' ? 'inbound|9080||' : 'outbound|9080|v1|reviews.default.svc.cluster.local';
  info.upstreamHost = '10.0.0.7:9080';
  info.bytesReceived = 12;
  info.bytesSent = 345;
  info.endMs = info.startMs + 12.5;
  if ((o.status ?? 200) >= 500) info.setFlag('UF');
  return info;
}

function settings(kind: 'zipkin' | 'otlp-http', url: string): TracingSettings {
  return { enabled: true, samplingPercent: 100, exporter: { kind, url } };
}

describe('OTLP/HTTP export', () => {
  it('exports sampled records as spans with the propagated ids, kind, name, times and tags', async () => {
    collector = await startCollector('/v1/traces', 200);
    const tracer = new Tracer(settings('otlp-http', collector.url), IDENTITY);
    const inbound = record({ direction: 'inbound', traceparent: `00-${TRACE}-${INCOMING_SPAN}-01` });
    const outbound = record({ direction: 'outbound', traceparent: `00-${TRACE}-${INCOMING_SPAN}-01`, status: 503 });
    const unsampled = record({ direction: 'outbound', traceparent: `00-${TRACE}-${INCOMING_SPAN}-00` });
    const root = record({ direction: 'gateway' });
    for (const info of [inbound, outbound, unsampled, root]) tracer.recordRequest(info);
    await tracer.shutdown();

    expect(collector.paths.every((p) => p === '/v1/traces')).toBe(true);
    const { spans, serviceNames } = otlpSpans(collector.bodies);
    expect(new Set(serviceNames)).toEqual(new Set(['reviews.default']));
    expect(spans).toHaveLength(3);
    const byId = new Map(spans.map((s) => [s.spanId, s]));
    expect(byId.has(unsampled.trace!.spanId)).toBe(false);

    const sIn = byId.get(inbound.trace!.spanId)!;
    expect(sIn.traceId).toBe(TRACE);
    expect(sIn.parentSpanId).toBe(INCOMING_SPAN);
    expect(sIn.kind).toBe(2); // SPAN_KIND_SERVER
    expect(sIn.name).toBe('reviews:9080/*');
    expect(BigInt(sIn.startTimeUnixNano)).toBe(BigInt(inbound.startTime) * 1_000_000n);
    expect(BigInt(sIn.endTimeUnixNano) - BigInt(sIn.startTimeUnixNano)).toBe(12_500_000n);
    expect(sIn.tags).toMatchObject({
      'component': 'proxy',
      'node_id': IDENTITY.nodeId,
      'http.method': 'GET',
      'http.url': 'http://reviews:9080/reviews/0?x=1',
      'http.protocol': 'HTTP/1.1',
      'http.status_code': '200',
      'upstream_cluster': 'inbound|9080||',
      'upstream_address': '10.0.0.7:9080',
      'response_flags': '-',
      'guid:x-request-id': 'c5d0bb1e-0000-4000-8000-000000000001',
      'user_agent': 'curl/8.5.0',
      'downstream_cluster': '-',
      'peer.address': '10.0.0.9:40000',
      'request_size': '12',
      'response_size': '345',
    });
    expect(sIn.tags['error']).toBeUndefined();

    const sOut = byId.get(outbound.trace!.spanId)!;
    expect(sOut.traceId).toBe(TRACE);
    expect(sOut.parentSpanId).toBe(INCOMING_SPAN);
    expect(sOut.kind).toBe(3); // SPAN_KIND_CLIENT
    expect(sOut.name).toBe('reviews.default.svc.cluster.local:9080/*');
    expect(sOut.tags).toMatchObject({ 'error': 'true', 'http.status_code': '503', 'response_flags': 'UF', 'upstream_cluster': 'outbound|9080|v1|reviews.default.svc.cluster.local' });
    expect(sOut.status?.code).toBe(2); // STATUS_CODE_ERROR

    const sRoot = byId.get(root.trace!.spanId)!;
    expect(sRoot.traceId).toBe(root.trace!.traceId);
    expect(sRoot.parentSpanId ?? '').toBe('');
    expect(sRoot.kind).toBe(3);

    expect(tracer.stats()).toEqual({ recorded: 3, exported: 3, failed: 0, dropped: 0 });
  });
});

describe('Zipkin export', () => {
  it('posts Zipkin v2 JSON with the propagated ids, kind, name, µs times and tags', async () => {
    collector = await startCollector('/api/v2/spans', 202);
    const tracer = new Tracer(settings('zipkin', collector.url), IDENTITY);
    const inbound = record({ direction: 'inbound', traceparent: `00-${TRACE}-${INCOMING_SPAN}-01` });
    const outbound = record({ direction: 'outbound', traceparent: `00-${TRACE}-${INCOMING_SPAN}-01`, status: 500 });
    tracer.recordRequest(inbound);
    tracer.recordRequest(outbound);
    await tracer.shutdown();

    expect(collector.paths).toEqual(['/api/v2/spans']);
    const spans = zipkinSpans(collector.bodies);
    expect(spans).toHaveLength(2);
    const byId = new Map(spans.map((s) => [s.id, s]));

    const zIn = byId.get(inbound.trace!.spanId)!;
    expect(zIn).toMatchObject({ traceId: TRACE, parentId: INCOMING_SPAN, kind: 'SERVER', name: 'reviews:9080/*' });
    expect(zIn.localEndpoint.serviceName).toBe('reviews.default');
    expect(zIn.timestamp).toBe(inbound.startTime * 1000);
    expect(zIn.duration).toBe(12_500);
    expect(zIn.tags).toMatchObject({ 'component': 'proxy', 'node_id': IDENTITY.nodeId, 'http.status_code': '200', 'http.method': 'GET' });
    // Only Envoy's tags: no resource attributes copied in.
    expect(zIn.tags['service.name']).toBeUndefined();
    expect(zIn.tags['error']).toBeUndefined();

    const zOut = byId.get(outbound.trace!.spanId)!;
    expect(zOut).toMatchObject({ traceId: TRACE, parentId: INCOMING_SPAN, kind: 'CLIENT', name: 'reviews.default.svc.cluster.local:9080/*' });
    expect(zOut.tags).toMatchObject({ 'error': 'true', 'http.status_code': '500', 'response_flags': 'UF' });
    expect(tracer.stats()).toMatchObject({ recorded: 2, exported: 2, failed: 0 });
  });
});

describe('a collector that is down', () => {
  it.each(['otlp-http', 'zipkin'] as const)('%s: recording stays cheap and shutdown resolves within the export timeout', async (kind) => {
    const port = await closedPort();
    const path = kind === 'zipkin' ? '/api/v2/spans' : '/v1/traces';
    const exportTimeoutMs = 1000;
    const tracer = new Tracer(settings(kind, `http://127.0.0.1:${port}${path}`), IDENTITY, { exportTimeoutMs, scheduledDelayMs: 50 });
    const records = Array.from({ length: 50 }, () => record({ direction: 'outbound', traceparent: `00-${TRACE}-${INCOMING_SPAN}-01` }));
    const t0 = performance.now();
    for (const info of records) tracer.recordRequest(info);
    expect(performance.now() - t0).toBeLessThan(200);
    // Let a scheduled export hit the closed port.
    await new Promise((r) => setTimeout(r, 150));
    const s0 = performance.now();
    await expect(tracer.shutdown()).resolves.toBeUndefined();
    expect(performance.now() - s0).toBeLessThan(exportTimeoutMs + 500);
    const stats = tracer.stats();
    expect(stats.recorded).toBe(50);
    expect(stats.exported).toBe(0);
    tracer.recordRequest(records[0]!); // after shutdown: ignored, no throw
    expect(tracer.stats().recorded).toBe(50);
  });

  it.each(['otlp-http', 'zipkin'] as const)('%s: a collector that never answers holds shutdown no longer than the export timeout', async (kind) => {
    const sockets = new Set<import('node:net').Socket>();
    const server = createServer(() => undefined); // reads requests, never responds
    server.on('connection', (s) => sockets.add(s));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    try {
      const exportTimeoutMs = 700;
      const tracer = new Tracer(settings(kind, `http://127.0.0.1:${port}/`), IDENTITY, { exportTimeoutMs });
      for (let i = 0; i < 5; i++) tracer.recordRequest(record({ direction: 'inbound', traceparent: `00-${TRACE}-${INCOMING_SPAN}-01` }));
      const s0 = performance.now();
      await expect(tracer.shutdown()).resolves.toBeUndefined();
      const took = performance.now() - s0;
      expect(took).toBeGreaterThanOrEqual(exportTimeoutMs - 50);
      expect(took).toBeLessThan(exportTimeoutMs + 500);
      expect(tracer.stats().exported).toBe(0);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('drops and counts spans past the queue bound instead of blocking', async () => {
    const port = await closedPort();
    const tracer = new Tracer(settings('otlp-http', `http://127.0.0.1:${port}/v1/traces`), IDENTITY, { exportTimeoutMs: 300, maxQueueSize: 4 });
    for (let i = 0; i < 20; i++) tracer.recordRequest(record({ direction: 'outbound' }));
    const stats = tracer.stats();
    expect(stats.recorded).toBe(20);
    expect(stats.dropped).toBeGreaterThan(0);
    await tracer.shutdown();
  });
});

describe('inert tracer and naming', () => {
  it('records nothing when tracing is disabled or has no exporter', async () => {
    for (const s of [{ enabled: false, samplingPercent: 100, exporter: { kind: 'zipkin', url: 'http://127.0.0.1:1/' } }, { enabled: true, samplingPercent: 100, exporter: null }] as TracingSettings[]) {
      const tracer = new Tracer(s, IDENTITY);
      tracer.recordRequest(record({ direction: 'outbound' }));
      expect(tracer.stats().recorded).toBe(0);
      await tracer.shutdown();
    }
  });

  it('names spans like Istio decorators', () => {
    const r = record({ direction: 'outbound' });
    expect(operationName(r)).toBe('reviews.default.svc.cluster.local:9080/*');
    r.routeName = 'reviews.default.svc.cluster.local:9080/api*';
    expect(operationName(r)).toBe('reviews.default.svc.cluster.local:9080/api*');
    r.routeName = 'default';
    r.upstreamCluster = 'PassthroughCluster';
    expect(operationName(r)).toBe('reviews:9080/*');
    const i = record({ direction: 'inbound' });
    expect(operationName(i, (h) => (h === 'reviews' ? 'reviews.default.svc.cluster.local' : undefined))).toBe('reviews.default.svc.cluster.local:9080/*');
    i.request!.headers.append('x-envoy-decorator-operation', 'custom-op');
    expect(operationName(i)).toBe('custom-op');
  });
});
