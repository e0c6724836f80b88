/**
 * Starting the processes a benchmark compares: the upstream (nginx, else a Node server), the
 * peer proxies (HAProxy with nbthread 1, nginx proxy_pass with one worker) and skiff. Every
 * process runs in its own process group so stopping it also stops its workers.
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

export function haproxyVersion() {
  return /version (\S+)/.exec(execFileSync('haproxy', ['-v'], { encoding: 'utf8' }))?.[1] ?? '?';
}

/** HAProxy config: one frontend and `backends` backends chosen by Host (svc0 … svcN-1). */
export function haproxyConfig(port, upstreamPort, backends = 1) {
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
    `  bind 127.0.0.1:${port}`,
  ];
  if (backends > 1) {
    for (let i = 0; i < backends; i++) lines.push(`  use_backend svc${i} if { hdr(host) -i svc${i} svc${i}:80 }`);
  }
  lines.push('  default_backend svc0');
  for (let i = 0; i < backends; i++) lines.push(`backend svc${i}`, '  http-reuse always', `  server s1 127.0.0.1:${upstreamPort}`);
  return lines.join('\n') + '\n';
}

/** HAProxy in master-worker mode (so SIGUSR2 reloads it), nbthread 1. */
export async function startHaproxy(work, upstreamPort, { backends = 1, name = 'haproxy.cfg' } = {}) {
  const port = await freePort();
  const cfg = join(work, name);
  writeFileSync(cfg, haproxyConfig(port, upstreamPort, backends));
  const proc = launch('haproxy', ['-W', '-db', '-f', cfg]);
  await waitForPort(port);
  return {
    key: 'haproxy',
    name: `HAProxy ${haproxyVersion()} (nbthread 1)`,
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

/** The mesh skiff routes with in the benchmarks: a ServiceEntry and a VirtualService for `hello`. */
export function helloMesh(upstreamPort, variant = 0) {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: hello}
spec:
  hosts: [hello]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: ${upstreamPort}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: hello}
spec:
  hosts: [hello]
  http:
  - name: all
    match: [{uri: {prefix: /}}]
    route: [{destination: {host: hello}}]
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
