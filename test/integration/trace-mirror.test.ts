/**
 * Trace headers on mirrored requests and the admin /stats filter: a shadow carries the trace
 * but is never sampled (Envoy's trace_sampled: false), while the real request keeps the decision.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get } from '../helpers/client.js';
import { serviceEntry, startProxy, type TestProxy } from '../helpers/proxy.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

const MESH = `apiVersion: skiff.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  defaultConfig: {tracing: {sampling: 100}}
`;

describe('trace headers on a mirrored request', () => {
  let main: Upstream;
  let shadow: Upstream;
  let tp: TestProxy;

  beforeAll(async () => {
    main = await startUpstream('main');
    shadow = await startUpstream('shadow');
    tp = await startProxy(
      {
        'mesh.yaml': MESH,
        'main.yaml': serviceEntry('main.example', 80, [{ port: main.port }]),
        'shadow.yaml': serviceEntry('shadow.example', 80, [{ port: shadow.port }]),
        'vs.yaml': `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: main}
spec:
  hosts: [main.example]
  http: [{route: [{destination: {host: main.example}}], mirror: {host: shadow.example}, mirrorPercentage: {value: 100}}]
`,
      },
      { stats: false },
    );
  });

  afterAll(async () => {
    await tp?.close();
    await main?.close();
    await shadow?.close();
  });

  it('sends the shadow the same trace, unsampled, and the real request sampled', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    expect((await get(tp.port, 'main.example', '/m', { traceparent: `00-${traceId}-00f067aa0ba902b7-01` })).status).toBe(200);
    await expect.poll(() => shadow.requests.length).toBe(1);
    const real = main.requests.at(-1)!.headers;
    const copy = shadow.requests[0]!.headers;
    expect(real['traceparent']).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));
    expect(real['x-b3-sampled']).toBe('1');
    expect(copy['traceparent']).toBe(String(real['traceparent']).replace(/-01$/, '-00'));
    expect(copy['x-b3-sampled']).toBe('0');
    expect(copy['x-request-id']).toBe(real['x-request-id']);
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
