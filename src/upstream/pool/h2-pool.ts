/**
 * HTTP/2 connections to one upstream host: each session carries many streams. A request gets
 * the first session with room (fewer than `maxConcurrentStreams` streams open, not draining);
 * when none has room it waits, counted as a pending request (bounded by the cluster's
 * maxPendingRequests), for a session being opened (the breakers allowing) or a stream to end;
 * a request that gives up first leaves the queue. A session stops
 * taking streams after the peer's GOAWAY, a close, or `maxRequestsPerConnection` streams, and
 * closes once its last stream ends. Each open session counts as one connection, each granted
 * stream as one request, against the cluster's circuit breakers.
 */
import { connect as http2Connect, type ClientHttp2Session } from 'node:http2';
import type { Socket } from 'node:net';
import { connectUpstream, upstreamConnectionFacts, type ConnectFailure, type ConnectTarget, type UpstreamConnectionFacts } from '../connect.js';
import type { ResourceManager } from '../resource-manager.js';
import { OVERFLOW } from './connection-pool.js';

export type SessionCallback = (err: ConnectFailure | null, session: ClientHttp2Session | null) => void;

export interface H2PoolOptions {
  /** Used only for clients that spoke HTTP/2 (useClientProtocol, the inbound passthrough). */
  readonly clientProtocol?: boolean;
  readonly connectTimeoutMs: number;
  /** Streams per session over its life; 0 = unlimited. */
  readonly maxRequestsPerConnection: number;
  /** Streams open at once per session (DestinationRule maxConcurrentStreams); 0 = unlimited. */
  readonly maxConcurrentStreams?: number;
  /** A session without traffic this long is closed. */
  readonly idleTimeoutMs: number;
}

interface SessionState {
  /** The connection under the session (telemetry). */
  readonly facts: UpstreamConnectionFacts;
  /** Streams granted and not yet released. */
  active: number;
  /** Streams granted over the session's life. */
  total: number;
  /** Takes no new streams (GOAWAY, closing, or its stream budget is spent). */
  draining: boolean;
}

/** A request waiting for room on a session; `cancel` takes it out of the queue. */
export interface H2Waiter {
  cancel(): void;
}

interface Waiter {
  readonly cb: SessionCallback;
  cancelled: boolean;
}

export class H2Pool {
  /** HTTP/2 only for requests whose client spoke HTTP/2; HTTP/1.1 for the others. */
  readonly clientProtocol: boolean;
  readonly #target: ConnectTarget;
  readonly #options: H2PoolOptions;
  readonly #resources: ResourceManager;
  readonly #sessions = new Map<ClientHttp2Session, SessionState>();
  /** Requests waiting for room, oldest first; each counts as a pending request. */
  #queue: Waiter[] = [];
  /** Sessions being opened. */
  #connecting = 0;
  /** Retired or destroyed: takes no new requests. */
  #closed = false;
  #destroyed = false;

  constructor(target: ConnectTarget, options: H2PoolOptions, resources: ResourceManager) {
    this.clientProtocol = options.clientProtocol === true;
    this.#target = target;
    this.#options = options;
    this.#resources = resources;
  }

  get activeConnections(): number {
    return this.#sessions.size;
  }

  /**
   * A session with room for one more stream, or why there is none. `cb` runs at once when a
   * session has room; otherwise the request waits (a new session is opened if the breakers
   * allow one) and the returned handle can take it out of the queue. A granted stream counts
   * against the cluster's maxRequests until `release(session)`.
   */
  acquire(cb: SessionCallback): H2Waiter | null {
    if (this.#closed || !this.#resources.canStartRequest()) return this.#overflow(cb);
    const session = this.#withRoom();
    if (session !== undefined) {
      this.#grant(session);
      cb(null, session);
      return null;
    }
    // Waiting needs a session on its way, or one that may be opened for it.
    const opening = this.#connecting > 0 || this.#resources.canOpenConnection();
    if ((!opening && this.#sessions.size === 0) || !this.#resources.canQueueRequest()) return this.#overflow(cb);
    const waiter: Waiter = { cb, cancelled: false };
    this.#queue.push(waiter);
    this.#resources.pendingRequests++;
    this.#openIfNeeded();
    return {
      cancel: () => {
        if (waiter.cancelled || !this.#queue.includes(waiter)) return;
        waiter.cancelled = true;
        this.#queue = this.#queue.filter((w) => w !== waiter);
        this.#resources.pendingRequests--;
      },
    };
  }

  /** A stream granted by `acquire` on `session` ended: its room goes to a waiting request. */
  release(session: ClientHttp2Session): void {
    this.#resources.requests--;
    const state = this.#sessions.get(session);
    if (state === undefined) return;
    state.active--;
    if (state.draining && state.active === 0) session.close();
    this.#serveQueue();
  }

  #overflow(cb: SessionCallback): null {
    if (!this.#closed) this.#resources.overflows++;
    queueMicrotask(() => cb(OVERFLOW, null));
    return null;
  }

  #withRoom(): ClientHttp2Session | undefined {
    const max = this.#options.maxConcurrentStreams ?? 0;
    for (const [session, state] of this.#sessions) {
      if (state.draining || session.closed || session.destroyed) continue;
      if (max === 0 || state.active < max) return session;
    }
    return undefined;
  }

  /** Grants waiting requests the room there is, oldest first. */
  #serveQueue(): void {
    while (this.#queue.length > 0) {
      if (!this.#resources.canStartRequest()) return;
      const session = this.#withRoom();
      if (session === undefined) return;
      const waiter = this.#queue.shift()!;
      this.#resources.pendingRequests--;
      this.#grant(session);
      waiter.cb(null, session);
    }
  }

  /** Opens a session when requests wait and none is on its way (if the breaker allows one). */
  #openIfNeeded(): void {
    if (this.#queue.length === 0 || this.#connecting > 0 || this.#closed || !this.#resources.canOpenConnection()) return;
    this.#connecting++;
    this.#resources.connections++;
    connectUpstream(this.#target, this.#options.connectTimeoutMs, (err, socket) => this.#connected(err, socket), 'h2');
  }

  /** Fails every waiting request with `err`. */
  #failQueue(err: ConnectFailure): void {
    const queue = this.#queue;
    this.#queue = [];
    this.#resources.pendingRequests -= queue.length;
    for (const w of queue) w.cb(err, null);
  }

  #connected(err: ConnectFailure | null, socket: Socket | null): void {
    this.#connecting--;
    if (err !== null || this.#destroyed) {
      this.#resources.connections--;
      socket?.destroy();
      // With no session left to wait for, the waiting requests fail as the connect did.
      if (this.#sessions.size === 0) this.#failQueue(err ?? OVERFLOW);
      return;
    }
    try {
      this.#open(socket!);
    } catch {
      this.#resources.connections--;
      socket!.destroy();
      if (this.#sessions.size === 0) this.#failQueue({ reason: 'remote connection failure', transport: 'HTTP/2 session setup failed' });
      return;
    }
    // The new session takes what it has room for; if requests still wait, another is opened.
    this.#serveQueue();
    if (this.#closed) {
      // Retired while connecting: it served the requests that waited, and takes no others.
      for (const [session, state] of this.#sessions) {
        state.draining = true;
        if (state.active === 0) session.close();
      }
      this.#failQueue(OVERFLOW);
      return;
    }
    this.#openIfNeeded();
  }

  #open(socket: Socket): ClientHttp2Session {
    const facts = upstreamConnectionFacts(socket);
    // Each stream names its own :authority; this one only satisfies the API (any host, IPv6 too).
    const session = http2Connect('http://upstream', { createConnection: () => socket, settings: { enablePush: false } });
    // Upstream sockets allow half-open; a session would never notice the peer's FIN, so an
    // upstream that went away would keep taking streams that never end.
    socket.once('end', () => session.destroy());
    const state: SessionState = { active: 0, total: 0, draining: false, facts };
    this.#sessions.set(session, state);
    session.on('goaway', () => (state.draining = true));
    session.on('error', () => undefined); // 'close' follows
    session.once('close', () => {
      if (this.#sessions.delete(session)) this.#resources.connections--;
      // Requests waiting for room on it now need another session.
      this.#openIfNeeded();
    });
    session.setTimeout(this.#options.idleTimeoutMs, () => session.close());
    return session;
  }

  /** The facts of the connection a session of this pool runs on. */
  factsOf(session: ClientHttp2Session): UpstreamConnectionFacts | undefined {
    return this.#sessions.get(session)?.facts;
  }

  #grant(session: ClientHttp2Session): void {
    const state = this.#sessions.get(session)!;
    this.#resources.requests++;
    state.active++;
    state.total++;
    const max = this.#options.maxRequestsPerConnection;
    // The last stream this session may carry: it closes once its streams are done.
    if (max > 0 && state.total >= max) state.draining = true;
  }

  /**
   * Stops taking requests; sessions close once their streams finish. Requests already waiting
   * are still served, by the session being opened for them.
   */
  retire(): void {
    this.#closed = true;
    for (const [session, state] of this.#sessions) {
      state.draining = true;
      if (state.active === 0) session.close();
    }
  }

  /** Closes every session; open streams are cut. */
  destroy(): void {
    this.#closed = true;
    this.#destroyed = true;
    this.#failQueue(OVERFLOW);
    for (const s of this.#sessions.keys()) s.destroy();
  }
}
