/**
 * HTTP/1.1 `Upgrade: h2c` (RFC 7540 §3.2). After the 101 the request that asked for the upgrade
 * is HTTP/2 stream 1. Node's http2 server cannot adopt a stream that was never a frame, so the
 * session reads what the client would have sent had it started in HTTP/2: the client's own
 * preface and SETTINGS frame (which must follow the 101), then the request as a HEADERS frame on
 * stream 1 (HPACK literals, no indexing), then the rest of the client's bytes. HTTP2-Settings
 * is only checked: sent as a frame it would be acknowledged, and a client does not expect that
 * (the 101 acknowledges it); its own SETTINGS frame carries the same values.
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { replayStream } from '../../../core/replay-stream.js';
import { toH2Headers } from './headers.js';
import type { HeaderMap } from '../../headers.js';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
/** The default SETTINGS_MAX_FRAME_SIZE: the request's HEADERS frame must fit in one frame. */
const MAX_FRAME = 16_384;

function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(streamId, 5);
  return Buffer.concat([header, payload]);
}

/** An HPACK integer with a 7-bit prefix (RFC 7541 §5.1), the H bit clear. */
function hpackLength(n: number): Buffer {
  if (n < 127) return Buffer.from([n]);
  const bytes = [127];
  n -= 127;
  while (n >= 128) {
    bytes.push((n % 128) + 128);
    n = Math.floor(n / 128);
  }
  bytes.push(n);
  return Buffer.from(bytes);
}

/** A literal header field without indexing, with a new name (RFC 7541 §6.2.2). */
function literal(name: string, value: string): Buffer {
  const n = Buffer.from(name, 'latin1');
  const v = Buffer.from(value, 'latin1');
  return Buffer.concat([Buffer.from([0]), hpackLength(n.length), n, hpackLength(v.length), v]);
}

export interface UpgradedRequest {
  readonly method: string;
  readonly path: string;
  readonly authority: string;
  readonly headers: HeaderMap;
}

/**
 * The upgraded request as a HEADERS frame on stream 1, or undefined when the upgrade cannot be
 * taken (a malformed HTTP2-Settings, or a request too large for one frame).
 */
export function upgradeRequestFrame(request: UpgradedRequest, http2Settings: string): Buffer | undefined {
  if (!/^[A-Za-z0-9_-]*={0,2}$/.test(http2Settings) || Buffer.from(http2Settings, 'base64url').length % 6 !== 0) return undefined;
  // The pseudo-headers first, then the headers as any request to HTTP/2 carries them.
  const pseudo = { ':method': request.method, ':scheme': 'http', ':path': request.path, ':authority': request.authority };
  const fields: Buffer[] = [];
  for (const [name, value] of Object.entries(toH2Headers(request.headers, pseudo, true))) {
    for (const v of Array.isArray(value) ? value : [value]) fields.push(literal(name, String(v)));
  }
  const block = Buffer.concat(fields);
  if (block.length > MAX_FRAME) return undefined;
  // HEADERS (type 1) with END_STREAM | END_HEADERS on stream 1.
  return frame(1, 0x5, 1, block);
}

/**
 * A stream over the upgraded socket that yields the client's preface and first frame (which
 * must be SETTINGS), then `requestFrame`, then the rest of the client's bytes (`buffered`
 * first: bytes that arrived with the upgrade request). A client that does not start with the
 * preface and SETTINGS, or not within `headersTimeoutMs`, is cut off.
 */
export function upgradedStream(socket: Socket, requestFrame: Buffer, buffered: Buffer | null, headersTimeoutMs: number): Duplex {
  /** The client's bytes until its first frame is complete; null once the request frame went in. */
  let head: Buffer | null = Buffer.alloc(0);
  // The preface and SETTINGS are part of the request's head: they come within its timeout.
  const timer = setTimeout(() => socket.destroy(), headersTimeoutMs);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  const fromClient = (chunk: Buffer): Buffer | null => {
    if (head === null) return chunk;
    head = Buffer.concat([head, chunk]);
    const settingsEnd = PREFACE.length + 9;
    if (head.length < settingsEnd) return null;
    const length = head.readUIntBE(PREFACE.length, 3);
    // A SETTINGS frame larger than the default frame size is a FRAME_SIZE_ERROR anyway.
    if (!head.subarray(0, PREFACE.length).equals(PREFACE) || head[PREFACE.length + 3] !== 4 || length > MAX_FRAME) {
      socket.destroy();
      return null;
    }
    const end = settingsEnd + length;
    if (head.length < end) return null;
    clearTimeout(timer);
    const out = Buffer.concat([head.subarray(0, end), requestFrame, head.subarray(end)]);
    head = null;
    return out;
  };
  const first = buffered !== null && buffered.length > 0 ? fromClient(buffered) : null;
  return replayStream(socket, first, fromClient);
}
