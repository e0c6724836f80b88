#!/usr/bin/env node
/**
 * The load harness: skiff against the direct path and real peer proxies, side by side in one run.
 *
 *   npm run bench                 default run (about 7 minutes)
 *   npm run bench -- --quick      short run (about 2 minutes)
 *   npm run bench -- --smoke      seconds-long run that checks the harness end to end (CI)
 *   npm run bench -- --only P1,P2 a subset of scenarios
 *
 * Upstream: nginx (one worker) when installed, else a small Node server. Peers: HAProxy
 * (nbthread 1) and nginx proxy_pass (one worker); a missing peer is reported and skipped
 * (`bench/setup` installs them). Scenarios follow reference/performance.md:
 *   P1 maximum throughput (wrk)         P5 start to ready
 *   P2 latency at 1000 req/s (open-loop) P6 config scale (1000 services)
 *   P3 CPU at 1000 req/s                P7 20 reloads under load
 *   P4 RSS at 1000 req/s                P8 HTTP/2, h2load -c4 -m100 (h2c upstream)
 *                                       P9 gRPC unary, h2load -c4 -m100 (@grpc/grpc-js)
 * P8 and P9 start their own upstream, HAProxy (h2c both sides) and skiff, and need h2load
 * (nghttp2-client); without it they are reported and skipped.
 * Output: a progress bar, a table in the terminal, and bench/results/latest.{json,md,svg}
 * (smoke.* for --smoke). Every figure is also given as a ratio to HAProxy's in the same run.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import cliProgress from 'cli-progress';
import { has, helloMesh, ROOT, startHaproxy, startNginxProxy, startSkiff, startUpstream, stopAll, writeMesh } from './lib/peers.mjs';
import { rssMb } from './lib/proc.mjs';
import { buildRows, markdownTable, svgChart, terminalTable } from './lib/report.mjs';
import { configScale } from './scenarios/config-scale.mjs';
import { grpcUnary } from './scenarios/grpc.mjs';
import { http2 } from './scenarios/http2.mjs';
import { latency } from './scenarios/latency.mjs';
import { reloads } from './scenarios/reload.mjs';
import { startup } from './scenarios/startup.mjs';
import { throughput } from './scenarios/throughput.mjs';

const args = process.argv.slice(2);
const flag = (name) => args.includes(`--${name}`);
const option = (name) => {
  const i = args.indexOf(`--${name}`);
  return i === -1 ? undefined : args[i + 1];
};
const mode = flag('smoke') ? 'smoke' : flag('quick') ? 'quick' : 'default';
const SETTINGS = {
  smoke: { rounds: 1, throughputS: 1, warmupS: 0, latencyRounds: 1, latencyS: 1, startRuns: 1, services: 100, reloadS: 3 },
  quick: { rounds: 2, throughputS: 3, warmupS: 2, latencyRounds: 1, latencyS: 4, startRuns: 3, services: 1000, reloadS: 5 },
  default: { rounds: 3, throughputS: 5, warmupS: 3, latencyRounds: 3, latencyS: 10, startRuns: 5, services: 1000, reloadS: 10 },
}[mode];
const only = option('only')?.split(',').map((s) => s.trim().toUpperCase());
const wanted = (id) => only === undefined || only.includes(id);

const log = (m) => process.stderr.write(m + '\n');

/** Progress: a bar on a terminal, one line per step otherwise (CI logs). */
function progress(total) {
  if (!process.stderr.isTTY) {
    let n = 0;
    return { step: (name) => log(`[${++n}/${total}] ${name}`), stop: () => {} };
  }
  const bar = new cliProgress.SingleBar(
    { format: 'bench [{bar}] {value}/{total} {step}', hideCursor: true, clearOnComplete: true, stream: process.stderr },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0, { step: '' });
  return { step: (name) => bar.increment(1, { step: name }), stop: () => bar.stop() };
}

async function main() {
  for (const tool of ['wrk']) {
    if (!has(tool)) {
      log(`${tool} is not installed: run bench/setup (apt-get install wrk haproxy nginx-light nghttp2-client) first`);
      process.exit(1);
    }
  }
  const notes = [];
  const work = mkdtempSync(join(tmpdir(), 'skiff-bench-'));
  process.on('exit', () => {
    stopAll();
    rmSync(work, { recursive: true, force: true });
  });

  const upstream = await startUpstream(work);
  if (!has('nginx')) notes.push('nginx is not installed: the upstream is a Node server and the nginx peer is skipped');
  const targets = [{ key: 'direct', name: 'direct to upstream', port: upstream.port }];
  if (has('haproxy')) targets.push(await startHaproxy(work, upstream.port));
  else notes.push('haproxy is not installed: HAProxy figures and ratios are missing');
  if (has('nginx')) targets.push(await startNginxProxy(work, upstream.port));
  const meshDir = writeMesh(join(work, 'mesh'), { 'hello.yaml': helloMesh(upstream.port) });
  targets.push(await startSkiff(meshDir));

  const h2 = has('h2load');
  if (!h2 && (wanted('P8') || wanted('P9'))) notes.push('h2load is not installed (nghttp2-client): P8 and P9 are skipped');
  const peers = targets.length;
  const reloadable = targets.filter((t) => t.reload).length;
  // P8 and P9 measure direct, HAProxy (when installed) and skiff.
  const h2Runs = (2 + (has('haproxy') ? 1 : 0)) * ((SETTINGS.warmupS > 0 ? 1 : 0) + SETTINGS.rounds);
  const steps =
    (wanted('P1') ? peers * ((SETTINGS.warmupS > 0 ? 1 : 0) + SETTINGS.rounds) : 0) +
    (wanted('P2') ? peers * SETTINGS.latencyRounds : 0) +
    (wanted('P5') ? SETTINGS.startRuns * (1 + (has('haproxy') ? 1 : 0) + (has('nginx') ? 1 : 0)) : 0) +
    (wanted('P6') ? 2 + (has('haproxy') ? 1 : 0) : 0) +
    (wanted('P7') ? 1 + reloadable : 0) +
    (h2 && wanted('P8') ? h2Runs : 0) +
    (h2 && wanted('P9') ? 1 + h2Runs : 0);
  log(`skiff benchmark (${mode}): upstream ${upstream.kind}; targets ${targets.map((t) => t.key).join(', ')}`);
  const bar = progress(steps);
  const ctx = { work, upstream, targets, settings: SETTINGS, step: bar.step, meshDir };
  const results = {};
  try {
    if (wanted('P1')) results.throughput = await throughput(ctx);
    if (wanted('P2')) {
      // A fresh skiff for P2–P4, so the memory it reports is that of 1000 req/s, not the heap
      // grown under P1's full load (the C peers' memory does not move with load).
      const old = targets.findIndex((t) => t.key === 'skiff');
      targets[old].proc.stop();
      targets[old] = await startSkiff(meshDir);
      results.idleRssMb = rssMb(targets[old].proc.pid);
      results.latency = await latency(ctx);
    }
    if (wanted('P5')) results.startup = await startup(ctx);
    if (wanted('P6')) results.configScale = await configScale(ctx);
    if (wanted('P7')) results.reloads = await reloads(ctx);
    if (h2 && wanted('P8')) results.http2 = await http2(ctx);
    if (h2 && wanted('P9')) results.grpc = await grpcUnary(ctx);
  } finally {
    bar.stop();
  }
  notes.push(
    'P3 and P4 are measured with Istio metrics and trace propagation on (the defaults) and without mTLS; the budget lines assume both.',
  );
  if (results.http2 || results.grpc) {
    const direct = [results.http2 && `P8 direct: ${results.http2.upstream}`, results.grpc && `P9 direct: ${results.grpc.upstream}`].filter(Boolean);
    notes.push(
      `${direct.join('; ')}; ${has('haproxy') ? 'HAProxy is h2c on both sides (proto h2); ' : ''}` +
        "p50/p99 are h2load's time for request (stream start to end of response) from its per-request log.",
    );
  }

  // A failed gRPC call is still an HTTP 200 to h2load: P9's figures count only if calls succeed.
  const grpcErrors = Object.entries(results.grpc ?? {})
    .filter(([, r]) => r?.grpcStatus !== undefined && r.grpcStatus !== 0)
    .map(([key, r]) => `P9: the check call to ${key} did not end with grpc-status 0 (${r.grpcStatus}); its figures measure errors`);
  notes.push(...grpcErrors);

  const rows = buildRows(results);
  const date = new Date().toISOString();
  const machine = `${cpus().length} × ${cpus()[0]?.model?.trim() ?? 'CPU'}, ${Math.round(totalmem() / 2 ** 30)} GB, Node ${process.versions.node}`;
  const command = `npm run bench${args.length ? ' -- ' + args.join(' ') : ''}`;
  const meta = { date, machine, command, upstream: upstream.kind, mode };
  const settingsText =
    `P1 wrk -t1 -c32 for ${SETTINGS.throughputS}s × ${SETTINGS.rounds} rounds (median) · ` +
    `P2–P4 1000 req/s open-loop, 16 connections, 1 kB bodies, ${SETTINGS.latencyS}s × ${SETTINGS.latencyRounds} · ` +
    `P5 median of ${SETTINGS.startRuns} starts · P6 ${SETTINGS.services} services · P7 20 reloads during ${SETTINGS.reloadS}s of wrk · ` +
    `P8–P9 h2load -c4 -m100 (h2c) for ${SETTINGS.throughputS}s × ${SETTINGS.rounds} rounds (median)`;
  const md =
    `# skiff benchmark\n\n${date} · ${machine}\n\nCommand: \`${command}\` · upstream: ${upstream.kind}\n\n${settingsText}\n\n` +
    `${markdownTable(rows)}\n` +
    (notes.length ? `\n${notes.map((n) => `- ${n}`).join('\n')}\n` : '');

  const dir = join(ROOT, 'bench/results');
  mkdirSync(dir, { recursive: true });
  const base = mode === 'smoke' ? 'smoke' : 'latest';
  writeFileSync(join(dir, `${base}.json`), JSON.stringify({ ...meta, settings: SETTINGS, results, rows, notes }, null, 2) + '\n');
  writeFileSync(join(dir, `${base}.md`), md);
  writeFileSync(join(dir, `${base}.svg`), svgChart(results, rows, meta));

  process.stdout.write(`\nskiff benchmark · ${date} · ${machine}\n${command} · upstream: ${upstream.kind}\n${settingsText}\n\n${terminalTable(rows)}\n`);
  for (const n of notes) process.stdout.write(`- ${n}\n`);
  process.stdout.write(`\nwrote bench/results/${base}.json, ${base}.md, ${base}.svg\n`);

  // The harness works end to end only if skiff actually served every scenario it ran.
  const s = (k) => results[k]?.skiff;
  const broken =
    (results.throughput && !(s('throughput').rps > 0)) ||
    (results.latency && !(s('latency').completed > 0)) ||
    (results.reloads && !(s('reloads').requests > 0)) ||
    (results.http2 && !(s('http2').requests > 0)) ||
    (results.grpc && !(s('grpc').requests > 0));
  if (broken) {
    log('skiff served no requests in at least one scenario: the harness or skiff is broken');
    process.exitCode = 1;
  }
  if (grpcErrors.length) {
    for (const e of grpcErrors) log(e);
    process.exitCode = 1;
  }
}

main()
  .catch((err) => {
    log(`bench failed: ${err.stack ?? err}`);
    process.exitCode = 1;
  })
  .finally(() => process.exit());
