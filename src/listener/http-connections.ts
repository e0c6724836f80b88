/**
 * The HTTP/1.1 connections a listener serves: created from accepted sockets, swept for header
 * and idle timeouts once a second, and closed together on shutdown.
 */
import type { Socket } from 'node:net';
import { H1ServerConnection, type DownstreamContext, type ServerConnectionOptions, type StreamHandler } from '../http/codec/h1/server-connection.js';

export class HttpConnections {
  readonly #connections = new Set<H1ServerConnection>();
  readonly #handler: StreamHandler;
  readonly #options: ServerConnectionOptions;
  #sweeper: NodeJS.Timeout | null = null;
  /** Set by a graceful closeAll: connections adopted later (after sniffing) close after one response. */
  #closing = false;

  constructor(handler: StreamHandler, options: ServerConnectionOptions) {
    this.#handler = handler;
    this.#options = options;
  }

  get size(): number {
    return this.#connections.size;
  }

  /**
   * Serves HTTP on `socket`, with what the listener learned about the connection; `handler`
   * replaces the default one for this connection (a gateway server's own routes).
   */
  adopt(socket: Socket, context: DownstreamContext = {}, handler: StreamHandler = this.#handler): void {
    if (this.#sweeper === null && !this.#closing) {
      this.#sweeper = setInterval(() => this.#sweep(), 1000);
      this.#sweeper.unref();
    }
    const conn = new H1ServerConnection(socket, handler, this.#options, context);
    this.#connections.add(conn);
    conn.onClose = (c) => this.#connections.delete(c);
    // Its first request is already on the way (it was sniffed): serve it, then close.
    if (this.#closing) conn.markClose();
  }

  #sweep(): void {
    const now = performance.now();
    for (const c of this.#connections) c.sweep(now);
  }

  /** Closes every connection once idle (graceful), or at once (`force`); stops the sweeper. */
  closeAll(force: boolean): void {
    this.#closing = true;
    if (this.#sweeper !== null) clearInterval(this.#sweeper);
    this.#sweeper = null;
    for (const c of this.#connections) {
      if (force) c.socket.destroy();
      else c.close();
    }
  }
}
