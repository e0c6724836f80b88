/**
 * HTTP/2 connections to one upstream host: one session carries many streams. A session is
 * opened on first use (concurrent first requests share the connect), reused until the peer
 * sends GOAWAY, it closes, or it has carried `maxRequestsPerConnection` streams; then the next
 * request opens a fresh one while the old one finishes its streams. Each open session counts
 * as one connection against the cluster's circuit breaker.
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
  /** Streams per session; 0 = unlimited. */
  readonly maxRequestsPerConnection: number;
  /** A session without streams this long is closed. */
  readonly idleTimeoutMs: number;
}

export class H2Pool {
  /** HTTP/2 only for requests whose client spoke HTTP/2; HTTP/1.1 for the others. */
  readonly clientProtocol: boolean;
  readonly #target: ConnectTarget;
  readonly #options: H2PoolOptions;
  readonly #resources: ResourceManager;
  #session: ClientHttp2Session | null = null;
  #streams = 0;
  #waiting: SessionCallback[] | null = null;
  readonly #all = new Set<ClientHttp2Session>();
  #closed = false;

  constructor(target: ConnectTarget, options: H2PoolOptions, resources: ResourceManager) {
    this.clientProtocol = options.clientProtocol === true;
    this.#target = target;
    this.#options = options;
    this.#resources = resources;
  }

  get activeConnections(): number {
    return this.#all.size;
  }

  /**
   * A session ready for one more stream (`cb` may run synchronously), or why there is none.
   * A granted stream counts against the cluster's maxRequests until `release`.
   */
  acquire(cb: SessionCallback): void {
    if (!this.#resources.canStartRequest()) {
      this.#resources.overflows++;
      queueMicrotask(() => cb(OVERFLOW, null));
      return;
    }
    const session = this.#session;
    if (session !== null && !session.closed && !session.destroyed) {
      this.#countStream(session);
      cb(null, session);
      return;
    }
    if (this.#waiting !== null) {
      this.#waiting.push(cb);
      return;
    }
    if (this.#closed || !this.#resources.canOpenConnection()) {
      if (!this.#closed) this.#resources.overflows++;
      queueMicrotask(() => cb(OVERFLOW, null));
      return;
    }
    this.#waiting = [cb];
    this.#resources.connections++;
    connectUpstream(
      this.#target,
      this.#options.connectTimeoutMs,
      (err, socket) => {
        const waiting = this.#waiting ?? [];
        this.#waiting = null;
        if (err !== null || this.#closed) {
          this.#resources.connections--;
          socket?.destroy();
          for (const w of waiting) w(err ?? OVERFLOW, null);
          return;
        }
        const opened = this.#open(socket!);
        for (const w of waiting) {
          this.#countStream(opened);
          w(null, opened);
        }
      },
      'h2',
    );
  }

  #open(socket: Socket): ClientHttp2Session {
    const authority = `http://${this.#target.host || 'localhost'}`;
    const session = http2Connect(authority, { createConnection: () => socket, settings: { enablePush: false } });
    this.#session = session;
    this.#streams = 0;
    this.#all.add(session);
    const retire = (): void => {
      if (this.#session === session) this.#session = null;
    };
    session.on('goaway', retire);
    session.on('error', () => undefined); // 'close' follows
    session.once('close', () => {
      retire();
      if (this.#all.delete(session)) this.#resources.connections--;
    });
    session.setTimeout(this.#options.idleTimeoutMs, () => session.close());
    return session;
  }

  /** A stream granted by `acquire` ended. */
  release(): void {
    this.#resources.requests--;
  }

  #countStream(session: ClientHttp2Session): void {
    this.#resources.requests++;
    this.#streams++;
    const max = this.#options.maxRequestsPerConnection;
    // The last stream this session may carry: later requests open a new one.
    if (max > 0 && this.#streams >= max && this.#session === session) {
      this.#session = null;
      // After the caller opened its stream: a closing session takes no new ones.
      queueMicrotask(() => session.close());
    }
  }

  /** Stops taking requests; sessions close once their streams finish. */
  retire(): void {
    this.#closed = true;
    this.#session = null;
    for (const s of this.#all) s.close();
  }

  /** Closes every session; open streams are cut. */
  destroy(): void {
    this.#closed = true;
    for (const s of this.#all) s.destroy();
  }
}
