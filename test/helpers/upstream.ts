/**
 * Real upstream servers for tests (node:http on 127.0.0.1, port 0). Every response says which
 * server answered and what it received, so tests can assert on routing and on the exact request
 * the proxy sent.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  readonly server: string;
  readonly method: string;
  readonly url: string;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly rawHeaders: string[];
  readonly bodyLength: number;
  readonly httpVersion: string;
  /** The client's port: requests sharing one came over one connection. */
  readonly remotePort: number;
}

export interface Upstream {
  readonly name: string;
  readonly port: number;
  readonly server: Server;
  /** Requests received, oldest first. */
  readonly requests: Received[];
  close(): Promise<void>;
}

export type Handler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => boolean | void;

/**
 * Special paths: `/status/<code>` answers that status; `/bytes/<n>` answers n bytes; `/echo`
 * answers the request body; `/chunked/<n>` answers n bytes chunked. Anything else answers JSON
 * describing the request. A custom handler runs first and may take over by returning true.
 */
export async function startUpstream(name: string, handler?: Handler): Promise<Upstream> {
  const requests: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    let length = 0;
    const keep = req.url === '/echo' || handler !== undefined;
    req.on('data', (c: Buffer) => {
      length += c.length;
      if (keep) chunks.push(c);
    });
    req.on('end', () => {
      const body = keep ? Buffer.concat(chunks) : Buffer.alloc(0);
      requests.push({
        server: name,
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        bodyLength: length,
        httpVersion: req.httpVersion,
        remotePort: req.socket.remotePort ?? 0,
      });
      if (handler?.(req, res, body) === true) return;
      const url = req.url ?? '/';
      let m: RegExpExecArray | null;
      if ((m = /^\/status\/(\d{3})/.exec(url)) !== null) {
        res.writeHead(Number(m[1]), { 'x-server': name });
        res.end();
      } else if ((m = /^\/bytes\/(\d+)/.exec(url)) !== null) {
        const n = Number(m[1]);
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': n, 'x-server': name });
        res.end(Buffer.alloc(n, 0x61));
      } else if ((m = /^\/chunked\/(\d+)/.exec(url)) !== null) {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-server': name });
        let left = Number(m[1]);
        while (left > 0) {
          const n = Math.min(left, 16384);
          res.write(Buffer.alloc(n, 0x62));
          left -= n;
        }
        res.end();
      } else if (url === '/echo') {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-server': name });
        res.end(body);
      } else {
        const json = JSON.stringify({ server: name, method: req.method, url, headers: req.headers, bodyLength: length });
        res.writeHead(200, { 'content-type': 'application/json', 'x-server': name });
        res.end(req.method === 'HEAD' ? undefined : json);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    name,
    port,
    server,
    requests,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
