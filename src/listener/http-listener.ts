/**
 * A TCP listener that speaks HTTP/1.1 on every connection (the standalone outbound listener).
 * It tracks connections so it can sweep timeouts and drain them on shutdown.
 */
import { createServer, type Server } from 'node:net';
import type { ServerConnectionOptions, StreamHandler } from '../http/codec/h1/server-connection.js';
import { HttpConnections } from './http-connections.js';
import { listenOn } from '../core/listen.js';

export interface HttpListenerOptions extends ServerConnectionOptions {
  readonly host: string;
  readonly port: number;
}

export class HttpListener {
  readonly #server: Server;
  readonly #connections: HttpConnections;
  readonly #options: HttpListenerOptions;
  /** Set by the first `close`; resolves when the server and every connection are closed. */
  #closed: Promise<void> | null = null;

  constructor(handler: StreamHandler, options: HttpListenerOptions) {
    this.#options = options;
    this.#connections = new HttpConnections(handler, options);
    this.#server = createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.#connections.adopt(socket));
  }

  /** Resolves with the bound port (useful when listening on port 0). */
  listen(): Promise<number> {
    return listenOn(this.#server, this.#options.host, this.#options.port);
  }

  get connectionCount(): number {
    return this.#connections.size;
  }

  /**
   * Stops accepting; open connections close once idle (graceful) or at once (`force`). A CONNECT
   * tunnel is not HTTP any more and stays open until its peers close it or a forced close. May be
   * called again with `force` to cut a graceful close short; every call resolves once the last
   * connection is gone.
   */
  close(force = false): Promise<void> {
    this.#closed ??= new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#connections.closeAll(force);
    return this.#closed;
  }
}
