/**
 * A TCP listener that speaks HTTP/1.1 on every connection (the standalone outbound listener).
 * It tracks connections so it can sweep timeouts and drain them on shutdown.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { H1ServerConnection, type ServerConnectionOptions, type StreamHandler } from '../http/codec/h1/server-connection.js';

export interface HttpListenerOptions extends ServerConnectionOptions {
  readonly host: string;
  readonly port: number;
}

export class HttpListener {
  readonly #server: Server;
  readonly #connections = new Set<H1ServerConnection>();
  readonly #options: HttpListenerOptions;
  readonly #handler: StreamHandler;
  #sweeper: NodeJS.Timeout | null = null;
  /** Set by the first `close`; resolves when the server and every connection are closed. */
  #closed: Promise<void> | null = null;

  constructor(handler: StreamHandler, options: HttpListenerOptions) {
    this.#handler = handler;
    this.#options = options;
    this.#server = createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.#accept(socket));
  }

  /** Resolves with the bound port (useful when listening on port 0). */
  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen({ host: this.#options.host, port: this.#options.port, backlog: 4096 }, () => {
        this.#server.removeListener('error', reject);
        this.#sweeper = setInterval(() => this.#sweep(), 1000);
        this.#sweeper.unref();
        const addr = this.#server.address();
        resolve(typeof addr === 'object' && addr !== null ? addr.port : this.#options.port);
      });
    });
  }

  get connectionCount(): number {
    return this.#connections.size;
  }

  #accept(socket: Socket): void {
    const conn = new H1ServerConnection(socket, this.#handler, this.#options);
    this.#connections.add(conn);
    conn.onClose = (c) => this.#connections.delete(c);
  }

  #sweep(): void {
    const now = performance.now();
    for (const c of this.#connections) c.sweep(now);
  }

  /**
   * Stops accepting; open connections close once idle (graceful) or at once (`force`). A CONNECT
   * tunnel is not HTTP any more and stays open until its peers close it or a forced close. May be
   * called again with `force` to cut a graceful close short; every call resolves once the last
   * connection is gone.
   */
  close(force = false): Promise<void> {
    if (this.#sweeper !== null) clearInterval(this.#sweeper);
    this.#closed ??= new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const c of this.#connections) {
      if (force) c.socket.destroy();
      else c.close();
    }
    return this.#closed;
  }
}
