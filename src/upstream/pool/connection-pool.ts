/**
 * Keep-alive connection pool for one upstream host. It owns sockets, not protocols: the HTTP/1
 * exchange on a connection lives with the router, which borrows a connection, installs its
 * reader, and gives the connection back (reusable or not).
 *
 * Invariants:
 * - A connection is either idle (in `#idle`, no reader) or borrowed (exactly one user).
 * - Bytes or EOF on an idle connection mean the peer closed or misbehaved: it is destroyed.
 * - Idle connections are reused most-recent first, so a burst's extra connections age out.
 */
import type { Socket } from 'node:net';
import { connectUpstream, type ConnectFailure, type ConnectTarget } from '../connect.js';

export type { ConnectFailure, ConnectTarget } from '../connect.js';

export interface PoolOptions {
  readonly connectTimeoutMs: number;
  /** Idle time after which a pooled connection is closed (Istio http.idleTimeout, 1h). */
  readonly idleTimeoutMs: number;
  /** Requests per connection before it is retired; 0 = unlimited. */
  readonly maxRequestsPerConnection: number;
}

export type AcquireCallback = (err: ConnectFailure | null, conn: PooledConnection | null) => void;

/** The borrower of a connection: receives what happens on the socket while it holds it. */
export interface ConnectionUser {
  /** Every byte read while borrowed. */
  onSocketData(chunk: Buffer): void;
  /** Called once if the socket ends or fails while borrowed. */
  onSocketClose(): void;
}

export class PooledConnection {
  readonly socket: Socket;
  /** Requests started on this connection. */
  requests = 0;
  /** The current borrower; null while idle. */
  user: ConnectionUser | null = null;
  /**
   * Protocol state the borrowers keep across borrows (e.g. the HTTP/1 response decoder). The
   * pool never reads it.
   */
  attachment: unknown = null;
  idleSince = 0;
  closed = false;
  readonly #pool: ConnectionPool;

  constructor(socket: Socket, pool: ConnectionPool) {
    this.socket = socket;
    this.#pool = pool;
    socket.on('data', (chunk: Buffer) => {
      const user = this.user;
      if (user !== null) user.onSocketData(chunk);
      else this.destroy(); // unsolicited bytes on an idle connection
    });
    socket.on('end', () => this.#lost());
    socket.on('error', () => this.#lost());
    socket.on('close', () => this.#lost());
  }

  /** Whether this connection was used before (a failure on it may just be a stale keep-alive). */
  get reused(): boolean {
    return this.requests > 1;
  }

  /** Closes the connection; a borrower still holding it is told, as if the peer had closed. */
  destroy(): void {
    const wasOpen = !this.closed;
    if (wasOpen) {
      this.closed = true;
      this.socket.destroy();
    }
    this.#pool.forget(this);
    const user = this.user;
    this.user = null;
    if (wasOpen && user !== null) user.onSocketClose();
  }

  /** The socket ended or failed: the same as destroying it. */
  #lost(): void {
    this.destroy();
  }
}

export class ConnectionPool {
  readonly target: ConnectTarget;
  readonly #options: PoolOptions;
  readonly #idle: PooledConnection[] = [];
  /** Every open connection, idle or borrowed. */
  readonly #all = new Set<PooledConnection>();
  #retired = false;

  constructor(target: ConnectTarget, options: PoolOptions) {
    this.target = target;
    this.#options = options;
  }

  get activeConnections(): number {
    return this.#all.size;
  }

  get idleConnections(): number {
    return this.#idle.length;
  }

  /** Borrows an idle connection or opens a new one. The callback may run synchronously. */
  acquire(cb: AcquireCallback): void {
    const idle = this.#idle;
    while (idle.length > 0) {
      const conn = idle.pop()!;
      if (conn.closed) continue;
      conn.requests++;
      cb(null, conn);
      return;
    }
    this.#open(cb);
  }

  #open(cb: AcquireCallback): void {
    connectUpstream(this.target, this.#options.connectTimeoutMs, (err, socket) => {
      if (err !== null) {
        cb(err, null);
        return;
      }
      const conn = new PooledConnection(socket!, this);
      conn.requests = 1;
      this.#all.add(conn);
      cb(null, conn);
    });
  }

  /**
   * Gives a borrowed connection back. `reusable` is the borrower's verdict (the exchange ended
   * cleanly and both sides allow keep-alive); the pool adds its own limits.
   */
  release(conn: PooledConnection, reusable: boolean): void {
    conn.user = null;
    const max = this.#options.maxRequestsPerConnection;
    if (!reusable || conn.closed || this.#retired || (max > 0 && conn.requests >= max)) {
      conn.destroy();
      return;
    }
    conn.idleSince = performance.now();
    this.#idle.push(conn);
  }

  /** Removes a connection that closed or was destroyed. */
  forget(conn: PooledConnection): void {
    if (!this.#all.delete(conn)) return;
    const i = this.#idle.indexOf(conn);
    if (i !== -1) this.#idle.splice(i, 1);
  }

  /** Closes connections idle for longer than the idle timeout. */
  sweep(now: number): void {
    const limit = this.#options.idleTimeoutMs;
    if (limit <= 0) return;
    for (const conn of [...this.#idle]) if (now - conn.idleSince > limit) conn.destroy();
  }

  /** Stops reuse: idle connections close now, borrowed ones when they are released. */
  retire(): void {
    this.#retired = true;
    for (const conn of [...this.#idle]) conn.destroy();
  }

  /** Closes everything, borrowed connections included. */
  destroy(): void {
    this.#retired = true;
    for (const conn of [...this.#all]) conn.destroy();
  }
}
