/**
 * P5: start to ready. Each proxy is started fresh, several times, and timed from spawn to its
 * first proxied 200 (and, for skiff, to 200 on GET /healthz/ready). Medians are reported.
 */
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { freePort, until200 } from '../lib/net.mjs';
import { SKIFF_BIN, has, haproxyConfig, launch } from '../lib/peers.mjs';
import { median } from '../lib/stats.mjs';

/**
 * Starts skiff on `meshDir` and times it to /healthz/ready and to its first proxied 200 (a
 * request with Host `host`). The caller stops the returned process.
 */
export async function timeSkiffStart(meshDir, host = 'hello') {
  // A free port can be taken by another socket before skiff binds it: then start again.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const readiness = await freePort();
    const t0 = performance.now();
    const proc = launch(process.execPath, [
      SKIFF_BIN, 'run', '-c', meshDir, '--outbound-port', String(port), '--admin-port', '0',
      '--readiness-port', String(readiness), '--log-level', 'warn',
    ]);
    const exited = proc.exited.then((code) => {
      throw new Error(`skiff exited with code ${code} before it was ready: ${proc.stderr().trim()}`);
    });
    try {
      const readyMs = await Promise.race([until200(readiness, '/healthz/ready', 'localhost', t0, 30_000), exited]);
      const firstMs = await Promise.race([until200(port, '/', host, t0, 30_000), exited]);
      exited.catch(() => undefined);
      return { readyMs, firstMs, pid: proc.pid, stop: () => proc.stop() };
    } catch (err) {
      proc.stop();
      exited.catch(() => undefined);
      if (attempt < 3 && /EADDRINUSE/.test(String(err))) continue;
      throw err;
    }
  }
}

export async function timeHaproxyStart(work, upstreamPort, backends = 1, host = 'hello') {
  const port = await freePort();
  const cfg = join(work, `haproxy-start-${backends}.cfg`);
  writeFileSync(cfg, haproxyConfig(port, upstreamPort, backends));
  const t0 = performance.now();
  const proc = launch('haproxy', ['-W', '-db', '-f', cfg]);
  try {
    const firstMs = await until200(port, '/', host, t0, 30_000);
    return { firstMs, pid: proc.pid, stop: () => proc.stop() };
  } catch (err) {
    proc.stop();
    throw err;
  }
}

export async function timeNginxStart(work, upstreamPort) {
  const port = await freePort();
  const conf = join(work, 'nginx-start.conf');
  writeFileSync(
    conf,
    `worker_processes 1; daemon off; pid ${work}/nginx-start.pid; error_log ${work}/nginx-start-error.log;
events { worker_connections 1024; }
http { access_log off; upstream u { server 127.0.0.1:${upstreamPort}; keepalive 16; }
  server { listen 127.0.0.1:${port}; location / { proxy_pass http://u; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
`,
  );
  const t0 = performance.now();
  const proc = launch('nginx', ['-c', conf, '-p', work]);
  try {
    return { firstMs: await until200(port, '/', 'hello', t0, 30_000) };
  } finally {
    proc.stop();
  }
}

export async function startup(ctx) {
  const { work, upstream, settings, step, meshDir } = ctx;
  const out = { skiff: [], haproxy: [], nginx: [] };
  for (let i = 1; i <= settings.startRuns; i++) {
    step(`P5 start ${i}/${settings.startRuns} skiff`);
    const s = await timeSkiffStart(meshDir);
    s.stop();
    out.skiff.push(s);
    if (has('haproxy')) {
      step(`P5 start ${i}/${settings.startRuns} haproxy`);
      const h = await timeHaproxyStart(work, upstream.port);
      h.stop();
      out.haproxy.push(h);
    }
    if (has('nginx')) {
      step(`P5 start ${i}/${settings.startRuns} nginx`);
      out.nginx.push(await timeNginxStart(work, upstream.port));
    }
  }
  return {
    skiff: { readyMs: median(out.skiff.map((x) => x.readyMs)), firstMs: median(out.skiff.map((x) => x.firstMs)) },
    haproxy: out.haproxy.length ? { firstMs: median(out.haproxy.map((x) => x.firstMs)) } : undefined,
    nginx: out.nginx.length ? { firstMs: median(out.nginx.map((x) => x.firstMs)) } : undefined,
  };
}
