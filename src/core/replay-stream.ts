/**
 * A stream over a socket whose first bytes were already read: it yields those bytes, then
 * whatever the socket receives (with backpressure, optionally rewritten), and writes to the
 * socket. TLS and HTTP/2 sessions are started on it when the bytes that tell which protocol it
 * is were consumed.
 */
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';

/**
 * A stream that yields `initial` and then whatever `socket` receives, and writes to `socket`.
 * `transform`, when given, sees each received chunk first and returns what to yield instead
 * (null: nothing yet).
 */
export function replayStream(socket: Socket, initial: Buffer | null, transform?: (chunk: Buffer) => Buffer | null): Duplex {
  const stream = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk: Buffer, _encoding, cb) {
      socket.write(chunk, cb);
    },
    final(cb) {
      socket.end();
      cb();
    },
    destroy(err, cb) {
      socket.destroy();
      cb(err);
    },
  });
  const fromSocket = (chunk: Buffer): void => {
    const out = transform === undefined ? chunk : transform(chunk);
    if (out !== null && out.length > 0 && !stream.push(out)) socket.pause();
  };
  if (initial !== null) stream.push(initial);
  socket.on('data', fromSocket);
  socket.on('end', () => stream.push(null));
  socket.on('close', () => stream.destroy());
  socket.on('error', (err) => stream.destroy(err));
  return stream;
}

