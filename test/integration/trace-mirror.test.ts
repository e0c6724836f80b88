/**
 * Trace headers on mirrored requests and the admin /stats filter: a shadow carries the trace
 * but is never sampled (Envoy's trace_sampled: false), while the real request keeps the decision.
 * Both go out in the trace formats the request arrived with, else the tracing provider's: W3C
 * without one, B3 multi-header when the mesh traces to Zipkin.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get } from '../helpers/client.js';
import { closedPort } from '../helpers/ports.js';
import { serviceEntry, startProxy, type TestProxy } from '../helpers/proxy.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

const B3_HEADERS = ['x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-flags', 'b3'];

/** A VirtualService for main.example mirroring every request to shadow.example. */
const MIRROR_VS = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: main}
spec:
  hosts: [main.example]
  http: [{route: [{destination: {host: main.example}}], mirror: {host: shadow.example}, mirrorPercentage: {value: 100}}]
`;

/** A mesh sampling every request, with `tracing` added to defaultConfig.tracing. */
const mesh = (tracing = ''): string => `apiVersion: skiff.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  defaultConfig: {tracing: {sampling: 100${tracing}}}
`;

/** main.example mirrored to shadow.example, each a real upstream, behind a proxy with `meshYaml`. */
async function startMirrored(meshYaml: string): Promise<{ main: Upstream; shadow: Upstream; tp: TestProxy; close(): Promise<void> }> {
  const main = await startUpstream('main');
  const shadow = await startUpstream('shadow');
  const tp = await startProxy(
    {
      'mesh.yaml': meshYaml,
      'main.yaml': serviceEntry('main.example', 80, [{ port: main.port }]),
      'shadow.yaml': serviceEntry('shadow.example', 80, [{ port: shadow.port }]),
      'vs.yaml': MIRROR_VS,
    },
    { stats: false },
  );
  return {
    main,
    shadow,
    tp,
    async close() {
      await tp.close();
      await main.close();
      await shadow.close();
    },
  };
}

describe('trace headers on a mirrored request', () => {
  let main: Upstream;
  let shadow: Upstream;
  let tp: TestProxy;
  let close: () => Promise<void>;

  beforeAll(async () => {
    ({ main, shadow, tp, close } = await startMirrored(mesh()));
  });

  afterAll(async () => close?.());

  it('sends the shadow the same trace, unsampled, and the real request sampled', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    expect((await get(tp.port, 'main.example', '/m', { traceparent: `00-${traceId}-00f067aa0ba902b7-01` })).status).toBe(200);
    await expect.poll(() => shadow.requests.length).toBe(1);
    const real = main.requests.at(-1)!.headers;
    const copy = shadow.requests[0]!.headers;
    expect(real['traceparent']).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));
    expect(copy['traceparent']).toBe(String(real['traceparent']).replace(/-01$/, '-00'));
    expect(copy['x-request-id']).toBe(real['x-request-id']);
    // Only traceparent arrived, so neither copy gains B3 headers (nor a tracestate).
    for (const h of [real, copy]) {
      expect(h['tracestate']).toBeUndefined();
      for (const name of B3_HEADERS) expect(h[name], name).toBeUndefined();
    }
  });

  it('filters /stats lines by a regex on the stat, and refuses a bad one', async () => {
    const all = (await get(tp.proxy.ports.admin, '127.0.0.1', '/stats')).text();
    expect(all).toMatch(/^skiff_config_version: \d+$/m);
    const some = (await get(tp.proxy.ports.admin, '127.0.0.1', '/stats?filter=^istio_requests_total')).text();
    expect(some.length).toBeGreaterThan(0);
    expect(some.split('\n').filter((l) => l !== '').every((l) => l.startsWith('istio_requests_total{'))).toBe(true);
    expect((await get(tp.proxy.ports.admin, '127.0.0.1', '/stats?filter=(')).status).toBe(400);
  });
});

describe('trace headers when the mesh traces to Zipkin', () => {
  let main: Upstream;
  let shadow: Upstream;
  let tp: TestProxy;
  let close: () => Promise<void>;

  beforeAll(async () => {
    // Nothing listens at the collector address: exports fail, propagation does not care.
    const collector = await closedPort();
    ({ main, shadow, tp, close } = await startMirrored(mesh(`, zipkin: {address: "127.0.0.1:${collector}"}`)));
  });

  afterAll(async () => close?.());

  it('starts a trace in B3 multi-header for a request without trace headers, with no traceparent', async () => {
    expect(tp.proxy.snapshot.mesh.tracing.exporter?.kind).toBe('zipkin');
    expect((await get(tp.port, 'main.example', '/fresh')).status).toBe(200);
    await expect.poll(() => shadow.requests.filter((r) => r.url === '/fresh').length).toBe(1);
    const trace = tp.records.find((r) => r.request?.path === '/fresh')!.trace!;
    expect(trace).toMatchObject({ parentSpanId: null, sampled: true });
    const real = main.requests.find((r) => r.url === '/fresh')!.headers;
    const copy = shadow.requests.find((r) => r.url === '/fresh')!.headers;
    for (const [h, sampled] of [[real, '1'], [copy, '0']] as const) {
      expect(h['x-b3-traceid']).toBe(trace.traceId);
      expect(h['x-b3-spanid']).toBe(trace.spanId);
      expect(h['x-b3-sampled']).toBe(sampled);
      // The trace started here: no parent span, and no other format added.
      expect(h['x-b3-parentspanid']).toBeUndefined();
      expect(h['traceparent']).toBeUndefined();
      expect(h['tracestate']).toBeUndefined();
      expect(h['b3']).toBeUndefined();
    }
  });

  it('still answers a request that arrived with traceparent in W3C only', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    expect((await get(tp.port, 'main.example', '/w3c', { traceparent: `00-${traceId}-00f067aa0ba902b7-01` })).status).toBe(200);
    const trace = tp.records.find((r) => r.request?.path === '/w3c')!.trace!;
    const real = main.requests.find((r) => r.url === '/w3c')!.headers;
    expect(real['traceparent']).toBe(`00-${traceId}-${trace.spanId}-01`);
    for (const name of B3_HEADERS) expect(real[name], name).toBeUndefined();
  });
});
