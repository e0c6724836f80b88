/**
 * A multi-process proxy on node:cluster (Envoy's --concurrency; istio-proxy runs 2 in pods).
 *
 * The primary forks N workers. Each worker loads and watches the config itself and runs the
 * data-path listeners; the cluster module shares every listening socket between the workers,
 * so connections spread over them, and a config change reaches each worker through its own
 * watcher. The primary serves the admin, readiness, status and Prometheus ports for all of
 * them: metrics are summed across workers (prom-client's aggregation), configuration views come
 * from the first worker, and drains, log levels and counter resets go to every worker.
 * Readiness holds until every worker is ready. A worker that dies is replaced, except during
 * shutdown.
 */
import cluster, { type Worker } from 'node:cluster';
import type { Server } from 'node:http';
import { AggregatorRegistry } from 'prom-client';
import { createAdminServer, createPrometheusServer, createReadinessServer, type AdminView } from '../admin/admin-server.js';
import { createStatusServer, type StatusServerOptions } from '../admin/status-server.js';
import { listenOn } from '../core/listen.js';
import { isLogLevel, type Logger } from '../core/logger.js';
import type { ListenerPorts } from '../model/index.js';
import type { BoundPorts, Proxy } from './proxy.js';
import { statsLines } from './telemetry.js';

/** The admin operations the primary asks a worker for. */
type AdminOp = 'configStatus' | 'configDump' | 'listeners' | 'clusterLines' | 'certs' | 'serverInfo' | 'metrics' | 'resetCounters' | 'setLogLevel' | 'drainListeners';

type ToWorker =
  | { readonly skiff: 'admin'; readonly id: number; readonly op: AdminOp; readonly arg?: unknown }
  /** Drain and exit; `immediate` (a quit) skips the drain. */
  | { readonly skiff: 'shutdown'; readonly immediate: boolean };
type ToPrimary =
  | { readonly skiff: 'ready'; readonly ports: BoundPorts }
  | { readonly skiff: 'result'; readonly id: number; readonly result?: unknown; readonly error?: string }
  | { readonly skiff: 'quit' };

const ASK_TIMEOUT_MS = 5_000;

function isMessage<T extends { skiff: string }>(m: unknown): m is T {
  return typeof m === 'object' && m !== null && typeof (m as { skiff?: unknown }).skiff === 'string';
}

// === worker side ===

/**
 * A worker's side of the channel to the primary, listening from before the proxy starts (so a
 * shutdown, or the primary going away, during startup is not missed): `shutdown` runs the drain;
 * admin operations are answered once `ready` handed over the proxy.
 */
export function connectToPrimary(shutdown: (immediate: boolean) => void): { ready(proxy: Proxy): void } {
  const send = (m: ToPrimary): void => void process.send?.(m);
  let proxy: Proxy | null = null;
  process.on('message', (m: unknown) => {
    if (!isMessage<ToWorker>(m)) return;
    if (m.skiff === 'shutdown') {
      shutdown(m.immediate);
      return;
    }
    const answered = proxy === null ? Promise.reject(new Error('the worker is starting')) : answer(proxy.adminView, proxy, m.op, m.arg);
    void answered.then(
      (result) => send({ skiff: 'result', id: m.id, result }),
      (err: unknown) => send({ skiff: 'result', id: m.id, error: (err as Error).message }),
    );
  });
  // Without its primary (killed, say) a worker must not linger.
  process.once('disconnect', () => shutdown(true));
  return {
    ready(p) {
      proxy = p;
      send({ skiff: 'ready', ports: p.ports });
    },
  };
}

/** Asks the primary to end the proxy (a local POST /quitquitquit reached a worker). */
export function requestQuit(): void {
  process.send?.({ skiff: 'quit' } satisfies ToPrimary);
}

async function answer(view: AdminView, proxy: Proxy, op: AdminOp, arg: unknown): Promise<unknown> {
  switch (op) {
    case 'metrics':
      proxy.telemetry.flush();
      return proxy.telemetry.registry.getMetricsAsJSON();
    case 'setLogLevel':
      return view.setLogLevel(String(arg));
    case 'drainListeners':
      return view.drainListeners(arg as { inboundOnly: boolean; graceful: boolean });
    default:
      return view[op]();
  }
}

// === primary side ===

export interface PrimaryOptions {
  readonly concurrency: number;
  readonly mode: 'standalone' | 'sidecar' | 'gateway';
  /** The ports the primary serves (flags over MeshConfig); the workers bind the rest. */
  readonly ports: Pick<ListenerPorts, 'admin' | 'readiness' | 'status' | 'stats'>;
  /** Open the Prometheus port (sidecar and gateway, or when asked for). */
  readonly serveStats: boolean;
  readonly status?: Pick<StatusServerOptions, 'appScrape' | 'probes' | 'appHost'>;
  readonly log: Logger;
  /** After a shutdown began, workers still running this much later are killed (drainDuration and a margin). */
  readonly killAfterMs: number;
  /** A local client asked to quit (status or admin /quitquitquit). */
  onQuit(): void;
}

/** Respawns of a failing worker back off from 1s to 30s. */
const RESPAWN_MIN_MS = 1_000;
const RESPAWN_MAX_MS = 30_000;

export class Primary {
  readonly #options: PrimaryOptions;
  readonly #log: Logger;
  readonly #ready = new Set<number>();
  readonly #pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void; timer: NodeJS.Timeout }>();
  #servers: Server[] = [];
  #nextId = 0;
  #draining = false;
  #stopping = false;
  #workerPorts: BoundPorts | null = null;
  #respawnDelayMs = RESPAWN_MIN_MS;
  /** Each worker's metrics at the last collection, and the counters of workers gone since. */
  readonly #lastMetrics = new Map<number, unknown[]>();
  #retired: unknown[] = [];
  /** A log level set at runtime, given to workers that start later. */
  #logLevel: string | null = null;
  #allReady: () => void = () => undefined;
  readonly allReady = new Promise<void>((resolve) => (this.#allReady = resolve));
  ports: { admin: number; readiness: number; status: number; stats: number } = { admin: 0, readiness: 0, status: 0, stats: 0 };

  constructor(options: PrimaryOptions) {
    this.#options = options;
    this.#log = options.log;
  }

  /** Forks the workers and opens the primary's servers. */
  async start(): Promise<void> {
    // Each worker accepts on the shared socket itself; the primary stays out of the data path.
    cluster.schedulingPolicy = cluster.SCHED_NONE;
    cluster.on('message', (worker, m: unknown) => this.#onMessage(worker, m));
    cluster.on('exit', (worker, code, signal) => this.#onExit(worker, code, signal));
    for (let i = 0; i < this.#options.concurrency; i++) cluster.fork();
    const view = this.#view();
    const o = this.#options;
    const admin = createAdminServer(view);
    const readiness = createReadinessServer(view);
    const status = o.mode !== 'standalone' ? createStatusServer(view, { ...o.status, quit: () => o.onQuit(), drain: () => view.drainListeners({ inboundOnly: o.mode === 'sidecar', graceful: true }) }) : null;
    const stats = o.serveStats ? createPrometheusServer(view) : null;
    this.#servers = [admin, readiness, status, stats].filter((s): s is Server => s !== null);
    this.ports = {
      admin: await listenOn(admin, '127.0.0.1', o.ports.admin),
      readiness: await listenOn(readiness, '::', o.ports.readiness),
      status: status === null ? 0 : await listenOn(status, '::', o.ports.status),
      stats: stats === null ? 0 : await listenOn(stats, '::', o.ports.stats),
    };
  }

  /** The data-path ports the workers bound (known once the first is ready). */
  get workerPorts(): BoundPorts | null {
    return this.#workerPorts;
  }

  /** Tells every worker to drain (or, `immediate`, to stop now) and waits for them to exit; each bounds its own drain. */
  async shutdown(immediate = false): Promise<void> {
    this.#stopping = true;
    this.#draining = true;
    const workers = this.#workers();
    const exited = Promise.all(workers.map((w) => new Promise<void>((resolve) => (w.isDead() ? resolve() : w.once('exit', () => resolve())))));
    for (const w of workers) if (w.isConnected()) w.send({ skiff: 'shutdown', immediate } satisfies ToWorker);
    // A worker stuck past its own drain bound is killed.
    const kill = setTimeout(() => {
      for (const w of workers) if (!w.isDead()) w.process.kill('SIGKILL');
    }, immediate ? 2_000 : this.#options.killAfterMs);
    await exited;
    clearTimeout(kill);
    await Promise.all(this.#servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }

  #workers(): Worker[] {
    return Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
  }

  #onMessage(worker: Worker, m: unknown): void {
    if (!isMessage<ToPrimary>(m)) return;
    switch (m.skiff) {
      case 'ready':
        this.#ready.add(worker.id);
        this.#workerPorts ??= m.ports;
        this.#respawnDelayMs = RESPAWN_MIN_MS;
        if (this.#logLevel !== null) this.#send(worker, 'setLogLevel', this.#logLevel);
        if (this.#ready.size >= this.#options.concurrency) this.#allReady();
        return;
      case 'quit':
        this.#options.onQuit();
        return;
      case 'result': {
        const p = this.#pending.get(m.id);
        if (p === undefined) return;
        this.#pending.delete(m.id);
        clearTimeout(p.timer);
        if (m.error !== undefined) p.reject(new Error(m.error));
        else p.resolve(m.result);
      }
    }
  }

  #onExit(worker: Worker, code: number | null, signal: string | null): void {
    this.#ready.delete(worker.id);
    void this.#retire(worker.id);
    // A draining proxy is going away: a new worker would open its listeners again.
    if (this.#stopping || this.#draining) return;
    const delay = this.#respawnDelayMs;
    this.#respawnDelayMs = Math.min(delay * 2, RESPAWN_MAX_MS);
    this.#log.error(`worker ${worker.process.pid} exited (${signal ?? `code ${code}`}); starting another in ${delay / 1000}s`);
    setTimeout(() => {
      if (!this.#stopping && !this.#draining) cluster.fork();
    }, delay).unref();
  }

  /**
   * Keeps a gone worker's counters and histograms (as last collected) in the sums, so totals
   * never go backwards when a worker is replaced.
   */
  async #retire(id: number): Promise<void> {
    const last = this.#lastMetrics.get(id);
    this.#lastMetrics.delete(id);
    if (last === undefined) return;
    const kept = (last as Array<{ type?: string }>).filter((m) => m.type === 'counter' || m.type === 'histogram');
    const list = this.#retired.length === 0 ? [kept] : [this.#retired, kept];
    this.#retired = await AggregatorRegistry.aggregate(list as never).getMetricsAsJSON();
  }

  #send(worker: Worker, op: AdminOp, arg?: unknown): void {
    if (worker.isConnected()) worker.send({ skiff: 'admin', id: this.#nextId++, op, arg } satisfies ToWorker);
  }

  /** Asks one worker (the first ready one) or all of them. */
  #ask(op: AdminOp, arg?: unknown, all = false): Promise<unknown[]> {
    const workers = this.#workers().filter((w) => this.#ready.has(w.id) && w.isConnected());
    if (workers.length === 0) return Promise.reject(new Error('no worker is ready'));
    const targets = all ? workers : [workers.sort((a, b) => a.id - b.id)[0]!];
    return Promise.all(targets.map((w) => this.#askOne(w, op, arg)));
  }

  #askOne(w: Worker, op: AdminOp, arg?: unknown): Promise<unknown> {
    return new Promise<unknown>((resolve, reject) => {
      const id = this.#nextId++;
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`worker ${w.process.pid} did not answer ${op}`));
      }, ASK_TIMEOUT_MS);
      this.#pending.set(id, { resolve, reject, timer });
      w.send({ skiff: 'admin', id, op, arg } satisfies ToWorker);
    });
  }

  async #one(op: AdminOp): Promise<unknown> {
    return (await this.#ask(op))[0];
  }

  /** Every worker's metrics, summed (with the counters of workers gone since the start). */
  async #aggregated(): Promise<ReturnType<typeof AggregatorRegistry.aggregate>> {
    const workers = this.#workers().filter((w) => this.#ready.has(w.id) && w.isConnected());
    const perWorker = await Promise.all(
      workers.map(async (w) => {
        const metrics = (await this.#askOne(w, 'metrics')) as unknown[];
        this.#lastMetrics.set(w.id, metrics);
        return metrics;
      }),
    );
    return AggregatorRegistry.aggregate((this.#retired.length === 0 ? perWorker : [...perWorker, this.#retired]) as never);
  }

  #view(): AdminView {
    const primary = this;
    const log = this.#log;
    const concurrency = this.#options.concurrency;
    return {
      get ready() {
        return !primary.#draining && primary.#ready.size >= concurrency;
      },
      get notReadyReason() {
        return primary.#draining ? 'the proxy is draining' : `${primary.#ready.size} of ${concurrency} workers ready`;
      },
      get state() {
        return primary.#draining ? 'DRAINING' : primary.#ready.size >= concurrency ? 'LIVE' : 'PRE_INITIALIZING';
      },
      configStatus: () => this.#one('configStatus'),
      configDump: () => this.#one('configDump'),
      listeners: () => this.#one('listeners') as Promise<Array<{ name: string; address: string }>>,
      clusterLines: () => this.#one('clusterLines') as Promise<string[]>,
      certs: () => this.#one('certs'),
      serverInfo: async () => {
        const info = (await this.#one('serverInfo')) as { command_line_options?: Record<string, unknown> };
        return { ...info, command_line_options: { ...info.command_line_options, concurrency } };
      },
      prometheus: async () => (await this.#aggregated()).metrics(),
      statsText: async () => statsLines(await (await this.#aggregated()).getMetricsAsJSON()),
      resetCounters: async () => void (await this.#ask('resetCounters', undefined, true)),
      get logLevel() {
        return log.level;
      },
      setLogLevel: (level) => {
        if (!isLogLevel(level)) return false;
        log.setLevel(level);
        this.#logLevel = level;
        void this.#ask('setLogLevel', level, true).catch(() => undefined);
        return true;
      },
      drainListeners: (o) => {
        this.#draining = true;
        void this.#ask('drainListeners', o, true).catch((err: Error) => log.warn(`drain: ${err.message}`));
      },
      quit: () => this.#options.onQuit(),
    };
  }
}

