/**
 * Starting the processes a benchmark compares: the upstream (nginx, else a Node server), the
 * HTTP/2 upstreams of P8 (nginx h2c, else node:http2) and P9 (@grpc/grpc-js), the peer proxies
 * (HAProxy with nbthread 1, nginx proxy_pass with one worker) and skiff. Every process runs in
 * its own process group so stopping it also stops its workers.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, sleep, waitForPort } from './net.mjs';
import { childPids } from './proc.mjs';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
export const SKIFF_BIN = join(ROOT, 'dist/cli/main.js');

export const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

/** A 1 KiB response body (P2) next to the tiny one (P1). */
export const ONE_KB = 'x'.repeat(1023) + '\n';

const running = new Set();

/** Starts a process in its own group; `stop` kills the group. */
export function launch(cmd, argv, options = {}) {
  const child = spawn(cmd, argv, { stdio: ['ignore', 'ignore', 'pipe'], detached: true, ...options });
  let stderr = '';
  child.stderr?.on('data', (c) => {
    stderr = (stderr + c).slice(-4000);
  });
  const handle = {
    child,
    pid: child.pid,
    stderr: () => stderr,
    /** Resolves with the exit code when the process ends. */
    exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))),
    stop() {
      running.delete(handle);
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    },
  };
  running.add(handle);
  return handle;
}

/** Kills everything still running (process exit). */
export function stopAll() {
  for (const h of [...running]) h.stop();
}

/** The pids whose CPU and memory count for a proxy: the process and its children (workers). */
export function processTree(pid) {
  return [pid, ...childPids(pid)];
}

export async function startUpstream(work) {
  const port = await freePort();
  if (has('nginx')) {
    const conf = join(work, 'upstream.conf');
    writeFileSync(
      conf,
      `worker_processes 1; daemon off; pid ${work}/upstream.pid; error_log ${work}/upstream-error.log;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; client_body_buffer_size 64k;
  server { listen 127.0.0.1:${port};
    location = /1k { return 200 "${ONE_KB.replace(/\n/, '\\n')}"; }
    location / { return 200 "hello\\n"; } } }
`,
    );
    const proc = launch('nginx', ['-c', conf, '-p', work]);
    await waitForPort(port);
    return { kind: 'nginx 1 worker (return 200)', port, proc };
  }
  const script = join(work, 'upstream.mjs');
  writeFileSync(
    script,
    `import { createServer } from 'node:http';
const big = ${JSON.stringify(ONE_KB)};
createServer((q, s) => { q.resume(); q.on('end', () => { const b = q.url === '/1k' ? big : 'hello\\n';
  s.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(b) }); s.end(b); }); })
  .listen(${port}, '127.0.0.1');`,
  );
  const proc = launch(process.execPath, [script]);
  await waitForPort(port);
  return { kind: 'node:http (nginx is not installed)', port, proc };
}

/** Whether the installed nginx has the HTTP/2 module (`listen … http2` without TLS is h2c). */
export const nginxHasH2 = () => has('nginx') && /--with-http_v2_module/.test(spawnSync('nginx', ['-V'], { encoding: 'utf8' }).stderr ?? '');

/**
 * The P8 upstream: HTTP/2 over cleartext with prior knowledge (h2c) only, answering "hello\n".
 * nginx with one worker when it has the HTTP/2 module, else a node:http2 server.
 */
export async function startH2Upstream(work) {
  const port = await freePort();
  if (nginxHasH2()) {
    const conf = join(work, 'upstream-h2.conf');
    // keepalive_requests also caps the requests of an HTTP/2 connection (nginx ≥ 1.19.7).
    writeFileSync(
      conf,
      `worker_processes 1; daemon off; pid ${work}/upstream-h2.pid; error_log ${work}/upstream-h2-error.log;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; http2_max_concurrent_streams 256;
  server { listen 127.0.0.1:${port} http2;
    location / { return 200 "hello\\n"; } } }
`,
    );
    const proc = launch('nginx', ['-c', conf, '-p', work]);
    await waitForPort(port);
    return { kind: 'nginx 1 worker (h2c)', port, proc };
  }
  const script = join(work, 'upstream-h2.mjs');
  writeFileSync(
    script,
    `import { createServer } from 'node:http2';
createServer((q, s) => { q.resume(); q.on('end', () => { s.writeHead(200, { 'content-type': 'text/plain', 'content-length': 6 }); s.end('hello\\n'); }); })
  .listen(${port}, '127.0.0.1');`,
  );
  const proc = launch(process.execPath, [script]);
  await waitForPort(port);
  return { kind: 'node:http2 (h2c; nginx has no HTTP/2)', port, proc };
}

/** The P9 upstream: bench/lib/grpc-echo.mjs, a @grpc/grpc-js server with one unary echo method. */
export async function startGrpcUpstream() {
  const port = await freePort();
  const proc = launch(process.execPath, [join(ROOT, 'bench/lib/grpc-echo.mjs'), String(port)]);
  await waitForPort(port);
  return { kind: '@grpc/grpc-js echo server', port, proc };
}

export function haproxyVersion() {
  return /version (\S+)/.exec(execFileSync('haproxy', ['-v'], { encoding: 'utf8' }))?.[1] ?? '?';
}

/**
 * HAProxy config: one frontend and `backends` backends chosen by Host (svc0 … svcN-1). With
 * `h2`, the frontend takes h2c with prior knowledge and the servers are reached over h2c.
 */
export function haproxyConfig(port, upstreamPort, backends = 1, { h2 = false } = {}) {
  const proto = h2 ? ' proto h2' : '';
  const lines = [
    'global',
    '  nbthread 1',
    '  maxconn 4000',
    'defaults',
    '  mode http',
    '  timeout connect 5s',
    '  timeout client 30s',
    '  timeout server 30s',
    '  option http-keep-alive',
    'frontend fe',
    `  bind 127.0.0.1:${port}${proto}`,
  ];
  if (backends > 1) {
    for (let i = 0; i < backends; i++) lines.push(`  use_backend svc${i} if { hdr(host) -i svc${i} svc${i}:80 }`);
  }
  lines.push('  default_backend svc0');
  for (let i = 0; i < backends; i++) lines.push(`backend svc${i}`, '  http-reuse always', `  server s1 127.0.0.1:${upstreamPort}${proto}`);
  return lines.join('\n') + '\n';
}

/** HAProxy in master-worker mode (so SIGUSR2 reloads it), nbthread 1; `h2` as in haproxyConfig. */
export async function startHaproxy(work, upstreamPort, { backends = 1, name = 'haproxy.cfg', h2 = false } = {}) {
  const port = await freePort();
  const cfg = join(work, name);
  writeFileSync(cfg, haproxyConfig(port, upstreamPort, backends, { h2 }));
  const proc = launch('haproxy', ['-W', '-db', '-f', cfg]);
  await waitForPort(port);
  return {
    key: 'haproxy',
    name: `HAProxy ${haproxyVersion()} (nbthread 1${h2 ? ', h2c both sides' : ''})`,
    port,
    proc,
    reload: () => process.kill(proc.pid, 'SIGUSR2'),
  };
}

export async function startNginxProxy(work, upstreamPort) {
  const port = await freePort();
  const conf = join(work, 'proxy.conf');
  writeFileSync(
    conf,
    `worker_processes 1; daemon off; pid ${work}/proxy.pid; error_log ${work}/proxy-error.log;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  upstream u { server 127.0.0.1:${upstreamPort}; keepalive 64; }
  server { listen 127.0.0.1:${port};
    location / { proxy_pass http://u; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
`,
  );
  const proc = launch('nginx', ['-c', conf, '-p', work]);
  await waitForPort(port);
  await sleep(50);
  return {
    key: 'nginx',
    name: 'nginx proxy_pass (1 worker)',
    port,
    proc,
    reload: () => process.kill(proc.pid, 'SIGHUP'),
  };
}

/**
 * The mesh skiff routes with in the benchmarks: a ServiceEntry and a VirtualService for `host`
 * (default `hello`). The ServiceEntry port's `protocol` is what skiff speaks to the upstream:
 * HTTP is HTTP/1.1, HTTP2 and GRPC are HTTP/2 (P8, P9).
 */
export function helloMesh(upstreamPort, variant = 0, { host = 'hello', protocol = 'HTTP' } = {}) {
  const portName = protocol.toLowerCase();
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ${host}}
spec:
  hosts: [${host}]
  ports: [{number: 80, name: ${portName}, protocol: ${protocol}}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {${portName}: ${upstreamPort}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ${host}}
spec:
  hosts: [${host}]
  http:
  - name: all
    match: [{uri: {prefix: /}}]
    route: [{destination: {host: ${host}}}]
    headers: {response: {set: {x-config-variant: "${variant}"}}}
`;
}

export function writeMesh(dir, files) {
  mkdirSync(dir, { recursive: true });
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

/** Starts `skiff run` on a free port; resolves once the outbound port accepts connections. */
export async function startSkiff(meshDir, { wait = true } = {}) {
  const port = await freePort();
  const readiness = await freePort();
  const proc = launch(process.execPath, [
    SKIFF_BIN, 'run', '-c', meshDir, '--outbound-port', String(port), '--admin-port', '0',
    '--readiness-port', String(readiness), '--log-level', 'warn',
  ]);
  if (wait) await waitForPort(port);
  return { key: 'skiff', name: 'skiff (VirtualService route)', port, readiness, proc };
}
