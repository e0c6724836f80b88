/**
 * Running h2load (nghttp2) for P8 and P9 and reading its report: 100 concurrent streams on each
 * of 4 connections, h2c with prior knowledge, for a fixed duration. h2load's "time for request"
 * line has only min/max/mean/sd, so p50 and p99 come from its per-request log (--log-file), the
 * same "time for request" figure: stream start to end of response.
 */
import { execFile } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { processTree } from './peers.mjs';
import { cpuSeconds } from './proc.mjs';
import { median, percentile } from './stats.mjs';

export const CONNECTIONS = 4;
export const STREAMS = 100;

function toMs(value, unit) {
  const v = Number(value);
  return unit === 'us' ? v / 1000 : unit === 's' ? v * 1000 : v;
}

/**
 * The summary h2load prints. `failures` counts non-2xx responses and failed streams: h2load's
 * "failed" holds 4xx, 5xx and errored or timed-out streams; it counts 3xx as succeeded.
 */
export function parseH2load(out) {
  const rps = Number(/finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(out)?.[1] ?? NaN);
  const req = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(out);
  const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out);
  const mean = /time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)\s/.exec(out);
  return {
    rps,
    requests: Number(req?.[3] ?? NaN),
    failures: req && codes ? Number(req[5]) + Number(codes[2]) : NaN,
    meanMs: mean ? toMs(mean[1], mean[2]) : NaN,
  };
}

/** p50 and p99 (ms) of the answered streams in an h2load --log-file (status -1: failed stream). */
export function logPercentiles(file) {
  const times = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const [, status, us] = line.split('\t');
    if (us !== undefined && status !== '-1') times.push(Number(us) / 1000);
  }
  const sorted = Float64Array.from(times).sort();
  return { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99) };
}

/**
 * `h2load -c4 -m100 -D seconds` against http://127.0.0.1:port{path} with `:authority`; `data`
 * (a file) makes every request a POST with that body; `headers` are extra "name: value" lines.
 */
export function runH2load(port, { seconds, authority, path = '/', data, headers = [], logFile }) {
  const argv = ['-c', String(CONNECTIONS), '-m', String(STREAMS), '-D', String(seconds), '--log-file', logFile, '-H', `:authority: ${authority}`];
  for (const h of headers) argv.push('-H', h);
  if (data !== undefined) argv.push('-d', data);
  argv.push(`http://127.0.0.1:${port}${path}`);
  return new Promise((resolve, reject) => {
    execFile('h2load', argv, { encoding: 'utf8', timeout: (seconds + 30) * 1000, maxBuffer: 16 * 2 ** 20 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`h2load failed: ${err.message}\n${stdout}${stderr}`));
      const res = { ...parseH2load(stdout), ...logPercentiles(logFile) };
      rmSync(logFile, { force: true });
      resolve(res);
    });
  });
}

/**
 * The P1 procedure with h2load: a warm-up run per target, then `settings.rounds` rounds over
 * the targets, each run `settings.throughputS` long; per target the median round (req/s, p50,
 * p99, the proxy's CPU per request) and the failures summed over the rounds.
 */
export async function h2loadRounds(ctx, id, targets, request) {
  const { work, settings, step } = ctx;
  const logFile = join(work, `${id}-h2load.log`);
  for (const t of targets) {
    if (settings.warmupS <= 0) break;
    step(`${id} warm-up ${t.key}`);
    await runH2load(t.port, { ...request, seconds: settings.warmupS, logFile });
  }
  const samples = new Map(targets.map((t) => [t.key, []]));
  for (let r = 1; r <= settings.rounds; r++) {
    for (const t of targets) {
      step(`${id} round ${r}/${settings.rounds} ${t.key}`);
      const pids = t.proc ? processTree(t.proc.pid) : [];
      const before = pids.reduce((s, p) => s + cpuSeconds(p), 0);
      const res = await runH2load(t.port, { ...request, seconds: settings.throughputS, logFile });
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
      meanMs: median(s.map((x) => x.meanMs)),
      cpuUsPerRequest: median(s.map((x) => x.cpuUsPerRequest)),
      failures: s.reduce((n, x) => n + x.failures, 0),
      requests: s.reduce((n, x) => n + x.requests, 0),
      rounds: s.map((x) => Math.round(x.rps)),
    };
  }
  if (out.skiff && out.direct) out.skiff.vsDirect = out.skiff.rps / out.direct.rps;
  return out;
}
