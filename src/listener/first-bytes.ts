/**
 * Protocol sniffing on an accepted connection (Envoy's tls_inspector and http_inspector): reads
 * the first bytes and classifies them with sniff(), bounded in time and size.
 */
import type { Socket } from 'node:net';
import { MAX_SNIFF_BYTES, sniff } from './sniff.js';

/** What sniffing found: the protocol, and for TLS the ClientHello's SNI and ALPN. */
export interface FirstBytes {
  readonly kind: 'http' | 'tls' | 'tcp';
  readonly sni?: string | undefined;
  readonly alpn: readonly string[];
}

const HTTP_BYTES: FirstBytes = { kind: 'http', alpn: [] };
const TCP_BYTES: FirstBytes = { kind: 'tcp', alpn: [] };

/**
 * Reads until the first bytes say what the protocol is, `timeoutMs` passes (0: no limit), the
 * client half-closes, or MAX_SNIFF_BYTES arrived. Then `done` runs exactly once, with the
 * socket paused and every byte read so far; never after the socket closed. HTTP/2 prior
 * knowledge counts as HTTP.
 */
export function readFirstBytes(socket: Socket, timeoutMs: number, done: (bytes: Buffer | null, first: FirstBytes) => void): void {
  let buffered: Buffer | null = null;
  let timer: NodeJS.Timeout | null = null;
  let finished = false;
  const finish = (first: FirstBytes): void => {
    if (finished) return;
    finished = true;
    if (timer !== null) clearTimeout(timer);
    socket.removeListener('data', onData);
    socket.removeListener('end', onEnd);
    socket.pause();
    if (!socket.destroyed) done(buffered, first);
  };
  const onData = (chunk: Buffer): void => {
    buffered = buffered === null ? chunk : Buffer.concat([buffered, chunk]);
    const result = sniff(buffered);
    if (result !== undefined) {
      // The HTTP/2 preface is HTTP too: the HTTP connection hands it to HTTP/2.
      if (result.kind === 'http1' || result.kind === 'h2') finish(HTTP_BYTES);
      else if (result.kind === 'tls') finish({ kind: 'tls', sni: result.sni, alpn: result.alpn });
      else finish(TCP_BYTES);
    } else if (buffered.length >= MAX_SNIFF_BYTES) {
      finish(TCP_BYTES);
    }
  };
  const onEnd = (): void => finish(TCP_BYTES);
  if (timeoutMs > 0) timer = setTimeout(() => finish(TCP_BYTES), timeoutMs);
  socket.on('error', () => socket.destroy());
  socket.on('data', onData);
  socket.once('end', onEnd);
  socket.once('close', () => {
    finished = true;
    if (timer !== null) clearTimeout(timer);
  });
  socket.resume();
}
