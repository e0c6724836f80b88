/**
 * The HTTP connections a listener serves: HTTP/1.1 from accepted sockets (swept for header and
 * idle timeouts once a second), and HTTP/2 sessions for those that open with the h2 preface;
 * closed together on shutdown (HTTP/2 with GOAWAY).
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { H1ServerConnection, type DownstreamContext, type ServerConnectionOptions, type StreamHandler } from '../http/codec/h1/server-connection.js';
import { H2Connections } from '../http/codec/h2/server.js';
import type { DownstreamConnectionInfo } from '../http/stream.js';

export class HttpConnections {
  readonly #connections = new Set<H1ServerConnection>();
  readonly #handler: StreamHandler;
  readonly #options: ServerConnectionOptions;
  #sweeper: NodeJS.Timeout | null = null;
  /** Set by a graceful closeAll: connections adopted later (after sniffing) close after one response. */
  #closing = false;

  /** HTTP/2 sessions, created with the first one; each is served by the handler of the connection it came from. */
  readonly #h2 = new Map<StreamHandler, H2Connections>();

  constructor(handler: StreamHandler, options: ServerConnectionOptions) {
    this.#handler = handler;
    this.#options = options;
  }

  get size(): number {
    let h2 = 0;
    for (const c of this.#h2.values()) h2 += c.size;
    return this.#connections.size + h2;
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
    const http2 = (transport: Socket | Duplex, initial: Buffer | null, connection: DownstreamConnectionInfo): void => this.#adoptH2(handler, transport, initial, connection);
    const conn = new H1ServerConnection(socket, handler, { ...this.#options, http2 }, context);
    this.#connections.add(conn);
    conn.onClose = (c) => this.#connections.delete(c);
    // Its first request is already on the way (it was sniffed): serve it, then close.
    if (this.#closing) conn.markClose();
  }

  #adoptH2(handler: StreamHandler, socket: Socket | Duplex, initial: Buffer | null, connection: DownstreamConnectionInfo): void {
    let h2 = this.#h2.get(handler);
    if (h2 === undefined) {
      // Handlers come and go with a gateway's servers: forget those without sessions left.
      for (const [k, c] of this.#h2) if (c.size === 0) this.#h2.delete(k);
      h2 = new H2Connections(handler, { idleTimeoutMs: this.#options.idleTimeoutMs, onRequestDone: this.#options.onRequestDone });
      this.#h2.set(handler, h2);
      if (this.#closing) h2.closeAll(false);
    }
    h2.adopt(socket, initial, connection);
  }

  #sweep(): void {
    const now = performance.now();
    for (const c of this.#connections) c.sweep(now);
  }

  /**
   * Closes every connection once idle (graceful), or at once (`force`). A graceful close keeps
   * the sweeper, so a client stalling in the middle of a request head is still timed out.
   */
  closeAll(force: boolean): void {
    this.#closing = true;
    if (force && this.#sweeper !== null) {
      clearInterval(this.#sweeper);
      this.#sweeper = null;
    }
    for (const c of this.#connections) {
      if (force) c.socket.destroy();
      else c.close();
    }
    for (const h2 of this.#h2.values()) h2.closeAll(force);
  }
}
