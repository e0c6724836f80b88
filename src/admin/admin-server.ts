/**
 * The admin server (Envoy's admin port, 15000, bound to localhost), the readiness server
 * (15021 `/healthz/ready`) and the Prometheus server (15090 `/stats/prometheus`). Plain
 * node:http: none of this is on the request path.
 */
import type { Server } from 'node:http';
import { json, postOnly, PROMETHEUS_TEXT, send, serve } from './http-util.js';

/** A value, or a promise of it (a view may ask another process, e.g. a worker). */
export type Awaitable<T> = T | Promise<T>;

/** What the admin endpoints read from, and do to, the running proxy. */
export interface AdminView {
  readonly ready: boolean;
  /** Why the proxy is not ready (Istio's readiness messages); '' when it is. */
  readonly notReadyReason: string;
  /** Envoy's server state: PRE_INITIALIZING, LIVE or DRAINING. */
  readonly state: 'PRE_INITIALIZING' | 'LIVE' | 'DRAINING';
  configStatus(): Awaitable<unknown>;
  configDump(): Awaitable<unknown>;
  /** Every listener: Envoy's name and the address it is bound to. */
  listeners(): Awaitable<ReadonlyArray<{ readonly name: string; readonly address: string }>>;
  /** Lines in Envoy's /clusters text format. */
  clusterLines(): Awaitable<string[]>;
  /** Envoy's /certs: the certificates in use and how long each has left. */
  certs(): Awaitable<unknown>;
  serverInfo(): Awaitable<unknown>;
  /** Every metric in Prometheus' text format. */
  prometheus(): Promise<string>;
  /** Every metric as `name{labels}: value` lines (Envoy's /stats text). */
  statsText(): Promise<string>;
  resetCounters(): Awaitable<void>;
  readonly logLevel: string;
  /** Sets the log level; false for an unknown level. */
  setLogLevel(level: string): boolean;
  /** Stops listeners accepting (only inbound with `inboundOnly`); `graceful` lets connections finish their requests. */
  drainListeners(options: { readonly inboundOnly: boolean; readonly graceful: boolean }): void;
  /** Exits the proxy now (Envoy's /quitquitquit). */
  quit(): void;
}

const ENDPOINTS = [
  '/certs', '/clusters', '/config_dump', '/config_status', '/drain_listeners', '/listeners', '/logging', '/quitquitquit',
  '/ready', '/reset_counters', '/server_info', '/stats', '/stats/prometheus',
];

export function createAdminServer(view: AdminView): Server {
  return serve({
    '/ready': (_req, res) => send(res, view.state === 'LIVE' ? 200 : 503, `${view.state}\n`),
    '/config_dump': async (_req, res) => json(res, await view.configDump()),
    '/config_status': async (_req, res) => json(res, await view.configStatus()),
    '/clusters': async (_req, res) => send(res, 200, (await view.clusterLines()).join('\n') + '\n'),
    '/listeners': async (_req, res, query) => {
      const listeners = await view.listeners();
      if (query.get('format') === 'json') {
        json(res, { listener_statuses: listeners.map((l) => ({ name: l.name, local_address: { socket_address: socketAddress(l.address) } })) });
      } else {
        send(res, 200, listeners.map((l) => `${l.name}::${l.address}\n`).join(''));
      }
    },
    '/certs': async (_req, res) => json(res, await view.certs()),
    '/server_info': async (_req, res) => json(res, await view.serverInfo()),
    '/stats': async (_req, res, query) => {
      if (query.get('format') === 'prometheus') send(res, 200, await view.prometheus(), PROMETHEUS_TEXT);
      else if (query.get('format') === 'json') send(res, 400, 'format=json is not supported; use /stats or /stats/prometheus\n');
      else {
        const lines = filterLines(await view.statsText(), query.get('filter'));
        if (lines === null) send(res, 400, `invalid filter regex ${JSON.stringify(query.get('filter'))}\n`);
        else send(res, 200, lines);
      }
    },
    '/stats/prometheus': async (_req, res) => send(res, 200, await view.prometheus(), PROMETHEUS_TEXT),
    '/reset_counters': async (req, res) => {
      if (!postOnly(req, res)) return;
      await view.resetCounters();
      send(res, 200, 'OK\n');
    },
    '/logging': (req, res, query) => {
      const level = query.get('level');
      if (level !== null) {
        if (!postOnly(req, res)) return;
        if (!view.setLogLevel(level)) return send(res, 400, `unknown level "${level}": use debug, info, warn, error or off\n`);
      }
      send(res, 200, `active loggers:\n  skiff: ${view.logLevel}\n`);
    },
    '/drain_listeners': (req, res, query) => {
      if (!postOnly(req, res)) return;
      view.drainListeners({ inboundOnly: query.has('inboundonly'), graceful: query.has('graceful') });
      send(res, 200, 'OK\n');
    },
    '/quitquitquit': (req, res) => {
      if (!postOnly(req, res)) return;
      send(res, 200, 'OK\n');
      view.quit();
    },
    '/': (_req, res) => send(res, 200, ENDPOINTS.join('\n') + '\n'),
  });
}

/** Envoy's `/stats?filter=<regex>`: only the lines whose stat matches; null for a bad regex. */
function filterLines(text: string, filter: string | null): string | null {
  if (filter === null || filter === '') return text;
  let re: RegExp;
  try {
    re = new RegExp(filter);
  } catch {
    return null;
  }
  return text.split('\n').filter((l) => l !== '' && re.test(l.slice(0, l.lastIndexOf(':')))).map((l) => l + '\n').join('');
}

/** `ip:port` or `[ip]:port` as Envoy's SocketAddress. */
export function socketAddress(address: string): { address: string; port_value: number } {
  const colon = address.lastIndexOf(':');
  return { address: address.slice(0, colon).replace(/^\[|\]$/g, ''), port_value: Number(address.slice(colon + 1)) };
}

/** Istio's readiness endpoint (15021 and the status port): 200 when ready, else 503 with why. */
export function readinessHandler(view: Pick<AdminView, 'ready' | 'notReadyReason'>): Parameters<typeof serve>[0][string] {
  return (_req, res) => send(res, view.ready ? 200 : 503, view.ready ? '' : `${view.notReadyReason}\n`);
}

export function createReadinessServer(view: AdminView): Server {
  return serve({ '/healthz/ready': readinessHandler(view) });
}

/** Envoy's Prometheus listener (15090): `/stats/prometheus` only. */
export function createPrometheusServer(view: AdminView): Server {
  return serve({ '/stats/prometheus': async (_req, res) => send(res, 200, await view.prometheus(), PROMETHEUS_TEXT) });
}
