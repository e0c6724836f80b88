/**
 * P2–P4 at a constant 1000 req/s with 1 kB request and response bodies over 16 connections:
 * p50/p90/p99/p999 latency per target and the latency each proxy adds over the direct path
 * (P2); the proxy's CPU over the run, in vCPU (P3); its resident memory (P4). The generator is
 * open-loop (bench/lib/rate-client.mjs), so a slow response cannot hide latency.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { cpuSeconds, peakRssMb, rssMb } from '../lib/proc.mjs';
import { processTree, ROOT } from '../lib/peers.mjs';
import { median } from '../lib/stats.mjs';

const RATE = 1000;
const CONNECTIONS = 16;

function runRateClient(port, seconds) {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [join(ROOT, 'bench/lib/rate-client.mjs'), '--port', String(port), '--rate', String(RATE), '--connections', String(CONNECTIONS),
        '--seconds', String(seconds), '--body', '1024', '--path', '/1k'],
      { encoding: 'utf8', timeout: (seconds + 30) * 1000 },
      (err, stdout) => (err ? reject(err) : resolve(JSON.parse(stdout))),
    );
  });
}

export async function latency(ctx) {
  const { targets, settings, step } = ctx;
  const samples = new Map(targets.map((t) => [t.key, []]));
  // Warm-up at the same rate (JIT, pools), not counted.
  if (settings.warmupS > 0) for (const t of targets) await runRateClient(t.port, settings.warmupS);
  for (let r = 1; r <= settings.latencyRounds; r++) {
    for (const t of targets) {
      step(`P2 ${RATE} req/s round ${r}/${settings.latencyRounds} ${t.key}`);
      const pids = t.proc ? processTree(t.proc.pid) : [];
      const cpu0 = pids.reduce((s, p) => s + cpuSeconds(p), 0);
      const wall0 = performance.now();
      const res = await runRateClient(t.port, settings.latencyS);
      const wallS = (performance.now() - wall0) / 1000;
      const cpu = pids.reduce((s, p) => s + cpuSeconds(p), 0) - cpu0;
      samples.get(t.key).push({
        ...res.latenciesUs,
        errors: res.errors,
        completed: res.completed,
        vcpu: pids.length ? cpu / wallS : NaN,
        rssMb: pids.length ? pids.reduce((s, p) => s + rssMb(p), 0) : NaN,
        peakRssMb: pids.length ? pids.reduce((s, p) => s + peakRssMb(p), 0) : NaN,
      });
    }
  }
  const out = {};
  for (const t of targets) {
    const s = samples.get(t.key);
    out[t.key] = {
      p50Ms: median(s.map((x) => x.p50)) / 1000,
      p90Ms: median(s.map((x) => x.p90)) / 1000,
      p99Ms: median(s.map((x) => x.p99)) / 1000,
      p999Ms: median(s.map((x) => x.p999)) / 1000,
      errors: s.reduce((n, x) => n + x.errors, 0),
      completed: s.reduce((n, x) => n + x.completed, 0),
      vcpu: median(s.map((x) => x.vcpu)),
      rssMb: median(s.map((x) => x.rssMb)),
      peakRssMb: Math.max(...s.map((x) => x.peakRssMb)),
    };
  }
  const direct = out.direct;
  for (const t of targets) {
    if (t.key === 'direct' || direct === undefined) continue;
    const o = out[t.key];
    o.addedP50Ms = o.p50Ms - direct.p50Ms;
    o.addedP90Ms = o.p90Ms - direct.p90Ms;
    o.addedP99Ms = o.p99Ms - direct.p99Ms;
    o.addedP999Ms = o.p999Ms - direct.p999Ms;
  }
  return out;
}
