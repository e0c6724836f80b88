/**
 * The rest of the admin surface on real sockets: Envoy's admin endpoints (15000) beyond config
 * dumps, the Prometheus port (15090), readiness (15021) while draining, and pilot-agent's status
 * server (15020) with merged application metrics and rewritten application probes.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseAppProbers } from '../../src/admin/app-probes.js';
import type { StatusServerOptions } from '../../src/admin/status-server.js';
import { createLogger, type Logger } from '../../src/core/logger.js';
import { Proxy, type ProxyMode } from '../../src/lifecycle/proxy.js';
import type { WorkloadMetadata } from '../../src/model/index.js';
import { get, request, type Response } from '../helpers/client.js';
import { closedPort } from '../helpers/ports.js';
import { serviceEntry } from '../helpers/proxy.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

const METADATA: WorkloadMetadata = {
  name: 'productpage-v1-6b746f74dc-9stvs',
  namespace: 'bookinfo',
  workloadName: 'productpage-v1',
  labels: { app: 'productpage', version: 'v1' },
  clusterId: 'Kubernetes',
  meshId: 'cluster.local',
  serviceAccount: 'bookinfo-productpage',
  instanceIps: ['10.1.2.3'],
};
const NODE_ID_SUFFIX = `~10.1.2.3~${METADATA.name}.bookinfo~bookinfo.svc.cluster.local`;

/** svc:80 → the given endpoint, with a direct response on /hello. */
function svcConfig(endpointPort: number): Record<string, string> {
  return {
    'se.yaml': serviceEntry('svc', 80, [{ port: endpointPort }]),
    'vs.yaml': `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: svc}
spec:
  hosts: [svc]
  http:
  - match: [{uri: {exact: /hello}}]
    directResponse: {status: 200, body: {string: hello}}
  - route: [{destination: {host: svc}}]
`,
  };
}

interface Running {
  readonly proxy: Proxy;
  readonly logger: Logger;
  /** Log lines the proxy wrote. */
  readonly logs: string[];
  /** How many times onQuit was called. */
  readonly quits: { count: number };
  close(): Promise<void>;
}

/** A proxy in `mode` with every port picked by the OS and config (if any) in a temp folder. */
async function start(
  mode: ProxyMode,
  files: Record<string, string> = {},
  status?: Pick<StatusServerOptions, 'appScrape' | 'probes' | 'appHost'>,
): Promise<Running> {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-admin-endpoints-'));
  await mkdir(join(dir, 'config'));
  // An empty certificate folder: never Istio's mount points of the machine running the tests.
  await mkdir(join(dir, 'certs'));
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, 'config', name), text);
  const logs: string[] = [];
  const quits = { count: 0 };
  const logger = createLogger({ level: 'info', sink: (l) => logs.push(l) });
  const proxy = await Proxy.start({
    configPath: join(dir, 'config'),
    mode,
    ports: { outbound: 0, inbound: 0, admin: 0, status: 0, readiness: 0, stats: 0 },
    certificatesDir: join(dir, 'certs'),
    watch: false,
    logger,
    metadata: METADATA,
    onQuit: () => void quits.count++,
    ...(status !== undefined ? { status } : {}),
  });
  return {
    proxy,
    logger,
    logs,
    quits,
    async close() {
      await proxy.close(true);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A request to 127.0.0.1:port on a connection of its own, optionally from another loopback address. */
function call(port: number, path: string, options: { method?: string; localAddress?: string } = {}): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method: options.method ?? 'GET', agent: false, localAddress: options.localAddress }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text: () => body.toString(), json: () => JSON.parse(body.toString()) });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** 'connected', or the error code of a TCP connect to 127.0.0.1:port. */
function connectOutcome(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

/** Polls `check` until it returns a value other than undefined (or fails after `ms`). */
async function until<T>(what: string, check: () => Promise<T | undefined>, ms = 3000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A small application on 127.0.0.1:0; `handler` answers everything. */
async function startApp(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ port: number; paths: string[]; close(): Promise<void> }> {
  const paths: string[] = [];
  const server: Server = createServer((req, res) => {
    paths.push(req.url ?? '');
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    paths,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const PROMETHEUS_CONTENT_TYPE = /^text\/plain; version=0\.0\.4/;
/** One line of Envoy's /stats text as skiff writes it: `name{labels}: value`. */
const STATS_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?: (\S+)$/;

describe('admin endpoints of a standalone proxy (15000, and 15090 when asked for)', () => {
  let up: Upstream;
  let p: Running;
  const admin = (path: string, method = 'GET') => call(p.proxy.ports.admin, path, { method });

  beforeAll(async () => {
    up = await startUpstream('svc');
    p = await start('standalone', svcConfig(up.port));
  });
  afterAll(async () => {
    await p?.close();
    await up?.close();
  });

  it('/listeners lists name::address, and ?format=json the same in Envoy\'s listener_statuses', async () => {
    const text = await admin('/listeners');
    expect(text.status).toBe(200);
    expect(text.headers['content-type']).toMatch(/^text\/plain/);
    expect(text.text()).toBe(`outbound::127.0.0.1:${p.proxy.ports.outbound}\n`);
    const json = await admin('/listeners?format=json');
    expect(json.status).toBe(200);
    expect(json.headers['content-type']).toBe('application/json');
    expect(json.json()).toEqual({
      listener_statuses: [{ name: 'outbound', local_address: { socket_address: { address: '127.0.0.1', port_value: p.proxy.ports.outbound } } }],
    });
  });

  it('/server_info answers JSON with state LIVE, uptime as a duration and the node id', async () => {
    const first = await admin('/server_info');
    expect(first.status).toBe(200);
    expect(first.headers['content-type']).toBe('application/json');
    const info = first.json();
    expect(info.state).toBe('LIVE');
    expect(info.node.id).toBe(`sidecar${NODE_ID_SUFFIX}`);
    expect(info.uptime_current_epoch).toMatch(/^\d+s$/);
    expect(info.uptime_all_epochs).toMatch(/^\d+s$/);
    expect(info.command_line_options).toMatchObject({ mode: 'standalone', concurrency: 1 });
    expect(info.version).toMatch(/^skiff\//);
    await new Promise((r) => setTimeout(r, 1100));
    const later = (await admin('/server_info')).json();
    expect(parseInt(later.uptime_current_epoch, 10)).toBeGreaterThan(parseInt(info.uptime_current_epoch, 10));
  });

  it('/stats answers name{labels}: value lines, counting a request just made', async () => {
    expect((await get(p.proxy.ports.outbound, 'svc', '/x')).status).toBe(200);
    const line = await until('the request on /stats', async () => {
      const res = await admin('/stats');
      expect(res.status).toBe(200);
      return res
        .text()
        .split('\n')
        .find((l) => l.startsWith('istio_requests_total{') && l.includes('response_code="200"'));
    });
    const m = STATS_LINE.exec(line)!;
    expect(m, line).not.toBeNull();
    expect(m[2]).toContain('reporter="source"');
    expect(m[2]).toContain('source_workload="productpage-v1"');
    expect(m[3]).toBe('1');

    const all = (await admin('/stats')).text();
    expect(all.endsWith('\n')).toBe(true);
    for (const l of all.trimEnd().split('\n')) {
      const parts = STATS_LINE.exec(l);
      expect(parts, l).not.toBeNull();
      expect(Number.isNaN(Number(parts![3])), l).toBe(false);
    }
    expect(all).toMatch(/^skiff_config_version: 1$/m);
  });

  it('/stats?format=prometheus is /stats/prometheus, in the Prometheus text format', async () => {
    const viaQuery = await admin('/stats?format=prometheus');
    const viaPath = await admin('/stats/prometheus');
    for (const res of [viaQuery, viaPath]) {
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(PROMETHEUS_CONTENT_TYPE);
    }
    expect(viaQuery.text()).toBe(viaPath.text());
    expect(viaPath.text()).toMatch(/^# TYPE istio_requests_total counter$/m);
    expect(viaPath.text()).toMatch(/^skiff_config_version 1$/m);
  });

  it('15090 serves /stats/prometheus only', async () => {
    const port = p.proxy.ports.stats;
    expect(port).toBeGreaterThan(0);
    const res = await call(port, '/stats/prometheus');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(PROMETHEUS_CONTENT_TYPE);
    expect(res.text()).toBe((await admin('/stats/prometheus')).text());
    for (const path of ['/stats', '/metrics', '/ready', '/config_dump', '/', '/quitquitquit']) expect((await call(port, path)).status, path).toBe(404);
    expect((await call(port, '/quitquitquit', { method: 'POST' })).status).toBe(404);
    expect(p.quits.count).toBe(0);
  });

  describe('/logging', () => {
    afterEach(() => p.logger.setLevel('info'));

    it('GET shows the level', async () => {
      const res = await admin('/logging');
      expect(res.status).toBe(200);
      expect(res.text()).toBe('active loggers:\n  skiff: info\n');
    });

    it('POST ?level=debug changes it: debug lines reach the sink from then on', async () => {
      p.logger.debug('before the change');
      expect(p.logs.some((l) => l.includes('before the change'))).toBe(false);
      const res = await admin('/logging?level=debug', 'POST');
      expect(res.status).toBe(200);
      expect(res.text()).toBe('active loggers:\n  skiff: debug\n');
      expect(p.logger.level).toBe('debug');
      expect(p.logs.some((l) => / info +skiff: log level set to debug$/.test(l))).toBe(true);
      p.logger.child('probe').debug('after the change');
      expect(p.logs.some((l) => / debug +skiff\.probe: after the change$/.test(l))).toBe(true);
      expect((await admin('/logging')).text()).toBe('active loggers:\n  skiff: debug\n');
    });

    it('refuses an unknown level with 400 and keeps the level', async () => {
      const res = await admin('/logging?level=verbose', 'POST');
      expect(res.status).toBe(400);
      expect(res.text()).toContain('verbose');
      expect(p.logger.level).toBe('info');
    });

    it('answers 405 to a GET that would change the level', async () => {
      const res = await admin('/logging?level=debug');
      expect(res.status).toBe(405);
      expect(p.logger.level).toBe('info');
    });
  });

  it('POST /quitquitquit answers OK and calls onQuit; GET is 405 and does not', async () => {
    const before = p.quits.count;
    expect((await admin('/quitquitquit')).status).toBe(405);
    expect(p.quits.count).toBe(before);
    const res = await admin('/quitquitquit', 'POST');
    expect(res.status).toBe(200);
    expect(res.text()).toBe('OK\n');
    expect(p.quits.count).toBe(before + 1);
    // Quitting is the embedder's job: the proxy itself still serves.
    expect((await admin('/ready')).status).toBe(200);
  });
});

describe('POST /drain_listeners', () => {
  const running: Running[] = [];
  afterEach(async () => {
    await Promise.all(running.splice(0).map((r) => r.close()));
  });

  it('?inboundonly&graceful on a sidecar: inbound refuses new connections, outbound still serves, readiness fails', async () => {
    const dead = await closedPort();
    const p = await start('sidecar', svcConfig(dead));
    running.push(p);
    const { inbound, outbound, admin, readiness, status } = p.proxy.ports;
    expect(await connectOutcome(inbound)).toBe('connected');
    expect((await call(readiness, '/healthz/ready')).status).toBe(200);

    expect((await call(admin, '/drain_listeners?inboundonly&graceful')).status).toBe(405);
    expect(p.proxy.state).toBe('LIVE');
    const res = await call(admin, '/drain_listeners?inboundonly&graceful', { method: 'POST' });
    expect(res.status).toBe(200);
    expect(res.text()).toBe('OK\n');

    expect(await connectOutcome(inbound)).toBe('ECONNREFUSED');
    expect(await connectOutcome(outbound)).toBe('connected');
    // A local application still reaches the mesh through outbound (here: a direct response).
    const viaOutbound = await request(outbound, '/hello', { headers: { host: 'svc' }, agent: false });
    expect(viaOutbound.status).toBe(200);
    expect(viaOutbound.text()).toBe('hello');

    expect(p.proxy.state).toBe('DRAINING');
    const ready = await call(admin, '/ready');
    expect(ready.status).toBe(503);
    expect(ready.text()).toBe('DRAINING\n');
    for (const port of [readiness, status]) {
      const healthz = await call(port, '/healthz/ready');
      expect(healthz.status).toBe(503);
      expect(healthz.text()).toBe('the proxy is draining\n');
    }
    expect((await call(admin, '/server_info')).json().state).toBe('DRAINING');
  });

  it('without inboundonly on a standalone proxy: outbound stops accepting, a request in flight still completes', async () => {
    const held: ServerResponse[] = [];
    const up = await startUpstream('svc', (req, res) => {
      if (req.url !== '/hold') return false;
      held.push(res);
      return true;
    });
    try {
      const p = await start('standalone', svcConfig(up.port));
      running.push(p);
      const { outbound, admin, readiness } = p.proxy.ports;
      const inFlight = request(outbound, '/hold', { headers: { host: 'svc' }, agent: false });
      await until('the held request upstream', async () => (held.length > 0 ? true : undefined));

      const res = await call(admin, '/drain_listeners?graceful', { method: 'POST' });
      expect(res.status).toBe(200);
      expect(await connectOutcome(outbound)).toBe('ECONNREFUSED');
      expect((await call(admin, '/ready')).status).toBe(503);
      expect((await call(readiness, '/healthz/ready')).status).toBe(503);

      held[0]!.writeHead(200, { 'content-type': 'text/plain' });
      held[0]!.end('finished');
      const done = await inFlight;
      expect(done.status).toBe(200);
      expect(done.text()).toBe('finished');
      expect(done.headers['connection']).toBe('close');
    } finally {
      for (const r of held) if (!r.writableEnded) r.end();
      await up.close();
    }
  });
});

describe('status server (15020)', () => {
  const APP_METRICS = '# HELP app_requests_total Requests the app served.\n# TYPE app_requests_total counter\napp_requests_total{path="/"} 42\n';
  let app: Awaited<ReturnType<typeof startApp>>;
  /** What the app's /healthz answers. */
  let health = 200;
  let p: Running;
  let dead: number;
  const status = (path: string, options: { method?: string; localAddress?: string } = {}) => call(p.proxy.ports.status, path, options);

  beforeAll(async () => {
    app = await startApp((req, res) => {
      if (req.url === '/metrics') {
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
        res.end(APP_METRICS);
      } else {
        res.writeHead(req.url === '/healthz' ? health : 404);
        res.end();
      }
    });
    dead = await closedPort();
    const probers = JSON.stringify({
      '/app-health/app/livez': { httpGet: { path: '/healthz', port: app.port, scheme: 'HTTP' }, timeoutSeconds: 2 },
      '/app-health/app/readyz': { tcpSocket: { port: app.port }, timeoutSeconds: 2 },
      '/app-health/gone/livez': { httpGet: { path: '/healthz', port: dead }, timeoutSeconds: 2 },
      '/app-health/gone/readyz': { tcpSocket: { port: dead }, timeoutSeconds: 2 },
    });
    p = await start('gateway', {}, { appScrape: { port: app.port, path: '/metrics' }, probes: parseAppProbers(probers), appHost: '127.0.0.1' });
  });
  afterAll(async () => {
    await p?.close();
    await app?.close();
  });

  it('a gateway with no Gateway resources listens on no data port but serves status', () => {
    expect(p.proxy.ports.gateway).toEqual([]);
    expect(p.proxy.ports.status).toBeGreaterThan(0);
  });

  it('/stats/prometheus and /metrics merge skiff\'s metrics with the application\'s', async () => {
    for (const path of ['/stats/prometheus', '/metrics']) {
      const before = app.paths.length;
      const res = await status(path);
      expect(res.status, path).toBe(200);
      expect(res.headers['content-type']).toMatch(PROMETHEUS_CONTENT_TYPE);
      const text = res.text();
      expect(text).toMatch(/^skiff_config_version 1$/m);
      expect(text).toMatch(/^app_requests_total\{path="\/"\} 42$/m);
      expect(text).toContain(APP_METRICS);
      expect(text.indexOf('skiff_config_version')).toBeLessThan(text.indexOf('app_requests_total'));
      expect(app.paths.slice(before)).toEqual(['/metrics']);
    }
  });

  it('/healthz/ready answers 200 while live', async () => {
    const res = await status('/healthz/ready');
    expect(res.status).toBe(200);
    expect(res.text()).toBe('');
  });

  it('/app-health/app/livez runs the httpGet probe against the application', async () => {
    health = 200;
    expect((await status('/app-health/app/livez')).status).toBe(200);
    expect(app.paths.at(-1)).toBe('/healthz');
    health = 500;
    try {
      const failing = await status('/app-health/app/livez');
      expect(failing.status).toBe(500);
      expect(failing.text()).toContain('500');
    } finally {
      health = 200;
    }
    const down = await status('/app-health/gone/livez');
    expect(down.status).toBe(500);
    expect(down.text()).toContain(`127.0.0.1:${dead}`);
  });

  it('/app-health/app/readyz runs the tcpSocket probe: 200 while listening, 500 on a closed port', async () => {
    expect((await status('/app-health/app/readyz')).status).toBe(200);
    const closed = await status('/app-health/gone/readyz');
    expect(closed.status).toBe(500);
    expect(closed.text()).toContain(`127.0.0.1:${dead}`);
  });

  it('answers 404 for a probe path that was not registered', async () => {
    for (const path of ['/app-health/app/startupz', '/app-health/other/livez', '/app-health/']) {
      const res = await status(path);
      expect(res.status, path).toBe(404);
      expect(res.text()).toContain(path);
    }
    expect((await status('/no-such-endpoint')).status).toBe(404);
  });

  it('POST /quitquitquit from loopback calls onQuit; from 127.0.0.6 (inbound passthrough) it is refused', async () => {
    const before = p.quits.count;
    expect((await status('/quitquitquit')).status).toBe(405);
    expect((await status('/quitquitquit', { method: 'POST', localAddress: '127.0.0.6' })).status).toBe(403);
    expect(p.quits.count).toBe(before);
    const res = await status('/quitquitquit', { method: 'POST' });
    expect(res.status).toBe(200);
    expect(p.quits.count).toBe(before + 1);
  });

  // Last: draining is for good.
  it('POST /drain from loopback answers 200 and the proxy drains; GET and non-local callers are refused', async () => {
    expect((await status('/drain')).status).toBe(405);
    expect((await status('/drain', { method: 'POST', localAddress: '127.0.0.6' })).status).toBe(403);
    expect(p.proxy.state).toBe('LIVE');
    const res = await status('/drain', { method: 'POST' });
    expect(res.status).toBe(200);
    expect(res.text()).toBe('OK\n');
    expect(p.proxy.state).toBe('DRAINING');
    expect((await status('/healthz/ready')).status).toBe(503);
    expect((await call(p.proxy.ports.readiness, '/healthz/ready')).status).toBe(503);
    expect((await call(p.proxy.ports.admin, '/ready')).text()).toBe('DRAINING\n');
  });
});

describe('status server (15020) when the application cannot be scraped', () => {
  const running: Running[] = [];
  let broken: Awaited<ReturnType<typeof startApp>>;

  beforeAll(async () => {
    broken = await startApp((_req, res) => {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('app_broken 1\n');
    });
  });
  afterAll(async () => {
    await Promise.all(running.splice(0).map((r) => r.close()));
    await broken?.close();
  });

  it.each([
    ['down (closed port)', async () => closedPort()],
    ['answering 500', async () => broken.port],
  ])("still answers skiff's metrics with 200 when the application is %s", async (_what, appPort) => {
    const p = await start('sidecar', {}, { appScrape: { port: await appPort(), path: '/metrics' }, appHost: '127.0.0.1' });
    running.push(p);
    for (const path of ['/stats/prometheus', '/metrics']) {
      const res = await call(p.proxy.ports.status, path);
      expect(res.status, path).toBe(200);
      expect(res.headers['content-type']).toMatch(PROMETHEUS_CONTENT_TYPE);
      expect(res.text()).toMatch(/^skiff_config_version 1$/m);
      expect(res.text()).not.toContain('app_broken');
      expect(res.text()).toBe((await call(p.proxy.ports.admin, '/stats/prometheus')).text());
    }
    // No probes were given: every probe path is unknown.
    expect((await call(p.proxy.ports.status, '/app-health/app/livez')).status).toBe(404);
  });
});
