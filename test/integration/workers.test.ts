/**
 * `skiff run --concurrency N`: worker processes on node:cluster behind one set of admin ports.
 * Connections spread over the workers, metrics are summed across them, a config change reaches
 * every worker, and SIGTERM drains them all.
 */
import { execFileSync } from 'node:child_process';
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
    // Eight connections at a time: each worker accepts from the shared socket itself.
    for (let batch = 0; batch < 5; batch++) {
      const replies = await Promise.all(Array.from({ length: 8 }, () => request(ports.outbound, '/hello', { headers: { host: 'app.example', connection: 'close' } })));
      expect(replies.map((r) => r.status)).toEqual(Array(8).fill(200));
    }
    // Upstream connections are per worker (each has its own pool): requests arriving from
    // connections made by both workers show both served. The proxy's /stats counts them all.
    expect(new Set(up.requests.map((r) => r.remotePort)).size).toBeGreaterThanOrEqual(2);
    await expect.poll(requestCount, { timeout: 5_000 }).toBe(before + 40);
  });

  it('applies a config change in every worker', async () => {
    await writeFile(join(dir, 'version.yaml'), routeTo('two'));
    // Twenty new connections (spread over both workers) all see the new route.
    await expect
      .poll(
        async () => {
          const replies = await Promise.all(Array.from({ length: 20 }, () => request(ports.outbound, '/version', { headers: { host: HOST, connection: 'close' } })));
          return [...new Set(replies.map((r) => r.text()))];
        },
        { timeout: 10_000, interval: 200 },
      )
      .toEqual(['two']);
    const text = (await get(ports.admin, '127.0.0.1', '/stats/prometheus')).text();
    expect(text).toMatch(/^skiff_config_reloads_total\{result="success"\} 2$/m);
  });

  it('replaces a worker that dies, without its counts going missing from the sums', async () => {
    const before = await requestCount();
    expect(before).toBeGreaterThanOrEqual(40);
    const workers = execFileSync('pgrep', ['-P', String(p.child.pid)], { encoding: 'utf8' }).trim().split('\n').map(Number);
    expect(workers).toHaveLength(2);
    process.kill(workers[0]!, 'SIGKILL');
    await p.waitFor(/worker \d+ exited \(SIGKILL\); starting another in 1s/, 'stderr');
    await expect.poll(async () => (await get(ports.readiness, '127.0.0.1', '/healthz/ready')).status, { timeout: 10_000, interval: 200 }).toBe(200);
    expect(await requestCount()).toBe(before);
    expect((await request(ports.outbound, '/hello', { headers: { host: 'app.example' } })).status).toBe(200);
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
