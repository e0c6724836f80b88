#!/usr/bin/env node
/**
 * Load benchmark: skiff against the direct path and real peer proxies, side by side in one run.
 *
 *   npm run bench [-- --quick | --smoke] [-- --duration 5] [-- --rounds 3] [-- --connections 32]
 *
 * Upstream: nginx (one worker, tiny response) when installed, else a small Node server.
 * Targets: direct, HAProxy 2.x (nbthread 1), nginx proxy_pass (one worker), skiff (routing
 * through a VirtualService). Missing peers are reported and skipped. Each round runs every
 * target once, in turn, with wrk -t1; the median over rounds is reported, with each figure as
 * a ratio to HAProxy's in the same run. Results go to bench/results/latest.{json,md}.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const flag = (name) => args.includes(`--${name}`);
const option = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i === -1 ? fallback : Number(args[i + 1]);
};
const quick = flag('quick');
/** --smoke: seconds-long run that checks the harness end to end (CI); results go to smoke.*. */
const smoke = flag('smoke');
const DURATION = option('duration', smoke ? 1 : quick ? 3 : 5);
const ROUNDS = option('rounds', smoke || quick ? (smoke ? 1 : 2) : 3);
const CONNECTIONS = option('connections', 32);
const WARMUP = smoke ? 1 : quick ? 2 : 3;
const RESULT_NAME = smoke ? 'smoke' : 'latest';

const which = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (m) => process.stderr.write(m + '\n');

function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function canConnect(port) {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function waitForPort(port, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await canConnect(port)) return;
    await sleep(50);
  }
  throw new Error(`nothing listening on ${port}`);
}

const work = mkdtempSync(join(tmpdir(), 'skiff-bench-'));
const children = [];
function start(cmd, argv, opts = {}) {
  // Each peer gets its own process group, so cleanup also reaches nginx's worker processes.
  const child = spawn(cmd, argv, { stdio: ['ignore', 'ignore', 'pipe'], detached: true, ...opts });
  let stderr = '';
  child.stderr.on('data', (c) => (stderr += c));
  child.stderrText = () => stderr;
  children.push(child);
  return child;
}
function cleanup() {
  for (const c of children) {
    try {
      process.kill(-c.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  rmSync(work, { recursive: true, force: true });
}
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

/** Process CPU seconds (user+sys) from /proc/PID/stat. */
function cpuSeconds(pid) {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return NaN;
  }
}

function parseWrk(out) {
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
  const lat = (label) => {
    const m = new RegExp(`\\s${label}\\s+([\\d.]+)(us|ms|s)`).exec(out);
    if (!m) return NaN;
    const v = Number(m[1]);
    return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
  };
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const socketErrors = errors ? errors.slice(1).reduce((s, x) => s + Number(x), 0) : 0;
  return { rps, p50: lat('50%'), p99: lat('99%'), failures: non2xx + socketErrors };
}

function wrk(port, seconds, host = 'hello') {
  const out = execFileSync('wrk', ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '--latency', '-H', `Host: ${host}`, `http://127.0.0.1:${port}/`], {
    encoding: 'utf8',
  });
  return parseWrk(out);
}

const median = (xs) => {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function main() {
  if (!which('wrk')) {
    log('wrk is not installed: run bench/setup (apt-get install wrk haproxy nginx) first');
    process.exit(1);
  }
  const notes = [];
  const targets = [];

  // === upstream ===
  const upstreamPort = await freePort();
  let upstreamKind;
  if (which('nginx')) {
    upstreamKind = 'nginx (1 worker, return 200)';
    writeFileSync(
      join(work, 'upstream.conf'),
      `worker_processes 1; daemon off; pid ${work}/upstream.pid; error_log ${work}/upstream-error.log;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:${upstreamPort}; location / { return 200 "hello\\n"; } } }
`,
    );
    start('nginx', ['-c', join(work, 'upstream.conf'), '-p', work]);
  } else {
    upstreamKind = 'node:http (nginx not installed)';
    notes.push('nginx not installed: the upstream is a Node server and the nginx peer is skipped');
    writeFileSync(
      join(work, 'upstream.mjs'),
      `import { createServer } from 'node:http';
createServer((q, s) => { s.writeHead(200, {'content-type': 'text/plain', 'content-length': 6}); s.end('hello\\n'); })
  .listen(${upstreamPort}, '127.0.0.1');`,
    );
    start(process.execPath, [join(work, 'upstream.mjs')]);
  }
  await waitForPort(upstreamPort);
  targets.push({ name: 'direct', port: upstreamPort, pid: undefined });

  // === HAProxy ===
  if (which('haproxy')) {
    const port = await freePort();
    writeFileSync(
      join(work, 'haproxy.cfg'),
      `global
  nbthread 1
  maxconn 4000
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
frontend fe
  bind 127.0.0.1:${port}
  default_backend be
backend be
  http-reuse always
  server s1 127.0.0.1:${upstreamPort}
`,
    );
    const child = start('haproxy', ['-f', join(work, 'haproxy.cfg'), '-db']);
    await waitForPort(port);
    const version = /version (\S+)/.exec(execFileSync('haproxy', ['-v'], { encoding: 'utf8' }))?.[1] ?? '?';
    targets.push({ name: `HAProxy ${version} (nbthread 1)`, key: 'haproxy', port, pid: child.pid });
  } else {
    notes.push('haproxy not installed: skipped (ratios cannot be computed)');
  }

  // === nginx proxy_pass ===
  if (which('nginx')) {
    const port = await freePort();
    writeFileSync(
      join(work, 'proxy.conf'),
      `worker_processes 1; daemon off; pid ${work}/proxy.pid; error_log ${work}/proxy-error.log;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  upstream u { server 127.0.0.1:${upstreamPort}; keepalive 64; }
  server { listen 127.0.0.1:${port};
    location / { proxy_pass http://u; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
`,
    );
    const child = start('nginx', ['-c', join(work, 'proxy.conf'), '-p', work]);
    await waitForPort(port);
    await sleep(100);
    const worker = spawnSync('pgrep', ['-P', String(child.pid)], { encoding: 'utf8' }).stdout.trim().split('\n')[0];
    targets.push({ name: 'nginx proxy_pass (1 worker)', key: 'nginx', port, pid: Number(worker) || undefined });
  }

  // === skiff ===
  const mesh = join(work, 'mesh');
  mkdirSync(mesh);
  writeFileSync(
    join(mesh, 'hello.yaml'),
    `apiVersion: networking.istio.io/v1
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
`,
  );
  const skiffPort = await freePort();
  const skiff = start(process.execPath, [
    join(ROOT, 'dist/cli/main.js'), 'run', '-c', mesh,
    '--outbound-port', String(skiffPort), '--admin-port', '0', '--readiness-port', '0', '--log-level', 'warn',
  ]);
  await waitForPort(skiffPort);
  targets.push({ name: 'skiff (VirtualService route)', key: 'skiff', port: skiffPort, pid: skiff.pid });

  // === runs ===
  log(`upstream: ${upstreamKind}; wrk -t1 -c${CONNECTIONS}, ${ROUNDS} round(s) of ${DURATION}s per target after a ${WARMUP}s warm-up`);
  for (const t of targets) wrk(t.port, WARMUP);
  const samples = new Map(targets.map((t) => [t.name, []]));
  for (let r = 1; r <= ROUNDS; r++) {
    for (const t of targets) {
      const before = t.pid ? cpuSeconds(t.pid) : NaN;
      const res = wrk(t.port, DURATION);
      const cpu = t.pid ? cpuSeconds(t.pid) - before : NaN;
      res.cpuUsPerReq = (cpu / (res.rps * DURATION)) * 1e6;
      samples.get(t.name).push(res);
      log(`round ${r}/${ROUNDS} ${t.name.padEnd(30)} ${res.rps.toFixed(0).padStart(7)} req/s  p50 ${res.p50.toFixed(2)} ms  p99 ${res.p99.toFixed(2)} ms${res.failures ? `  FAILURES ${res.failures}` : ''}`);
    }
  }
  const rows = targets.map((t) => {
    const s = samples.get(t.name);
    return {
      target: t.name,
      key: t.key ?? t.name,
      rps: median(s.map((x) => x.rps)),
      p50: median(s.map((x) => x.p50)),
      p99: median(s.map((x) => x.p99)),
      cpuUsPerReq: median(s.map((x) => x.cpuUsPerReq)),
      failures: s.reduce((n, x) => n + x.failures, 0),
    };
  });
  const haproxy = rows.find((r) => r.key === 'haproxy');
  for (const r of rows) r.vsHaproxy = haproxy ? r.rps / haproxy.rps : NaN;

  const fmt = (x, d = 0) => (Number.isNaN(x) ? '–' : x.toFixed(d));
  const table = [
    '| path | req/s | vs HAProxy | p50 ms | p99 ms | proxy CPU µs/req | failed |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.target} | ${fmt(r.rps)} | ${fmt(r.vsHaproxy, 2)} | ${fmt(r.p50, 2)} | ${fmt(r.p99, 2)} | ${fmt(r.cpuUsPerReq, 1)} | ${r.failures} |`),
  ].join('\n');
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.versions.node}`;
  const command = `npm run bench${args.length ? ' -- ' + args.join(' ') : ''}`;
  const md = `# skiff load benchmark\n\n${new Date().toISOString()} · ${machine}\n\nCommand: \`${command}\` · wrk -t1 -c${CONNECTIONS}, median of ${ROUNDS} × ${DURATION}s · upstream: ${upstreamKind}\n\n${table}\n${notes.length ? '\n' + notes.map((n) => `- ${n}`).join('\n') + '\n' : ''}`;
  const resultsDir = join(ROOT, 'bench/results');
  mkdirSync(resultsDir, { recursive: true });
  writeFileSync(join(resultsDir, `${RESULT_NAME}.md`), md);
  writeFileSync(
    join(resultsDir, `${RESULT_NAME}.json`),
    JSON.stringify({ date: new Date().toISOString(), machine, command, connections: CONNECTIONS, durationS: DURATION, rounds: ROUNDS, upstream: upstreamKind, rows, notes }, null, 2) + '\n',
  );
  process.stdout.write('\n' + md);
  const skiffRow = rows.find((r) => r.key === 'skiff');
  if (skiffRow.failures > 0 || !(skiffRow.rps > 0)) {
    log(`skiff failed ${skiffRow.failures} requests (${skiffRow.rps} req/s)`);
    process.exitCode = 1;
  }
}

main()
  .catch((err) => {
    log(`bench failed: ${err.stack ?? err}`);
    for (const c of children) if (c.stderrText?.()) log(c.stderrText().slice(-2000));
    process.exitCode = 1;
  })
  .finally(() => process.exit());
