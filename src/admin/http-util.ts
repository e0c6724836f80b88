/** Small helpers shared by the admin-side servers (plain node:http, never on the request path). */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

export type Handler = (req: IncomingMessage, res: ServerResponse, query: URLSearchParams) => void | Promise<void>;

export const TEXT = 'text/plain; charset=UTF-8';
export const PROMETHEUS_TEXT = 'text/plain; version=0.0.4; charset=utf-8';

export function send(res: ServerResponse, status: number, body: string, type = TEXT): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

export function json(res: ServerResponse, value: unknown): void {
  send(res, 200, JSON.stringify(value, null, 2) + '\n', 'application/json');
}

/** Answers 405 and returns false unless the request is a POST (Envoy's mutating admin endpoints). */
export function postOnly(req: IncomingMessage, res: ServerResponse): boolean {
  if (req.method === 'POST') return true;
  send(res, 405, 'This endpoint requires POST\n');
  return false;
}

/**
 * A server answering `routes` by exact path (the query string is passed apart); 404 otherwise,
 * and `prefixes` for paths under a prefix. A handler that throws answers 500.
 */
export function serve(routes: Record<string, Handler>, prefixes: Record<string, Handler> = {}): Server {
  return createServer((req, res) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const query = new URLSearchParams(q < 0 ? '' : url.slice(q + 1));
    const handler = routes[path] ?? Object.entries(prefixes).find(([p]) => path.startsWith(p))?.[1];
    if (handler === undefined) {
      send(res, 404, `no endpoint ${path}\n`);
      return;
    }
    Promise.resolve()
      .then(() => handler(req, res, query))
      .catch((err: unknown) => {
        if (!res.headersSent) send(res, 500, `${(err as Error).message}\n`);
        else res.destroy();
      });
  });
}
