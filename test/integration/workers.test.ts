/**
 * `skiff run --concurrency N`: worker processes on node:cluster behind one set of admin ports.
 * Connections spread over the workers, metrics are summed across them, a config change reaches
 * every worker, and SIGTERM drains them all.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, startCli, type CliProcess } from '../helpers/cli.js';
import { get, request } from '../helpers/client.js';
import { serviceEntry } from '../helpers/proxy.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

const HOST = 'svc.example';

function routeTo(body: string): string {
  return `${serviceEntry(HOST, 80, [{ port: 1 }])}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: version}
spec:
  hosts: [${HOST}]
  http:
  - match: [{uri: {prefix: /version}}]
    directResponse: {status: 200, body: {string: "${body}"}}
`;
}

describe('skiff run --concurrency 2', () => {
  let dir: string;
  let up: Upstream;
  let p: CliProcess;
  let ports: { outbound: number; admin: number; readiness: number };

  beforeAll(async () => {
    assertBuilt();
    up = await startUpstream('app');
    dir = await mkdtemp(join(tmpdir(), 'skiff-workers-'));
    await writeFile(join(dir, 'app.yaml'), serviceEntry('app.example', 80, [{ port: up.port }]));
    await writeFile(join(dir, 'version.yaml'), routeTo('one'));
    p = startCli(['run', '-c', dir, '--concurrency', '2', '--outbound-port', '0', '--admin-port', '0', '--readiness-port', '0']);
    const m = await p.waitFor(/ready: 2 workers, outbound :(\d+), admin 127\.0\.0\.1:(\d+), readiness :(\d+)/, 'stderr', 20_000);
    ports = { outbound: Number(m[1]), admin: Number(m[2]), readiness: Number(m[3]) };
  }, 30_000);

  afterAll(async () => {
    p?.kill();
    await up?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('is ready once every worker is, on the primary readiness port', async () => {
    expect((await get(ports.readiness, '127.0.0.1', '/healthz/ready')).status).toBe(200);
    const info = (await get(ports.admin, '127.0.0.1', '/server_info')).json<{ state: string; command_line_options: { concurrency: number } }>();
    expect(info).toMatchObject({ state: 'LIVE', command_line_options: { concurrency: 2 } });
  });

  it('spreads connections over the workers and sums their metrics', async () => {
    const before = await requestCount();
    for (let i = 0; i < 40; i++) {
      const r = await request(ports.outbound, '/hello', { headers: { host: 'app.example', connection: 'close' } });
      expect(r.status).toBe(200);
    }
    // One proxy process would carry these sequential requests over one kept-alive upstream
    // connection; each worker has its own pool, so two workers show up as two connections.
    expect(new Set(up.requests.map((r) => r.remotePort)).size).toBeGreaterThanOrEqual(2);
    await expect.poll(requestCount, { timeout: 5_000 }).toBe(before + 40);
  });

  it('applies a config change in every worker', async () => {
    await writeFile(join(dir, 'version.yaml'), routeTo('two'));
    // Twenty connections in a row (round-robin over both workers) all see the new route.
    await expect
      .poll(
        async () => {
          const bodies = new Set<string>();
          for (let i = 0; i < 20; i++) bodies.add((await request(ports.outbound, '/version', { headers: { host: HOST, connection: 'close' } })).text());
          return [...bodies];
        },
        { timeout: 10_000, interval: 200 },
      )
      .toEqual(['two']);
    const text = (await get(ports.admin, '127.0.0.1', '/stats/prometheus')).text();
    expect(text).toMatch(/^skiff_config_reloads_total\{result="success"\} 2$/m);
  });

  it('drains every worker on SIGTERM and exits 0', async () => {
    p.child.kill('SIGTERM');
    expect(await p.exited(15_000)).toEqual({ code: 0, signal: null });
  });

  async function requestCount(): Promise<number> {
    const text = (await get(ports.admin, '127.0.0.1', '/stats/prometheus')).text();
    let n = 0;
    for (const m of text.matchAll(/^istio_requests_total\{[^}]*\} (\d+)$/gm)) n += Number(m[1]);
    return n;
  }
});
