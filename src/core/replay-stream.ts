/**
 * A stream over a socket whose first bytes were already read: it yields those bytes, then
 * whatever the socket receives (with backpressure), and writes to the socket. TLS and HTTP/2
 * sessions are started on it when the bytes that tell which protocol it is were consumed.
 */
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';

/** A stream that yields `initial` and then whatever `socket` receives, and writes to `socket`. */
export function replayStream(socket: Socket, initial: Buffer | null): Duplex {
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
  if (initial !== null) stream.push(initial);
  socket.on('data', (chunk: Buffer) => {
    if (!stream.push(chunk)) socket.pause();
  });
  socket.on('end', () => stream.push(null));
  socket.on('close', () => stream.destroy());
  socket.on('error', (err) => stream.destroy(err));
  return stream;
}

