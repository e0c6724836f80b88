/**
 * A raw-socket HTTP/1.1 client for tests that need byte-level control: several requests on one
 * connection, pipelining, bodiless responses, and seeing exactly when the server closes. It
 * parses responses itself (Content-Length, chunked, bodiless) so that nothing lenient sits
 * between the test and the proxy's bytes.
 */
import { connect, type Socket } from 'node:net';

export interface RawResponse {
  readonly statusLine: string;
  readonly status: number;
  /** Lowercase names; repeated fields joined with ", ". */
  readonly headers: Record<string, string>;
  readonly body: Buffer;
  /** Trailer fields of a chunked body, lowercase names. */
  readonly trailers: Record<string, string>;
}

/**
 * Parses one response from buf[offset…]. Returns null when more bytes are needed. `bodiless`
 * says the request was HEAD. Throws on bytes that are not a well-formed response.
 */
export function parseResponse(buf: Buffer, offset: number, bodiless: boolean): { response: RawResponse; next: number } | null {
  const end = buf.indexOf('\r\n\r\n', offset, 'latin1');
  if (end === -1) return null;
  const lines = buf.toString('latin1', offset, end).split('\r\n');
  const statusLine = lines[0]!;
  const m = /^HTTP\/1\.1 (\d{3}) /.exec(statusLine + ' ');
  if (m === null) throw new Error(`bad status line ${JSON.stringify(statusLine)}`);
  const status = Number(m[1]);
  const headers = fields(lines.slice(1));
  let pos = end + 4;
  const trailers: Record<string, string> = {};
  let body: Buffer;
  if (bodiless || (status >= 100 && status < 200) || status === 204 || status === 304) {
    body = Buffer.alloc(0);
  } else if (headers['transfer-encoding'] === 'chunked') {
    const parts: Buffer[] = [];
    for (;;) {
      const lineEnd = buf.indexOf('\r\n', pos, 'latin1');
      if (lineEnd === -1) return null;
      const size = parseInt(buf.toString('latin1', pos, lineEnd).split(';')[0]!, 16);
      if (!Number.isFinite(size)) throw new Error('bad chunk size');
      pos = lineEnd + 2;
      if (size === 0) {
        const tEnd = buf.indexOf('\r\n\r\n', pos - 2, 'latin1');
        if (tEnd === -1) return null;
        Object.assign(trailers, fields(buf.toString('latin1', pos, tEnd).split('\r\n').filter((l) => l !== '')));
        pos = tEnd + 4;
        break;
      }
      if (buf.length < pos + size + 2) return null;
      parts.push(buf.subarray(pos, pos + size));
      if (buf[pos + size] !== 0x0d || buf[pos + size + 1] !== 0x0a) throw new Error('chunk not followed by CRLF');
      pos += size + 2;
    }
    body = Buffer.concat(parts);
  } else if (headers['content-length'] !== undefined) {
    const n = Number(headers['content-length']);
    if (buf.length < pos + n) return null;
    body = Buffer.from(buf.subarray(pos, pos + n));
    pos += n;
  } else {
    throw new Error('response without framing (close-delimited) is not expected from the proxy');
  }
  return { response: { statusLine, status, headers, body, trailers }, next: pos };
}

function fields(lines: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of lines) {
    const i = line.indexOf(':');
    const name = line.slice(0, i).toLowerCase();
    const value = line.slice(i + 1).trim();
    out[name] = out[name] === undefined ? value : `${out[name]}, ${value}`;
  }
  return out;
}

/** One client connection; responses are read in order with `read`. */
export class RawClient {
  readonly socket: Socket;
  #buf: Buffer = Buffer.alloc(0);
  #ended = false;
  #waiter: (() => void) | null = null;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (c: Buffer) => {
      this.#buf = this.#buf.length === 0 ? c : Buffer.concat([this.#buf, c]);
      this.#wake();
    });
    socket.on('end', () => {
      this.#ended = true;
      this.#wake();
    });
    socket.on('error', () => {
      this.#ended = true;
      this.#wake();
    });
    socket.on('close', () => {
      this.#ended = true;
      this.#wake();
    });
  }

  static connect(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => resolve(new RawClient(socket)));
      socket.once('error', reject);
    });
  }

  /** Whether the server has closed (or reset) the connection. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Bytes received and not yet consumed by `read`. */
  get pending(): Buffer {
    return this.#buf;
  }

  write(data: string | Buffer): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  /** Reads the next response; rejects if the server closes first or after `timeoutMs`. */
  async read(options: { head?: boolean; timeoutMs?: number } = {}): Promise<RawResponse> {
    const deadline = Date.now() + (options.timeoutMs ?? 5000);
    for (;;) {
      const parsed = parseResponse(this.#buf, 0, options.head === true);
      if (parsed !== null) {
        this.#buf = this.#buf.subarray(parsed.next);
        return parsed.response;
      }
      if (this.#ended) throw new Error(`connection closed before a full response: ${JSON.stringify(this.#buf.toString('latin1'))}`);
      if (!(await this.#wait(deadline))) throw new Error(`no full response in time: ${JSON.stringify(this.#buf.toString('latin1'))}`);
    }
  }

  /** Resolves true once the server has closed, false if it is still open after `timeoutMs`. */
  async closed(timeoutMs = 3000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.#ended) if (!(await this.#wait(deadline))) return false;
    return true;
  }

  /** Waits for the next data or close event; false when the deadline passed. */
  #wait(deadline: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#waiter = null;
        resolve(false);
      }, Math.max(0, deadline - Date.now()));
      this.#waiter = () => {
        clearTimeout(timer);
        this.#waiter = null;
        resolve(true);
      };
    });
  }

  #wake(): void {
    this.#waiter?.();
  }

  destroy(): void {
    this.socket.destroy();
  }
}
