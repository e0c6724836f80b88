/**
 * HTTP/2 connections to one upstream host: each session carries many streams. A request gets
 * the first session with room (fewer than `maxConcurrentStreams` streams open, not draining);
 * when none has room a new one is opened, and requests that arrive meanwhile wait for it
 * (counted as pending requests, bounded by the cluster's maxPendingRequests). A session stops
 * taking streams after the peer's GOAWAY, a close, or `maxRequestsPerConnection` streams, and
 * closes once its last stream ends. Each open session counts as one connection, each granted
 * stream as one request, against the cluster's circuit breakers.
 */
import { connect as http2Connect, type ClientHttp2Session } from 'node:http2';
import type { Socket } from 'node:net';
import { connectUpstream, type ConnectFailure, type ConnectTarget } from '../connect.js';
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
  /** Streams granted and not yet released. */
  active: number;
  /** Streams granted over the session's life. */
  total: number;
  /** Takes no new streams (GOAWAY, closing, or its stream budget is spent). */
  draining: boolean;
}

export class H2Pool {
  /** HTTP/2 only for requests whose client spoke HTTP/2; HTTP/1.1 for the others. */
  readonly clientProtocol: boolean;
  readonly #target: ConnectTarget;
  readonly #options: H2PoolOptions;
  readonly #resources: ResourceManager;
  readonly #sessions = new Map<ClientHttp2Session, SessionState>();
  /** Requests waiting for the session being opened; null while none is. */
  #waiting: SessionCallback[] | null = null;
  #closed = false;

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
   * A session with room for one more stream (`cb` may run synchronously), or why there is none.
   * A granted stream counts against the cluster's maxRequests until `release(session)`.
   */
  acquire(cb: SessionCallback): void {
    if (this.#closed || !this.#resources.canStartRequest()) return this.#overflow(cb);
    const session = this.#withRoom();
    if (session !== undefined) {
      this.#grant(session);
      cb(null, session);
      return;
    }
    if (this.#waiting !== null) {
      if (!this.#resources.canQueueRequest()) return this.#overflow(cb);
      this.#resources.pendingRequests++;
      this.#waiting.push(cb);
      return;
    }
    if (!this.#resources.canOpenConnection()) return this.#overflow(cb);
    this.#resources.pendingRequests++;
    this.#waiting = [cb];
    this.#resources.connections++;
    connectUpstream(this.#target, this.#options.connectTimeoutMs, (err, socket) => this.#connected(err, socket), 'h2');
  }

  /** A stream granted by `acquire` on `session` ended. */
  release(session: ClientHttp2Session): void {
    this.#resources.requests--;
    const state = this.#sessions.get(session);
    if (state === undefined) return;
    state.active--;
    if (state.draining && state.active === 0) session.close();
  }

  #overflow(cb: SessionCallback): void {
    if (!this.#closed) this.#resources.overflows++;
    queueMicrotask(() => cb(OVERFLOW, null));
  }

  #withRoom(): ClientHttp2Session | undefined {
    const max = this.#options.maxConcurrentStreams ?? 0;
    for (const [session, state] of this.#sessions) {
      if (state.draining || session.closed || session.destroyed) continue;
      if (max === 0 || state.active < max) return session;
    }
    return undefined;
  }

  #connected(err: ConnectFailure | null, socket: Socket | null): void {
    const waiting = this.#waiting ?? [];
    this.#waiting = null;
    this.#resources.pendingRequests -= waiting.length;
    if (err !== null || this.#closed) {
      this.#resources.connections--;
      socket?.destroy();
      for (const w of waiting) w(err ?? OVERFLOW, null);
      return;
    }
    try {
      this.#open(socket!);
    } catch {
      this.#resources.connections--;
      socket!.destroy();
      for (const w of waiting) w({ reason: 'remote connection failure', transport: 'HTTP/2 session setup failed' }, null);
      return;
    }
    // The new session takes what it has room for; the rest ask again (maybe opening another).
    for (const w of waiting) this.acquire(w);
  }

  #open(socket: Socket): ClientHttp2Session {
    // Each stream names its own :authority; this one only satisfies the API (any host, IPv6 too).
    const session = http2Connect('http://upstream', { createConnection: () => socket, settings: { enablePush: false } });
    // Upstream sockets allow half-open; a session would never notice the peer's FIN, so an
    // upstream that went away would keep taking streams that never end.
    socket.once('end', () => session.destroy());
    const state: SessionState = { active: 0, total: 0, draining: false };
    this.#sessions.set(session, state);
    session.on('goaway', () => (state.draining = true));
    session.on('error', () => undefined); // 'close' follows
    session.once('close', () => {
      if (this.#sessions.delete(session)) this.#resources.connections--;
    });
    session.setTimeout(this.#options.idleTimeoutMs, () => session.close());
    return session;
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

  /** Stops taking requests; sessions close once their streams finish. */
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
    for (const s of this.#sessions.keys()) s.destroy();
  }
}
