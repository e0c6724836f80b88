/**
 * Keep-alive connection pool for one upstream host, under its cluster's circuit breakers. It
 * owns sockets, not protocols: the HTTP/1 exchange on a connection lives with the router, which
 * borrows a connection, installs its reader, and gives the connection back (reusable or not).
 *
 * Borrowing follows Envoy's HTTP/1 pool:
 * - an idle connection is lent at once, if the cluster is under max requests;
 * - otherwise the request waits as pending (refused with `overflow` over max pending requests)
 *   while connections open, as many as there are pending requests and the cluster's max
 *   connections allow, but always at least one per host;
 * - a released connection goes to the oldest pending request before it goes idle;
 * - a connect failure fails every pending request of the pool.
 *
 * Invariants:
 * - A connection is either idle (in `#idle`, no reader) or borrowed (exactly one user).
 * - Bytes or EOF on an idle connection mean the peer closed or misbehaved: it is destroyed.
 * - Idle connections are reused most-recent first, so a burst's extra connections age out.
 * - Each borrow counts once in the cluster's active requests, each pending acquire once in its
 *   pending requests, each open or opening connection once in its connections.
 */
import type { Socket } from 'node:net';
import { connectUpstream, type ConnectFailure, type ConnectTarget } from '../connect.js';
import { ResourceManager } from '../resource-manager.js';

export type { ConnectFailure, ConnectTarget } from '../connect.js';

/** The failure an acquire gets when a circuit breaker refuses it. */
export const OVERFLOW: ConnectFailure = { reason: 'overflow', transport: '' };

export interface PoolOptions {
  readonly connectTimeoutMs: number;
  /** Idle time after which a pooled connection is closed (Istio http.idleTimeout, 1h). */
  readonly idleTimeoutMs: number;
  /** Requests per connection before it is retired; 0 = unlimited. */
  readonly maxRequestsPerConnection: number;
}

export type AcquireCallback = (err: ConnectFailure | null, conn: PooledConnection | null) => void;

/** A request waiting for a connection; `cancel` withdraws it (the callback never runs). */
export class PendingAcquire {
  constructor(
    readonly cb: AcquireCallback,
    readonly pool: ConnectionPool,
  ) {}
  done = false;

  cancel(): void {
    this.pool.cancel(this);
  }
}

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
  /** Lent out and counted in the cluster's active requests. */
  borrowed = false;
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
    this.#pool.endBorrow(this);
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
  readonly #resources: ResourceManager;
  readonly #idle: PooledConnection[] = [];
  /** Every open connection, idle or borrowed. */
  readonly #all = new Set<PooledConnection>();
  /** Waiting requests, oldest first (cancelled ones are skipped when reached). */
  #pending: PendingAcquire[] = [];
  #pendingCount = 0;
  #connecting = 0;
  #retired = false;
  #destroyed = false;

  constructor(target: ConnectTarget, options: PoolOptions, resources = new ResourceManager(UNLIMITED)) {
    this.target = target;
    this.#options = options;
    this.#resources = resources;
  }

  get pendingRequests(): number {
    return this.#pendingCount;
  }

  get activeConnections(): number {
    return this.#all.size;
  }

  get idleConnections(): number {
    return this.#idle.length;
  }

  /**
   * Lends an idle connection (the callback runs synchronously and null is returned), refuses
   * with OVERFLOW (synchronously, null), or queues the request and returns its handle.
   */
  acquire(cb: AcquireCallback): PendingAcquire | null {
    const resources = this.#resources;
    if (!resources.canStartRequest()) return this.#overflow(cb);
    const idle = this.#idle;
    while (idle.length > 0) {
      const conn = idle.pop()!;
      if (conn.closed) continue;
      this.#lend(conn, cb);
      return null;
    }
    if (!resources.canQueueRequest()) return this.#overflow(cb);
    const pending = new PendingAcquire(cb, this);
    this.#pending.push(pending);
    this.#pendingCount++;
    resources.pendingRequests++;
    this.#openForPending();
    return pending;
  }

  #overflow(cb: AcquireCallback): null {
    this.#resources.overflows++;
    cb(OVERFLOW, null);
    return null;
  }

  #lend(conn: PooledConnection, cb: AcquireCallback): void {
    conn.requests++;
    conn.borrowed = true;
    this.#resources.requests++;
    cb(null, conn);
  }

  /** Withdraws a pending request. */
  cancel(pending: PendingAcquire): void {
    if (pending.done) return;
    pending.done = true;
    this.#pendingCount--;
    this.#resources.pendingRequests--;
    const i = this.#pending.indexOf(pending);
    if (i !== -1) this.#pending.splice(i, 1);
  }

  /** The oldest pending request still waiting, taken off the queue; undefined when none. */
  #nextPending(): PendingAcquire | undefined {
    while (this.#pending.length > 0) {
      const p = this.#pending.shift()!;
      if (p.done) continue;
      p.done = true;
      this.#pendingCount--;
      this.#resources.pendingRequests--;
      return p;
    }
    return undefined;
  }

  /** Opens connections for pending requests, within the cluster's limit but at least one per host. */
  #openForPending(): void {
    const resources = this.#resources;
    while (this.#pendingCount > this.#connecting && (resources.canOpenConnection() || this.#all.size + this.#connecting === 0)) {
      this.#open();
    }
  }

  #open(): void {
    this.#connecting++;
    this.#resources.connections++;
    connectUpstream(this.target, this.#options.connectTimeoutMs, (err, socket) => {
      this.#connecting--;
      if (err !== null) {
        this.#resources.connections--;
        // Envoy fails every pending request on a connect failure; callers decide on retries.
        for (let p = this.#nextPending(); p !== undefined; p = this.#nextPending()) p.cb(err, null);
        return;
      }
      const conn = new PooledConnection(socket!, this);
      this.#all.add(conn);
      const next = this.#nextPending();
      if (next === undefined) this.#makeIdle(conn);
      else this.#lend(conn, next.cb);
    });
  }

  #makeIdle(conn: PooledConnection): void {
    if (this.#retired) {
      conn.destroy();
      return;
    }
    conn.idleSince = performance.now();
    this.#idle.push(conn);
  }

  /** The borrow of `conn` ended (released or destroyed while lent). */
  endBorrow(conn: PooledConnection): void {
    if (!conn.borrowed) return;
    conn.borrowed = false;
    this.#resources.requests--;
  }

  /**
   * Gives a borrowed connection back. `reusable` is the borrower's verdict (the exchange ended
   * cleanly and both sides allow keep-alive); the pool adds its own limits.
   */
  release(conn: PooledConnection, reusable: boolean): void {
    conn.user = null;
    this.endBorrow(conn);
    const max = this.#options.maxRequestsPerConnection;
    if (!reusable || conn.closed || this.#retired || (max > 0 && conn.requests >= max)) {
      conn.destroy();
      return;
    }
    const next = this.#pendingCount > 0 && this.#resources.canStartRequest() ? this.#nextPending() : undefined;
    if (next === undefined) this.#makeIdle(conn);
    else this.#lend(conn, next.cb);
  }

  /** Removes a connection that closed or was destroyed; a pending request may get a new one. */
  forget(conn: PooledConnection): void {
    if (!this.#all.delete(conn)) return;
    this.#resources.connections--;
    const i = this.#idle.indexOf(conn);
    if (i !== -1) this.#idle.splice(i, 1);
    if (this.#pendingCount > 0 && !this.#destroyed) this.#openForPending();
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
    this.#destroyed = true;
    for (const conn of [...this.#all]) conn.destroy();
  }
}

const UNLIMITED = { maxConnections: Infinity, maxPendingRequests: Infinity, maxRequests: Infinity, maxRetries: Infinity };
