/**
 * The status server (pilot-agent's 15020): readiness, the merged Prometheus endpoint (this
 * proxy's metrics followed by the application's, when its scrape annotations were given),
 * rewritten application probes, `POST /drain` and `POST /quitquitquit` (local callers only).
 */
import { request } from 'node:http';
import type { Server } from 'node:http';
import { isLocalCaller } from '../core/addresses.js';
import { readinessHandler, type AdminView } from './admin-server.js';
import { runProbe, type AppProbe } from './app-probes.js';
import { postOnly, PROMETHEUS_TEXT, send, serve, type Handler } from './http-util.js';

/** Where the application's own metrics are (Istio's ISTIO_PROMETHEUS_ANNOTATIONS). */
export interface AppScrape {
  readonly port: number;
  readonly path: string;
}

export interface StatusServerOptions {
  readonly appScrape?: AppScrape;
  /** Rewritten probes by path (`/app-health/<container>/livez` …). */
  readonly probes?: ReadonlyMap<string, AppProbe>;
  /** Where probes and the scrape go when they name no host: the pod's IP, or loopback. */
  readonly appHost?: string;
  /** Called after a local `POST /quitquitquit` was answered. */
  quit(): void;
  /** `POST /drain`: start draining as on SIGTERM, without exiting. */
  drain(): void;
}

const APP_SCRAPE_TIMEOUT_MS = 5_000;

export function createStatusServer(view: AdminView, options: StatusServerOptions): Server {
  const merged: Handler = async (_req, res) => {
    const own = await view.prometheus();
    const app = options.appScrape === undefined ? '' : await scrapeApp(options.appHost ?? '127.0.0.1', options.appScrape);
    send(res, 200, app === '' ? own : `${own}\n${app}`, PROMETHEUS_TEXT);
  };
  const localPost = (action: () => void): Handler => (req, res) => {
    if (!postOnly(req, res)) return;
    if (!isLocalCaller(req.socket.remoteAddress ?? '')) return send(res, 403, 'only local callers may do this\n');
    send(res, 200, 'OK\n');
    action();
  };
  const probe: Handler = async (req, res) => {
    const path = (req.url ?? '').split('?')[0]!;
    const p = options.probes?.get(path);
    if (p === undefined) return send(res, 404, `no probe registered for ${path}\n`);
    const result = await runProbe(p, options.appHost ?? '127.0.0.1');
    send(res, result.status, result.body);
  };
  return serve(
    {
      '/healthz/ready': readinessHandler(view),
      '/stats/prometheus': merged,
      '/metrics': merged,
      '/quitquitquit': localPost(() => options.quit()),
      '/drain': localPost(() => options.drain()),
    },
    { '/app-health/': probe },
  );
}

/** The application's metrics text, or '' when it cannot be scraped (the proxy's own still answer). */
function scrapeApp(host: string, scrape: AppScrape): Promise<string> {
  return new Promise((resolve) => {
    const req = request({ host, port: scrape.port, path: scrape.path, timeout: APP_SCRAPE_TIMEOUT_MS, headers: { accept: 'text/plain' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.once('end', () => resolve(res.statusCode === 200 ? Buffer.concat(chunks).toString('utf8') : ''));
      res.once('error', () => resolve(''));
    });
    req.once('timeout', () => req.destroy());
    req.once('error', () => resolve(''));
    req.end();
  });
}

