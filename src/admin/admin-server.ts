/**
 * The admin server (Envoy's admin port, 15000, bound to localhost), the readiness server
 * (15021 `/healthz/ready`) and the sidecar's status server (15020). Plain node:http: none of this is on the request path.
 */
import { isLocalCaller } from '../core/addresses.js';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

/** What the admin endpoints read from the running proxy. */
export interface AdminView {
  readonly ready: boolean;
  configStatus(): unknown;
  configDump(): unknown;
  /** Lines in Envoy's /clusters text format. */
  clusterLines(): string[];
  /** Envoy's /certs: the certificates in use and how long each has left. */
  certs(): unknown;
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

function send(res: ServerResponse, status: number, body: string, type = 'text/plain; charset=UTF-8'): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function json(res: ServerResponse, value: unknown): void {
  send(res, 200, JSON.stringify(value, null, 2) + '\n', 'application/json');
}

function serve(routes: Record<string, Handler>): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    const handler = routes[path];
    if (handler === undefined) send(res, 404, `no admin endpoint ${path}\n`);
    else handler(req, res);
  });
}

export function createAdminServer(view: AdminView): Server {
  return serve({
    '/ready': (_req, res) => send(res, view.ready ? 200 : 503, view.ready ? 'LIVE\n' : 'PRE_INITIALIZING\n'),
    '/config_dump': (_req, res) => json(res, view.configDump()),
    '/config_status': (_req, res) => json(res, view.configStatus()),
    '/clusters': (_req, res) => send(res, 200, view.clusterLines().join('\n') + '\n'),
    '/certs': (_req, res) => json(res, view.certs()),
    '/': (_req, res) => send(res, 200, ['/ready', '/config_dump', '/config_status', '/clusters', '/certs'].join('\n') + '\n'),
  });
}

export function createReadinessServer(view: AdminView): Server {
  return serve({
    '/healthz/ready': (_req, res) => send(res, view.ready ? 200 : 503, view.ready ? '' : 'config not loaded\n'),
  });
}

/**
 * The status server (pilot-agent's 15020): readiness, and `POST /quitquitquit`, which ends the
 * proxy (a Job's last step). Only a local caller may quit it, as with pilot-agent.
 */
export function createStatusServer(view: AdminView, quit: () => void): Server {
  return serve({
    '/healthz/ready': (_req, res) => send(res, view.ready ? 200 : 503, view.ready ? '' : 'config not loaded\n'),
    '/quitquitquit': (req, res) => {
      if (req.method !== 'POST') return send(res, 405, 'POST only\n');
      if (!isLocalCaller(req.socket.remoteAddress ?? '')) return send(res, 403, 'only local callers may quit the proxy\n');
      send(res, 200, 'OK\n');
      quit();
    },
  });
}
