/**
 * `skiff demo`: the sample services (fixed ports 19080–19085, named by config/demo/services.yaml)
 * and the proxy (free ports here) in a child process. Runs the curl commands the demo prints,
 * exactly as printed, and checks what they show.
 */
import { execFile } from 'node:child_process';
import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { get } from '../helpers/client.js';
import { runCli, startCli, waitReady, type CliProcess } from '../helpers/cli.js';

/** Runs one printed shell command; proxy settings of the environment are cleared first. */
function sh(command: string): Promise<string> {
  const env = { ...process.env };
  for (const k of ['http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY', 'all_proxy', 'ALL_PROXY', 'no_proxy', 'NO_PROXY']) delete env[k];
  return new Promise((resolve, reject) => {
    execFile('/bin/sh', ['-c', `${command} --max-time 10`], { env, timeout: 15_000 }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`${command} failed: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

/** The shell commands in the demo's banner: lines that start with curl or an env assignment. */
function printedCommands(banner: string): string[] {
  return banner
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => /^(curl |http_proxy=\S+ curl )/.test(l));
}

function findCommand(commands: readonly string[], what: string, test: (c: string) => boolean): string {
  const found = commands.filter(test);
  expect(found, `one printed command for ${what} in:\n${commands.join('\n')}`).toHaveLength(1);
  return found[0]!;
}

describe('skiff demo', () => {
  const running: CliProcess[] = [];
  afterEach(() => {
    for (const p of running.splice(0)) p.kill();
  });

  it('runs the sample mesh; the printed curl commands show the routing; SIGINT exits 0', async () => {
    const demo = startCli(['demo', '--outbound-port', '0', '--admin-port', '0', '--readiness-port', '0']);
    running.push(demo);
    const ports = await waitReady(demo);
    expect((await get(ports.readiness, '127.0.0.1', '/healthz/ready')).status).toBe(200);
    await demo.waitFor(/Press Ctrl-C to stop\./, 'stdout');
    const banner = demo.stdout();
    expect(banner).toContain('config/demo');

    const commands = printedCommands(banner);
    for (const c of commands) expect(c).toContain(`127.0.0.1:`);
    const split = findCommand(commands, 'the reviews split', (c) => c.includes("'Host: reviews:9080'") && !c.includes('end-user'));
    const jason = findCommand(commands, 'end-user jason', (c) => c.includes("'end-user: jason'") && c.includes('reviews'));
    const fault = findCommand(commands, 'the ratings fault', (c) => c.includes("'Host: ratings:9080'"));
    const forward = findCommand(commands, 'the forward proxy', (c) => c.startsWith('http_proxy='));
    const rewrite = findCommand(commands, 'the rewrite', (c) => c.includes('/v1/details/'));
    const redirect = findCommand(commands, 'the redirect', (c) => c.endsWith('/old'));
    const tunnel = findCommand(commands, 'CONNECT', (c) => c.includes(' -p -x '));
    const status = findCommand(commands, 'config status', (c) => c.includes('/config_status'));
    const ready = findCommand(commands, 'readiness', (c) => c.includes('/healthz/ready'));
    // The commands point at the ports the proxy really bound.
    expect(split).toContain(`http://127.0.0.1:${ports.outbound}/`);
    expect(status).toContain(`http://127.0.0.1:${ports.admin}/`);
    expect(ready).toContain(`http://127.0.0.1:${ports.readiness}/`);

    // reviews: 80% v1, 20% v3, never v2.
    const versions = new Map<string, number>();
    for (let i = 0; i < 50; i++) {
      const out = await sh(split);
      const m = /^reviews (v\d): GET \/reviews\/1\n$/.exec(out);
      expect(m, out).not.toBeNull();
      versions.set(m![1]!, (versions.get(m![1]!) ?? 0) + 1);
    }
    expect(versions.get('v2')).toBeUndefined();
    expect(versions.get('v1') ?? 0).toBeGreaterThan(0);
    expect(versions.get('v3') ?? 0).toBeGreaterThan(0);
    expect(versions.get('v1')!).toBeGreaterThan(versions.get('v3')!);

    // jason always gets v2.
    for (let i = 0; i < 10; i++) expect(await sh(jason)).toBe('reviews v2: GET /reviews/1\n');

    // The forward-proxy form reaches reviews (v1 or v3, by the split).
    for (let i = 0; i < 3; i++) expect(await sh(forward)).toMatch(/^reviews v[13]: GET \/reviews\/1\n$/);

    // Fault: jason gets Envoy's fault abort from the proxy; anyone else reaches ratings.
    const faulted = await sh(fault);
    expect(faulted).toMatch(/^HTTP\/1\.1 500 /);
    expect(faulted).toMatch(/\r\n\r\nfault filter abort$/);
    expect(await sh(fault.replace(" -H 'end-user: jason'", '').replace('-si ', '-s '))).toBe('ratings v1: GET /ratings/1\n');

    // Rewrite: /v1/details/7 reaches details as /details/7.
    expect(await sh(rewrite)).toBe('details v1: GET /details/7\n');

    // Redirect: /old answers 301 with the new location, from the proxy itself.
    const redirected = await sh(redirect);
    expect(redirected).toMatch(/^HTTP\/1\.1 301 /);
    expect(redirected).toMatch(/\r\nlocation: http:\/\/details:9080\/details\/0\r\n/i);
    expect(redirected).not.toMatch(/x-version/i);

    // CONNECT: curl tunnels to productpage through the proxy and speaks HTTP inside.
    expect(await sh(tunnel)).toBe('productpage v1: GET /\n');

    // Config status and readiness.
    const st = JSON.parse(await sh(status)) as { version: number; lastReload: { ok: boolean; problems: string[] } };
    expect(st.lastReload.ok).toBe(true);
    expect(st.lastReload.problems).toEqual([]);
    expect(await sh(ready)).toMatch(/^HTTP\/1\.1 200 /);

    demo.child.kill('SIGINT');
    expect(await demo.exited()).toEqual({ code: 0, signal: null });
  });

  it('exits 1, without hanging on its sample services, when a proxy port is taken', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const taken = (blocker.address() as { port: number }).port;
    try {
      const r = await runCli(['demo', '--outbound-port', '0', '--admin-port', String(taken), '--readiness-port', '0']);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/cannot listen/);
      expect(r.stderr).not.toContain('ready:');
    } finally {
      await new Promise((r) => blocker.close(r));
    }
  });
});
