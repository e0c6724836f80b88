/**
 * Envoy's %COMMAND%s in added header values, through a real proxy: expanded per request from the
 * connection and the request (VirtualService headers here; xDS route configurations use the same
 * compiled mutators), `%%` for a percent sign, and a stray `%` refused at load as Envoy refuses it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadFromSources } from '../../src/config/load.js';
import { translateRouteConfiguration } from '../../src/config/xds/route-configuration.js';
import { parseHeaderFormat } from '../../src/core/header-format.js';
import { get } from '../helpers/client.js';
import { httpService, virtualService, yamlDocs } from '../helpers/istio-docs.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

describe('header value formatters', () => {
  let backend: Upstream;
  let proxy: TestProxy;

  beforeAll(async () => {
    backend = await startUpstream('backend');
    proxy = await startProxy({
      'mesh.yaml': yamlDocs(
        httpService('fmt', 80, [backend.port]),
        virtualService('fmt', {
          hosts: ['fmt'],
          http: [
            {
              route: [{ destination: { host: 'fmt' } }],
              headers: {
                request: {
                  set: {
                    'x-client': '%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%',
                    'x-client-port': '%DOWNSTREAM_REMOTE_PORT%',
                    'x-proto': '%PROTOCOL%',
                    'x-user': 'user=%REQ(end-user)%',
                    'x-fallback': '%REQ(x-missing?end-user)%',
                    'x-absent': '%REQ(x-missing)%',
                    'x-share': '100%%',
                    'x-host': '%REQ(:authority)%%REQ(:path)%',
                    // Istio lists set entries by name: x-order-a is set before x-order-b reads it.
                    'x-order-a': 'new',
                    'x-order-b': '%REQ(x-order-a)%',
                  },
                },
                response: { set: { 'x-served-for': '%DOWNSTREAM_REMOTE_ADDRESS%' } },
              },
            },
          ],
        }),
      ),
    });
  });

  afterAll(async () => {
    await proxy?.close();
    await backend?.close();
  });

  it('expands commands per request and sends the rest as written', async () => {
    const res = await get(proxy.port, 'fmt', '/p?q=1', { 'end-user': 'jason', 'x-order-a': 'orig' });
    expect(res.status).toBe(200);
    const h = (res.json() as { headers: Record<string, string> }).headers;
    expect(h['x-client']).toBe('127.0.0.1');
    expect(Number(h['x-client-port'])).toBeGreaterThan(0);
    expect(h['x-proto']).toBe('HTTP/1.1');
    expect(h['x-user']).toBe('user=jason');
    expect(h['x-fallback']).toBe('jason');
    // A command that yields nothing adds no header (Envoy without keep_empty_value).
    expect(h['x-absent']).toBeUndefined();
    expect(h['x-share']).toBe('100%');
    // Pseudo-headers read the request line.
    expect(h['x-host']).toBe('fmt/p?q=1');
    // Every value is computed before any is added (Envoy's order): x-order-b saw the original.
    expect(h['x-order-a']).toBe('new');
    expect(h['x-order-b']).toBe('orig');
    expect(res.headers['x-served-for']).toBe(`127.0.0.1:${h['x-client-port']}`);
  });

  it('refuses a stray % or an unknown command, in Istio YAML and in xDS route configurations', () => {
    const loaded = loadFromSources([
      {
        name: 'bad.yaml',
        absolutePath: '/tmp/bad.yaml',
        text: yamlDocs(httpService('fmt', 80, [1]), virtualService('fmt', { hosts: ['fmt'], http: [{ route: [{ destination: { host: 'fmt' } }], headers: { request: { set: { 'x-share': '50%' } } } }] })),
      },
    ]);
    expect(loaded.model).toBeUndefined();
    expect(loaded.diagnostics.map((d) => `${d.field}: ${d.message}`)).toContainEqual(expect.stringContaining('starts no command (write "%%" for a percent sign)'));
    const xds = translateRouteConfiguration({
      name: 'r',
      virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'c' }, request_headers_to_add: [{ header: { key: 'x', value: '%START_TIME%' } }] }] }],
    });
    expect(xds.problems).toEqual([{ path: 'virtual_hosts[0].routes[0].request_headers_to_add[0].header.value', message: '%START_TIME% is not supported in header values' }]);
    expect(parseHeaderFormat('%REQ()%')).toEqual({ error: '%REQ(…)% needs a header name, or two separated by "?"' });
    expect(parseHeaderFormat('%PROTOCOL(x)%')).toEqual({ error: '%PROTOCOL% takes no argument' });
    expect(parseHeaderFormat('a%%b')).toEqual({ parts: ['a%b'] });
    expect(parseHeaderFormat('%REQ(user-agent):10%')).toEqual({ error: '%REQ…:10%: truncating a value to a length is not supported' });
  });
});
