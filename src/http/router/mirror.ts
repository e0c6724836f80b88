/**
 * Request mirroring (Envoy request_mirror_policies): a copy of the request goes to another
 * cluster, fire-and-forget. The copy's Host gets `-shadow` appended to its name; its response
 * is read and dropped; its failures are ignored. It shares the cluster's pools and breakers
 * (HTTP/2 for an HTTP/2 cluster), so it can never hold the primary up: nothing on the primary
 * path waits for it.
 */
import { constants, type ClientHttp2Stream } from 'node:http2';
import type { Host } from '../../upstream/host.js';
import type { ConnectFailure, ConnectionUser, PendingAcquire, PooledConnection } from '../../upstream/pool/connection-pool.js';
import type { DecoderCallbacks, ResponseDecoder } from '../codec/h1/decoder.js';
import { takeDecoder } from './connection-decoder.js';
import { requestHead } from '../codec/h1/encoder.js';
import type { ResponseHead } from '../codec/h1/head.js';
import type { HeaderMap } from '../headers.js';
import { toH2Headers } from '../codec/h2/headers.js';

/** `name:port` → `name-shadow:port` (Envoy's shadow host suffix). */
export function shadowAuthority(authority: string): string {
  const colon = authority.lastIndexOf(':');
  if (colon === -1 || authority.indexOf(']', colon) !== -1) return `${authority}-shadow`;
  return `${authority.slice(0, colon)}-shadow${authority.slice(colon)}`;
}

/**
 * Sends one shadow request. `headers` is the shadow's own copy of the upstream request headers;
 * `body` the whole request body (or null). Gives up silently after `timeoutMs` (0: never).
 */
export function sendShadow(host: Host, method: string, path: string, headers: HeaderMap, body: readonly Buffer[] | null, timeoutMs: number, http2: boolean): void {
  headers.set('host', shadowAuthority(headers.get('host') ?? ''));
  headers.remove('transfer-encoding');
  if (body !== null) headers.set('content-length', String(body.reduce((n, c) => n + c.length, 0)));
  if (http2) {
    sendHttp2Shadow(host, method, path, headers, body, timeoutMs);
    return;
  }
  const shadow = new ShadowRequest(host, requestHead(method, path, headers), body, method === 'HEAD');
  shadow.start(timeoutMs);
}

/** The shadow as a stream on the host's HTTP/2 session: response read and dropped, failures ignored. */
function sendHttp2Shadow(host: Host, method: string, path: string, headers: HeaderMap, body: readonly Buffer[] | null, timeoutMs: number): void {
  const pool = host.h2!;
  pool.acquire((err, session) => {
    if (err !== null) return;
    let req: ClientHttp2Stream;
    try {
      const pseudo = { ':method': method, ':path': path, ':authority': headers.get('host') ?? '', ':scheme': host.pool.target.tls !== undefined ? 'https' : 'http' };
      req = session!.request(toH2Headers(headers, pseudo, true), { endStream: body === null });
    } catch {
      pool.release(session!);
      return;
    }
    const timer = timeoutMs > 0 ? setTimeout(() => req.close(constants.NGHTTP2_CANCEL), timeoutMs) : null;
    req.on('error', () => undefined);
    req.once('close', () => {
      if (timer !== null) clearTimeout(timer);
      pool.release(session!);
    });
    req.resume();
    if (body !== null) {
      for (const chunk of body) req.write(chunk);
      req.end();
    }
  });
}

class ShadowRequest implements ConnectionUser, DecoderCallbacks<ResponseHead> {
  readonly #host: Host;
  readonly #head: string;
  readonly #body: readonly Buffer[] | null;
  readonly #bodyless: boolean;
  #conn: PooledConnection | null = null;
  #decoder: ResponseDecoder | null = null;
  #pending: PendingAcquire | null = null;
  /** The final (non-1xx) response head arrived; its keep-alive verdict. */
  #final = false;
  #keepAlive = false;
  #timer: NodeJS.Timeout | null = null;
  #done = false;

  constructor(host: Host, head: string, body: readonly Buffer[] | null, bodylessResponse: boolean) {
    this.#host = host;
    this.#head = head;
    this.#body = body;
    this.#bodyless = bodylessResponse;
  }

  start(timeoutMs: number): void {
    if (timeoutMs > 0) this.#timer = setTimeout(() => this.#end(false), timeoutMs);
    this.#pending = this.#host.pool.acquire((err, conn) => this.#acquired(err, conn));
  }

  #acquired(err: ConnectFailure | null, conn: PooledConnection | null): void {
    this.#pending = null;
    if (this.#done || err !== null) {
      if (conn !== null) this.#host.pool.release(conn, true);
      this.#end(false);
      return;
    }
    this.#conn = conn;
    this.#decoder = takeDecoder(conn!, this, this.#bodyless);
    conn!.user = this;
    const socket = conn!.socket;
    socket.cork();
    socket.write(this.#head, 'latin1');
    for (const chunk of this.#body ?? []) socket.write(chunk);
    socket.uncork();
  }

  onSocketData(chunk: Buffer): void {
    this.#decoder!.push(chunk);
  }

  onSocketClose(): void {
    if (this.#decoder?.readingUntilClose) {
      this.#decoder.end();
      return;
    }
    this.#conn = null;
    this.#end(false);
  }

  onHead(head: ResponseHead): void {
    if (head.status < 200) return;
    this.#final = true;
    this.#keepAlive = head.keepAlive;
  }

  onBody(): void {}

  onComplete(): void {
    if (!this.#final) {
      // An informational response ended: read the final one.
      this.#decoder!.resume();
      return;
    }
    this.#end(this.#keepAlive && this.#decoder!.takeHeld() === null);
  }

  onError(): void {
    this.#end(false);
  }

  /** Ends the shadow, giving its connection back (reusable only after a clean exchange). */
  #end(reusable: boolean): void {
    if (this.#done) return;
    this.#done = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#pending?.cancel();
    const conn = this.#conn;
    this.#conn = null;
    if (conn !== null) {
      // A reusable connection keeps its decoder running for the next borrower.
      if (!reusable) this.#decoder?.stop();
      this.#host.pool.release(conn, reusable);
    }
  }
}
