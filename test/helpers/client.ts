/**
 * HTTP clients for tests: node:http with keep-alive (a real client), and a raw socket client
 * for byte-exact requests and responses.
 */
import { Agent, request as httpRequest } from 'node:http';
import { connect } from 'node:net';

export interface Response {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
  text(): string;
  json<T = any>(): T; // eslint-disable-line @typescript-eslint/no-explicit-any
}

const agent = new Agent({ keepAlive: true, maxSockets: 64 });

export interface RequestOptions {
  readonly method?: string;
  readonly headers?: Record<string, string | string[]>;
  readonly body?: Buffer | string;
  readonly agent?: Agent | false;
}

/** Sends one request to 127.0.0.1:port with the given path (Host comes from headers). */
export function request(port: number, path: string, options: RequestOptions = {}): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port, path, method: options.method ?? 'GET', headers: options.headers, agent: options.agent ?? agent },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body,
            text: () => body.toString(),
            json: () => JSON.parse(body.toString()),
          });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (options.body !== undefined) req.end(options.body);
    else req.end();
  });
}

/** GET with a Host header; the most common call in routing tests. */
export function get(port: number, host: string, path = '/', headers: Record<string, string> = {}): Promise<Response> {
  return request(port, path, { headers: { host, ...headers } });
}

/**
 * Writes raw bytes on a new connection and collects everything until the server closes or
 * `idleMs` pass without data. Returns the bytes received and whether the server closed.
 */
export function rawExchange(port: number, data: string | Buffer, idleMs = 300): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    const finish = (closed: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ text: Buffer.concat(chunks).toString('latin1'), closed });
    };
    const arm = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => finish(false), idleMs);
    };
    socket.on('connect', () => {
      socket.write(data);
      arm();
    });
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      arm();
    });
    socket.on('end', () => finish(true));
    socket.on('error', (err) => (chunks.length > 0 ? finish(true) : reject(err)));
  });
}

/** Parses the status line of a raw response. */
export function statusOf(raw: string): number {
  const m = /^HTTP\/1\.1 (\d{3})/.exec(raw);
  return m === null ? 0 : Number(m[1]);
}
