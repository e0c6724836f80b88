/**
 * `skiff run` as a user runs it: the built CLI in a child process, real ports, signals and exit
 * codes. Also the CLI's usage errors.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { get, request } from '../helpers/client.js';
import { REPO, runCli, startCli, waitReady, type CliProcess } from '../helpers/cli.js';
import { serviceEntry } from '../helpers/proxy.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { assignment, edsCluster, httpListener, PASSTHROUGH_CLUSTER, routeConfig, virtualOutbound } from '../helpers/xds-resources.js';
import { AdsServer } from '../support/ads-server.js';
import { TypeUrl } from '../../src/config/xds/proto.js';

const MISSPELT = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: svc
spec:
  hosts: [svc]
  http:
  - route:
    - destination: {host: svc}
      wieght: 100
`;

const USAGE_HINT = 'run "skiff --help" for usage';

/** A port that was free a moment ago. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  return port;
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Opens a CONNECT tunnel through the proxy and returns the socket once the 200 arrived. */
function openTunnel(proxyPort: number, authority: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(proxyPort, '127.0.0.1');
    let head = '';
    const onData = (c: Buffer): void => {
      head += c.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      s.off('data', onData);
      if (/^HTTP\/1\.1 200 /.test(head)) resolve(s);
      else reject(new Error(`CONNECT answered ${JSON.stringify(head)}`));
    };
    s.on('data', onData);
    s.once('error', reject);
    s.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
  });
}

/**
 * Sends one HTTP/1.1 request over an open socket and resolves with the response text once it is
 * complete (content-length or chunked framing).
 */
function exchange(s: Socket, text: string): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    const complete = (): boolean => {
      const end = got.indexOf('\r\n\r\n');
      if (end === -1) return false;
      const head = got.slice(0, end);
      const length = /\r\ncontent-length: (\d+)/i.exec(head);
      if (length !== null) return got.length >= end + 4 + Number(length[1]);
      return /\r\ntransfer-encoding: chunked/i.test(head) && got.endsWith('\r\n0\r\n\r\n');
    };
    const onData = (c: Buffer): void => {
      got += c.toString('latin1');
      if (complete()) {
        s.off('data', onData);
        resolve(got);
      }
    };
    s.on('data', onData);
    s.write(text);
  });
}

describe('skiff run', () => {
  let up: Upstream;
  let dir: string;
  const held: ServerResponse[] = [];
  const running: CliProcess[] = [];

  beforeAll(async () => {
    up = await startUpstream('svc', (req, res) => {
      if (req.url !== '/hold') return false;
      held.push(res);
      return true;
    });
    dir = await mkdtemp(join(tmpdir(), 'skiff-cli-'));
    await writeFile(join(dir, 'se.yaml'), serviceEntry('svc', 80, [{ port: up.port }]));
  });
  afterEach(() => {
    for (const p of running.splice(0)) p.kill();
    for (const res of held.splice(0)) if (!res.writableEnded) res.end();
  });
  afterAll(async () => {
    await up.close();
    await rm(dir, { recursive: true, force: true });
  });

  function run(...extra: string[]): CliProcess {
    const p = startCli(['run', '-c', dir, '--outbound-port', '0', '--admin-port', '0', '--readiness-port', '0', ...extra]);
    running.push(p);
    return p;
  }

  it('serves traffic, then closes gracefully on SIGTERM and exits 0', async () => {
    const p = run();
    const ports = await waitReady(p);
    expect(ports.version).toBe(1);
    expect(new Set([ports.outbound, ports.admin, ports.readiness]).size).toBe(3);

    const res = await get(ports.outbound, 'svc', '/through-cli');
    expect(res.status).toBe(200);
    expect(res.json()).toMatchObject({ server: 'svc', url: '/through-cli' });
    expect((await get(ports.readiness, '127.0.0.1', '/healthz/ready')).status).toBe(200);
    expect((await get(ports.admin, '127.0.0.1', '/ready')).text()).toBe('LIVE\n');

    // A request in flight when the signal arrives still gets its response.
    const inFlight = request(ports.outbound, '/hold', { headers: { host: 'svc' }, agent: false });
    for (let i = 0; i < 500 && held.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(held).toHaveLength(1);
    p.child.kill('SIGTERM');
    await p.waitFor(/shutting down/);
    // It stops accepting while the request is still in flight (the log line may come first).
    for (let i = 0; i < 100 && (await accepts(ports.outbound)); i++) await new Promise((r) => setTimeout(r, 20));
    expect(await accepts(ports.outbound)).toBe(false);
    expect(held[0]!.writableEnded).toBe(false);
    held[0]!.writeHead(200, { 'content-type': 'text/plain' });
    held[0]!.end('drained');
    const drained = await inFlight;
    expect(drained.status).toBe(200);
    expect(drained.text()).toBe('drained');
    expect(drained.headers['connection']).toBe('close');

    expect(await p.exited()).toEqual({ code: 0, signal: null });
    expect(p.stderr()).not.toMatch(/error/i);
  });

  it('closes idle keep-alive connections on SIGTERM and exits 0 on SIGINT too', async () => {
    const p = run();
    const ports = await waitReady(p);
    const s = connect(ports.outbound, '127.0.0.1');
    const reply = await exchange(s, 'GET /idle HTTP/1.1\r\nHost: svc\r\n\r\n');
    expect(reply).toMatch(/^HTTP\/1\.1 200 /);
    const closed = new Promise<void>((r) => s.once('close', () => r()));
    s.on('error', () => undefined);
    p.child.kill('SIGINT');
    await closed;
    expect(await p.exited()).toEqual({ code: 0, signal: null });
  });

  it('bounds the drain: a CONNECT tunnel still open is closed after --drain-time-s', async () => {
    const p = run('--drain-time-s', '1');
    const ports = await waitReady(p);
    const tunnel = await openTunnel(ports.outbound, 'svc:80');
    const reply = await exchange(tunnel, 'GET /in-tunnel HTTP/1.1\r\nHost: svc\r\n\r\n');
    expect(reply).toMatch(/^HTTP\/1\.1 200 /);
    expect(reply).toContain('"url":"/in-tunnel"');
    const closed = new Promise<void>((r) => tunnel.once('close', () => r()));
    tunnel.on('error', () => undefined);
    p.child.kill('SIGTERM');
    await p.waitFor(/shutting down \(draining for up to 1s\)/);
    // The tunnel keeps working while the proxy drains...
    const during = await exchange(tunnel, 'GET /during-drain HTTP/1.1\r\nHost: svc\r\n\r\n');
    expect(during).toContain('"url":"/during-drain"');
    // ...and is closed when the drain time is up.
    await closed;
    expect(await p.exited(10_000)).toEqual({ code: 0, signal: null });
  });

  it('exits 1 on invalid config with file:line:col lines and binds no listener', async () => {
    const bad = await mkdtemp(join(tmpdir(), 'skiff-cli-bad-'));
    try {
      await writeFile(join(bad, 'se.yaml'), serviceEntry('svc', 80, [{ port: up.port }]));
      await writeFile(join(bad, 'vs.yaml'), MISSPELT);
      const port = await freePort();
      const p = startCli(['run', '-c', bad, '--outbound-port', String(port), '--admin-port', '0', '--readiness-port', '0']);
      running.push(p);
      const exit = await p.exited();
      expect(exit).toEqual({ code: 1, signal: null });
      const stderr = p.stderr();
      expect(stderr).toContain(`${join(bad, 'vs.yaml')}:10:7: VirtualService/svc: spec.http[0].route[0].wieght: unknown field "wieght" (did you mean "weight"?)`);
      expect(stderr).not.toContain('ready:');
      expect(stderr).not.toContain(USAGE_HINT);
      expect(await accepts(port)).toBe(false);
    } finally {
      await rm(bad, { recursive: true, force: true });
    }
  });

  it('exits 1 when the config path does not exist', async () => {
    const r = await runCli(['run', '-c', join(dir, 'missing'), '--outbound-port', '0', '--admin-port', '0', '--readiness-port', '0']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(join(dir, 'missing'));
    expect(r.stderr).not.toContain('ready:');
    expect(r.stderr).not.toContain('unexpected error');
  });

  it('exits 1 when a port is taken', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const taken = (blocker.address() as { port: number }).port;
    try {
      const r = await runCli(['run', '-c', dir, '--outbound-port', String(taken), '--admin-port', '0', '--readiness-port', '0']);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/cannot listen/);
      expect(r.stderr).not.toContain('ready:');
    } finally {
      await new Promise((r) => blocker.close(r));
    }
  });
});

describe('skiff run --mode gateway', () => {
  it('listens on the Gateway ports, routes the bound VirtualService, and exits 0 on SIGTERM', async () => {
    const up = await startUpstream('behind-gateway');
    const gwDir = await mkdtemp(join(tmpdir(), 'skiff-cli-gw-'));
    const port = await freePort();
    await writeFile(
      join(gwDir, 'gateway.yaml'),
      `${serviceEntry('backend.internal', 80, [{ port: up.port }])}---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  servers: [{port: {number: ${port}, name: http, protocol: HTTP}, hosts: ['*']}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: site}
spec:
  hosts: [www.example.com]
  gateways: [gw]
  http: [{route: [{destination: {host: backend.internal}}]}]
`,
    );
    const p = startCli(['run', '--mode', 'gateway', '-c', gwDir, '--admin-port', '0', '--readiness-port', '0', '--status-port', '0', '--stats-port', '0', '--certs', join(gwDir, 'no-certs')]);
    try {
      await p.waitFor(new RegExp(`ready: config version 1 .*gateway ports ${port}, status :\\d+`), 'stderr');
      const r = await get(port, 'www.example.com', '/hello');
      expect(r.status).toBe(200);
      expect(r.json<{ server: string; url: string }>()).toMatchObject({ server: 'behind-gateway', url: '/hello' });
      expect((await get(port, 'other.example.com')).status).toBe(404);
      p.child.kill('SIGTERM');
      expect(await p.exited()).toEqual({ code: 0, signal: null });
    } finally {
      p.kill();
      await up.close();
      await rm(gwDir, { recursive: true, force: true });
    }
  });

  it('refuses an unknown mode', async () => {
    const r = await runCli(['run', '-c', '.', '--mode', 'ambient']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('unknown --mode ambient (standalone, sidecar or gateway)');
  });
});

describe('skiff command line', () => {
  it('prints usage for --help and exits 0', async () => {
    for (const flag of ['--help', '-h']) {
      const r = await runCli([flag]);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('Usage:');
      expect(r.stdout).toContain('skiff run -c <file|dir>');
      expect(r.stdout).toContain('--outbound-port');
      expect(r.stderr).toBe('');
    }
  });

  it('prints the package version for --version and exits 0', async () => {
    const { version } = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string };
    const r = await runCli(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`skiff ${version}\n`);
  });

  it.each([
    [['frobnicate'], 'unknown command "frobnicate"'],
    [['run', '-c', '.', '--bogus'], '--bogus'],
    [['run'], 'run needs --config'],
    [['run', '-c', '.', '--outbound-port', 'abc'], '--outbound-port must be a port number'],
    [['run', '-c', '.', '--admin-port', '70000'], '--admin-port must be a port number'],
    [['run', '-c', '.', '--drain-time-s', '-1'], '--drain-time-s'],
    [['run', '-c', '.', '--log-level', 'loud'], 'unknown --log-level loud'],
    [['run', '-c', '.', 'extra'], 'extra'],
    [['validate'], 'validate needs --config'],
    [['demo', '--bogus'], '--bogus'],
  ])('exits 1 with a usage hint for %j', async (args, message) => {
    const r = await runCli(args);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(message);
    expect(r.stderr).toContain(USAGE_HINT);
    expect(r.stdout).toBe('');
  });

  it('takes its config from an ADS server on a unix socket (--xds PATH), and drains on SIGTERM', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'skiff-xds-'));
    const server = await AdsServer.start({ socketPath: join(dir, 'xds.sock') });
    const a = await startUpstream('a');
    try {
      server.setResources(TypeUrl.cluster, [edsCluster('a.test', 80), PASSTHROUGH_CLUSTER]);
      server.setResources(TypeUrl.endpoints, [assignment('outbound|80||a.test', [a.port])]);
      server.setResources(TypeUrl.listener, [virtualOutbound(), httpListener(80)]);
      server.setResources(TypeUrl.routes, [routeConfig('80', { 'a.test': [{ to: 'outbound|80||a.test' }] })]);
      const p = startCli(['run', '--xds', join(dir, 'xds.sock'), '--outbound-port', '0', '--admin-port', '0', '--readiness-port', '0'], { ...process.env, POD_NAME: 'cli-pod', POD_NAMESPACE: 'shop', INSTANCE_IP: '10.1.2.3' });
      try {
        const ports = await waitReady(p);
        expect(p.stderr()).toContain(`from xds:${join(dir, 'xds.sock')}`);
        expect((await get(ports.outbound, 'a.test')).json().server).toBe('a');
        expect((await get(ports.readiness, 'localhost', '/healthz/ready')).status).toBe(200);
        // The node istiod expects of a sidecar in namespace shop.
        expect(server.requests.find((r) => r.node !== undefined)?.node).toMatchObject({ id: 'sidecar~10.1.2.3~cli-pod.shop~shop.svc.cluster.local', metadata: { NAMESPACE: 'shop', INSTANCE_IPS: '10.1.2.3' } });
        p.child.kill('SIGTERM');
        expect((await p.exited()).code).toBe(0);
      } finally {
        p.kill();
      }
    } finally {
      await server.close();
      await a.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses --xds for a gateway, and a control plane address without a port', async () => {
    const gateway = await runCli(['run', '--xds', '127.0.0.1:15010', '--mode', 'gateway']);
    expect(gateway.code).toBe(1);
    expect(gateway.stderr).toContain('a gateway takes Istio YAML');
    const noPort = await runCli(['run', '--xds', 'istiod.istio-system.svc']);
    expect(noPort.code).toBe(1);
    expect(noPort.stderr).toContain('--xds needs HOST:PORT or a unix socket path');
  });
});
