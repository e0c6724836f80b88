/**
 * Istio's standard metrics and skiff's gauges, scraped by a real Prometheus from the admin port
 * (15000 /stats/prometheus) and the Prometheus port (15090), after real traffic through a proxy.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, request } from '../helpers/client.js';
import { startPrometheus, type Prometheus } from '../helpers/prometheus.js';
import { closedPort } from '../helpers/ports.js';
import { prefixOnlyService, serviceEntry, startProxy, type TestProxy } from '../helpers/proxy.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { ENVOY_DEFAULT_BUCKETS } from '../../src/telemetry/series.js';
import { HTTP_LABEL_NAMES } from '../../src/telemetry/istio-metrics.js';

const REVIEWS = 'reviews.default.svc.cluster.local';
const RATINGS = 'ratings.default.svc.cluster.local';
const METADATA = {
  name: 'productpage-v1-6b746f74dc-9stvs',
  namespace: 'default',
  workloadName: 'productpage-v1',
  labels: { app: 'productpage', version: 'v1' },
  clusterId: 'Kubernetes',
  meshId: 'cluster.local',
  serviceAccount: 'bookinfo-productpage',
  instanceIps: ['10.1.2.3'],
};

describe('Istio metrics scraped by Prometheus', () => {
  let up: Upstream;
  let tp: TestProxy;
  let prom: Prometheus;

  beforeAll(async () => {
    up = await startUpstream('reviews');
    const dead = await closedPort();
    tp = await startProxy(
      {
        'reviews.yaml': prefixOnlyService(REVIEWS, 9080, up.port, '/reviews'),
        'ratings.yaml': serviceEntry(RATINGS, 9080, [{ port: dead }]),
      },
      { metadata: METADATA, stats: true },
    );
    prom = await startPrometheus([
      { job: 'admin', port: tp.proxy.ports.admin, path: '/stats/prometheus' },
      { job: 'envoy-prom', port: tp.proxy.ports.stats, path: '/stats/prometheus' },
    ]);
    for (let i = 0; i < 5; i++) expect((await get(tp.port, `${REVIEWS}:9080`, '/reviews/1')).status).toBe(200);
    for (let i = 0; i < 2; i++) expect((await get(tp.port, `${REVIEWS}:9080`, '/other')).status).toBe(404);
    expect((await get(tp.port, `${RATINGS}:9080`, '/ratings/1')).status).toBe(503);
    expect((await request(tp.port, '/reviews/2', { method: 'POST', headers: { host: `${REVIEWS}:9080` }, body: 'x'.repeat(3000) })).status).toBe(200);
  }, 60_000);

  afterAll(async () => {
    await prom?.close();
    await tp?.close();
    await up?.close();
  });

  it('scrapes both endpoints successfully', async () => {
    await prom.until('up', (s) => s.length === 2 && s.every((x) => x.value === 1));
    expect((await prom.targets()).map((t) => [t.job, t.health]).sort()).toEqual([['admin', 'up'], ['envoy-prom', 'up']]);
  });

  it('counts requests with the full Istio label set, source-reported', async () => {
    const ok = await prom.until(`istio_requests_total{job="admin",response_code="200"}`, (s) => s.length === 1 && s[0]!.value === 6);
    expect(ok[0]!.metric).toMatchObject({
      reporter: 'source',
      source_workload: 'productpage-v1',
      source_canonical_service: 'productpage',
      source_canonical_revision: 'v1',
      source_workload_namespace: 'default',
      source_principal: 'unknown',
      source_app: 'productpage',
      source_version: 'v1',
      source_cluster: 'Kubernetes',
      destination_workload: 'unknown',
      destination_workload_namespace: 'unknown',
      destination_principal: 'unknown',
      destination_app: 'unknown',
      destination_version: 'unknown',
      destination_service: REVIEWS,
      destination_canonical_service: 'unknown',
      destination_canonical_revision: 'unknown',
      destination_service_name: 'reviews',
      destination_service_namespace: 'default',
      destination_cluster: 'unknown',
      request_protocol: 'http',
      response_flags: '-',
      connection_security_policy: 'unknown',
    });
    // The same series through Envoy's Prometheus port.
    await prom.until(`istio_requests_total{job="envoy-prom",response_code="200"}`, (s) => s.length === 1 && s[0]!.value === 6);
  });

  it('labels local replies and upstream failures with Envoy response flags', async () => {
    const nr = await prom.until(`istio_requests_total{job="admin",response_flags="NR"}`, (s) => s.length === 1);
    expect(nr[0]!.value).toBe(2);
    expect(nr[0]!.metric['response_code']).toBe('404');
    const uf = await prom.until(`istio_requests_total{job="admin",response_code="503"}`, (s) => s.length === 1);
    expect(uf[0]!.metric['response_flags']).toContain('UF');
    expect(uf[0]!.metric['destination_service_name']).toBe('ratings');
  });

  it('records durations and sizes in histograms with Envoy default buckets', async () => {
    const buckets = await prom.until(`istio_request_duration_milliseconds_bucket{job="admin",response_code="200"}`, (s) => s.length > 0);
    const bounds = buckets.map((b) => b.metric['le']!).filter((le) => le !== '+Inf').map(Number).sort((a, b) => a - b);
    expect(bounds).toEqual([...ENVOY_DEFAULT_BUCKETS]);
    expect(buckets.find((b) => b.metric['le'] === '+Inf')!.value).toBe(6);
    // One POST carried a 3000-byte body: its request size counts headers and body.
    const big = await prom.query(`istio_request_bytes_bucket{job="admin",response_code="200",le="1000"}`);
    expect(big[0]!.value).toBe(5);
    const sum = await prom.query(`istio_request_bytes_sum{job="admin",response_code="200"}`);
    expect(sum[0]!.value).toBeGreaterThan(3000);
    const responses = await prom.query(`istio_response_bytes_count{job="admin",response_code="200"}`);
    expect(responses[0]!.value).toBe(6);
  });

  it('exposes the operator gauges', async () => {
    const version = await prom.until(`skiff_config_version{job="admin"}`, (s) => s.length === 1);
    expect(version[0]!.value).toBe(tp.proxy.snapshot.version);
    const reloads = await prom.query(`skiff_downstream_connections_active{job="admin"}`);
    expect(reloads).toHaveLength(1);
    expect(await prom.query(`skiff_upstream_requests_pending{job="admin"}`)).toHaveLength(1);
  });

  it('never passes a client\'s metadata exchange headers upstream, nor sends its own to a non-mesh host', async () => {
    const forged = Buffer.from('forged').toString('base64');
    const r = await get(tp.port, `${REVIEWS}:9080`, '/reviews/forged', { 'x-envoy-peer-metadata': forged, 'x-envoy-peer-metadata-id': 'sidecar~1.2.3.4~evil.default~default.svc.cluster.local' });
    expect(r.status).toBe(200);
    const seen = up.requests.find((q) => q.url === '/reviews/forged')!;
    expect(seen.headers['x-envoy-peer-metadata']).toBeUndefined();
    expect(seen.headers['x-envoy-peer-metadata-id']).toBeUndefined();
  });

  it('writes labels in Istio order on /stats/prometheus', async () => {
    const text = (await get(tp.proxy.ports.admin, '127.0.0.1', '/stats/prometheus')).text();
    const line = text.split('\n').find((l) => l.startsWith('istio_requests_total{') && l.includes('response_code="200"'))!;
    const names = [...line.matchAll(/([a-z_]+)="/g)].map((m) => m[1]);
    expect(names).toEqual([...HTTP_LABEL_NAMES]);
    expect(line).toContain('grpc_response_status=""');
  });

  it('counts a config reload and resets counters on POST /reset_counters', async () => {
    await tp.proxy.reload();
    const text = (await get(tp.proxy.ports.admin, '127.0.0.1', '/stats/prometheus')).text();
    expect(text).toMatch(/^skiff_config_reloads_total\{result="success"\} 1$/m);
    expect((await request(tp.proxy.ports.admin, '/reset_counters', { method: 'GET', headers: { host: '127.0.0.1' } })).status).toBe(405);
    expect((await request(tp.proxy.ports.admin, '/reset_counters', { method: 'POST', headers: { host: '127.0.0.1' } })).status).toBe(200);
    const after = (await get(tp.proxy.ports.admin, '127.0.0.1', '/stats/prometheus')).text();
    expect(after).not.toMatch(/^istio_requests_total\{/m);
    // Counting starts again from zero.
    expect((await get(tp.port, `${REVIEWS}:9080`, '/reviews/1')).status).toBe(200);
    const again = (await get(tp.proxy.ports.admin, '127.0.0.1', '/stats/prometheus')).text();
    expect(again).toMatch(/^istio_requests_total\{[^}]*response_code="200"[^}]*\} 1$/m);
  });
});
