import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get } from '../helpers/client.js';
import { serviceEntry, startProxy, type TestProxy } from '../helpers/proxy.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

describe('smoke', () => {
  let up: Upstream;
  let proxy: TestProxy;
  beforeAll(async () => {
    up = await startUpstream('hello');
    proxy = await startProxy({ 'se.yaml': serviceEntry('hello', 80, [{ port: up.port }]) });
  });
  afterAll(async () => {
    await proxy.close();
    await up.close();
  });

  it('forwards a request by Host to the service endpoint', async () => {
    const res = await get(proxy.port, 'hello', '/x?y=1');
    expect(res.status).toBe(200);
    expect(res.json().server).toBe('hello');
    expect(res.json().url).toBe('/x?y=1');
    expect(res.headers['server']).toBe('envoy');
    expect(res.headers['x-envoy-upstream-service-time']).toMatch(/^\d+$/);
    const sent = up.requests.at(-1)!;
    expect(sent.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(sent.headers['x-forwarded-proto']).toBe('http');
    expect(sent.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(sent.headers['x-envoy-attempt-count']).toBe('1');
    expect(sent.headers['host']).toBe('hello');
  });
});
