/**
 * A real Prometheus server (Debian's `prometheus` package) for a test: it scrapes the given
 * targets every second into a temporary TSDB, and answers queries over its HTTP API.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closedPort } from './ports.js';

export interface ScrapeTarget {
  readonly job: string;
  readonly port: number;
  readonly path: string;
}

export interface PromSample {
  readonly metric: Record<string, string>;
  readonly value: number;
}

export interface Prometheus {
  /** Instant query; the samples it returns. */
  query(expr: string): Promise<PromSample[]>;
  /** Polls `expr` until `accept` takes its samples (scrapes come every second). */
  until(expr: string, accept: (samples: PromSample[]) => boolean, timeoutMs?: number): Promise<PromSample[]>;
  /** The scrape targets' health as Prometheus reports it. */
  targets(): Promise<Array<{ job: string; health: string; lastError: string }>>;
  close(): Promise<void>;
}

export async function startPrometheus(targets: readonly ScrapeTarget[]): Promise<Prometheus> {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-prom-'));
  const config = [
    'global: {scrape_interval: 1s, evaluation_interval: 1s}',
    'scrape_configs:',
    ...targets.map((t) => `- {job_name: ${t.job}, metrics_path: ${t.path}, scrape_interval: 1s, static_configs: [{targets: ['127.0.0.1:${t.port}']}]}`),
  ].join('\n');
  await writeFile(join(dir, 'prometheus.yml'), config + '\n');
  const port = await closedPort(); // free for Prometheus to bind
  const child: ChildProcess = spawn(
    'prometheus',
    [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4000)));
  const api = async (path: string): Promise<unknown> => {
    const res = await fetch(`http://127.0.0.1:${port}${path}`);
    const body = (await res.json()) as { status: string; data: unknown; error?: string };
    if (body.status !== 'success') throw new Error(`prometheus ${path}: ${body.error ?? res.status}`);
    return body.data;
  };
  const ready = Date.now() + 20_000;
  for (;;) {
    const ok = await fetch(`http://127.0.0.1:${port}/-/ready`).then((r) => r.ok, () => false);
    if (ok) break;
    if (child.exitCode !== null || Date.now() > ready) throw new Error(`prometheus did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  const query = async (expr: string): Promise<PromSample[]> => {
    const data = (await api(`/api/v1/query?query=${encodeURIComponent(expr)}`)) as { result: Array<{ metric: Record<string, string>; value: [number, string] }> };
    return data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
  };
  return {
    query,
    async until(expr, accept, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      let last: PromSample[] = [];
      while (Date.now() < deadline) {
        last = await query(expr);
        if (accept(last)) return last;
        await new Promise((r) => setTimeout(r, 300));
      }
      throw new Error(`prometheus: ${expr} never matched; last result ${JSON.stringify(last)}`);
    },
    async targets() {
      const data = (await api('/api/v1/targets')) as { activeTargets: Array<{ labels: { job: string }; health: string; lastError: string }> };
      return data.activeTargets.map((t) => ({ job: t.labels.job, health: t.health, lastError: t.lastError }));
    },
    async close() {
      child.kill('SIGTERM');
      if (child.exitCode === null) await new Promise((r) => child.once('exit', r));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
