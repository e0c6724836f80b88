/**
 * P1: maximum HTTP/1.1 keep-alive throughput with wrk -t1 -c32 and a tiny response, each
 * target in turn, several rounds; the median round per target is reported. The proxies' CPU
 * time per request is read from /proc over each run.
 */
import { median } from '../lib/stats.mjs';
import { cpuSeconds } from '../lib/proc.mjs';
import { processTree } from '../lib/peers.mjs';
import { runWrk } from '../lib/wrk.mjs';

export async function throughput(ctx) {
  const { targets, settings, step } = ctx;
  for (const t of targets) {
    if (settings.warmupS <= 0) break;
    step(`P1 warm-up ${t.key}`);
    await runWrk(t.port, { seconds: settings.warmupS });
  }
  const samples = new Map(targets.map((t) => [t.key, []]));
  for (let r = 1; r <= settings.rounds; r++) {
    for (const t of targets) {
      step(`P1 round ${r}/${settings.rounds} ${t.key}`);
      const pids = t.proc ? processTree(t.proc.pid) : [];
      const before = pids.reduce((s, p) => s + cpuSeconds(p), 0);
      const res = await runWrk(t.port, { seconds: settings.throughputS });
      const cpu = pids.reduce((s, p) => s + cpuSeconds(p), 0) - before;
      samples.get(t.key).push({ ...res, cpuUsPerRequest: pids.length ? (cpu / res.requests) * 1e6 : NaN });
    }
  }
  const out = {};
  for (const t of targets) {
    const s = samples.get(t.key);
    out[t.key] = {
      rps: median(s.map((x) => x.rps)),
      p50Ms: median(s.map((x) => x.p50)),
      p99Ms: median(s.map((x) => x.p99)),
      cpuUsPerRequest: median(s.map((x) => x.cpuUsPerRequest)),
      failures: s.reduce((n, x) => n + x.failures, 0),
      rounds: s.map((x) => Math.round(x.rps)),
    };
  }
  return out;
}
