#!/usr/bin/env node
/**
 * Micro benchmarks of the hot path (tinybench), on the compiled modules in dist/:
 *
 *   npm run bench:micro            # about 60 s
 *   node bench/micro/run.mjs --quick   # about 15 s
 *
 * Groups: config (one-shot load+compile of 1000 services), route (lookup + match at 1/100/1000
 * hosts), h1 (head parse/serialise, decoder push, router header preparation), lb (one pick per
 * policy, hash32). Prints a table and writes bench/results/micro.json.
 *
 * `runMicro({ quick })` is the programmatic entry: it returns the rows
 * `{ group, name, nsPerOp, opsPerSec, samples, rme, ... }` (rme: relative margin of error, %).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { enableLinearRegexFallback } from '../../dist/core/re2.js';
import { sink } from './harness.mjs';
import { runHeaderBenchmarks } from './headers.mjs';
import { runLbBenchmarks } from './lb.mjs';
import { runRouteBenchmarks } from './routes.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');

/** P6: route match at 1000 hosts ≤ 1 µs; load+compile of 1000 services ≤ 1 s. */
const ROUTE_BUDGET_NS = 1000;
const CONFIG_BUDGET_MS = 1000;

export async function runMicro({ quick = false, log = () => {} } = {}) {
  // The V8 regex flag the proxy sets at start (lifecycle/proxy.ts), so regexes run as in production.
  enableLinearRegexFallback();
  const rows = [];
  for (const [group, run] of [
    ['route', runRouteBenchmarks],
    ['h1', runHeaderBenchmarks],
    ['lb', runLbBenchmarks],
  ]) {
    const t0 = performance.now();
    const got = await run({ quick });
    rows.push(...got);
    log(`${group}: ${got.length} benchmarks in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  if (sink.calls === 0) throw new Error('micro benchmarks ran no calls');
  return rows;
}

/** The P6 checks on a result set: [{ what, value, budget, unit, ok }]. */
export function budgetChecks(rows) {
  const checks = [];
  for (const r of rows) {
    if (r.group === 'route' && r.name.includes('1000 hosts')) {
      checks.push({ what: `P6 ${r.name}`, value: r.nsPerOp, budget: ROUTE_BUDGET_NS, unit: 'ns', ok: r.nsPerOp <= ROUTE_BUDGET_NS });
    }
    if (r.group === 'config' && r.oneShot) {
      checks.push({ what: `P6 ${r.name}`, value: r.ms, budget: CONFIG_BUDGET_MS, unit: 'ms', ok: r.ms <= CONFIG_BUDGET_MS });
    }
  }
  return checks;
}

function fmtNs(ns) {
  if (ns >= 1e6) return `${(ns / 1e6).toFixed(1)} ms`;
  if (ns >= 1e4) return `${(ns / 1e3).toFixed(1)} µs`;
  if (ns >= 100) return `${ns.toFixed(0)} ns`;
  return `${ns.toFixed(1)} ns`;
}

function fmtOps(ops) {
  if (ops >= 1e6) return `${(ops / 1e6).toFixed(2)} M`;
  if (ops >= 1e3) return `${(ops / 1e3).toFixed(1)} k`;
  return ops.toFixed(1);
}

export function formatTable(rows) {
  const head = ['group', 'name', 'ns/op', 'ops/s', '±rme', 'samples'];
  const body = rows.map((r) => [
    r.group,
    r.name,
    fmtNs(r.nsPerOp),
    fmtOps(r.opsPerSec),
    Number.isFinite(r.rme) ? `±${r.rme.toFixed(2)}%` : '–',
    String(r.samples),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const right = [false, false, true, true, true, true];
  const line = (cells) => cells.map((c, i) => (right[i] ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

async function main() {
  const quick = process.argv.includes('--quick');
  const log = (m) => process.stderr.write(m + '\n');
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.versions.node}`;
  log(`skiff micro benchmarks (${quick ? 'quick' : 'full'}) · ${machine}`);
  const t0 = performance.now();
  const rows = await runMicro({ quick, log });
  const seconds = (performance.now() - t0) / 1000;

  process.stdout.write('\n' + formatTable(rows) + '\n');
  const config = rows.filter((r) => r.group === 'config');
  if (config.length > 0) {
    process.stdout.write('\nconfig detail:\n');
    for (const r of config) {
      const heap = r.retainedHeapMb === undefined ? '' : `, snapshot heap retained ${r.retainedHeapMb.toFixed(1)} MB`;
      const st = r.stagesMs === undefined ? '' : `; one more run by stage: yaml ${r.stagesMs.yaml} ms, recognise ${r.stagesMs.recognise} ms, translate ${r.stagesMs.translate} ms, compile ${r.stagesMs.compile} ms`;
      process.stdout.write(`  ${r.name}: ${r.ms.toFixed(0)} ms (load ${r.loadMs.toFixed(0)} ms, compile ${r.compileMs.toFixed(0)} ms${heap}${st})\n`);
    }
  }
  const checks = budgetChecks(rows);
  process.stdout.write('\nbudget (reference/performance.md P6):\n');
  for (const c of checks) {
    const v = c.unit === 'ns' ? fmtNs(c.value) : `${c.value.toFixed(0)} ms`;
    process.stdout.write(`  ${c.ok ? 'ok  ' : 'OVER'} ${c.what}: ${v} (budget ${c.budget} ${c.unit})\n`);
  }
  const noisy = rows.filter((r) => !r.oneShot && r.rme > 5);
  if (noisy.length > 0) process.stdout.write(`\nnoisy (rme > 5%): ${noisy.map((r) => `${r.group}/${r.name}`).join('; ')}\n`);
  process.stdout.write(`\n${rows.length} benchmarks in ${seconds.toFixed(1)} s\n`);

  const out = join(ROOT, 'bench/results');
  mkdirSync(out, { recursive: true });
  const file = join(out, 'micro.json');
  writeFileSync(
    file,
    JSON.stringify(
      {
        date: new Date().toISOString(),
        machine,
        command: `node bench/micro/run.mjs${quick ? ' --quick' : ''}`,
        quick,
        durationS: seconds,
        rows,
        budget: checks,
      },
      null,
      2,
    ) + '\n',
  );
  log(`wrote ${file}`);
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err) => {
    process.stderr.write(`${err.stack ?? err}\n`);
    process.exitCode = 1;
  });
}
