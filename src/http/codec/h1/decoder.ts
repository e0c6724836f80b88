/**
 * Incremental HTTP/1.1 message decoder: head, then body framed by Content-Length, chunked
 * encoding, or connection close. Body bytes are handed on as they arrive (never buffered whole);
 * only partial heads and chunk-size lines are held between reads.
 *
 * Contract with the owner:
 * - `push(data)` feeds bytes; callbacks fire synchronously in order: head, body*, complete.
 * - After `onComplete` the decoder pauses; bytes that follow stay buffered until `resume()`.
 *   (HTTP/1.1 pipelining: the next request is not read until the current one is answered.)
 * - After `onError` or `stop()` the decoder ignores further input.
 * - `end()` reports EOF: it completes a read-until-close body, and is an error mid-message.
 */
import { HeaderMap } from '../../headers.js';
import { CR, CRLFCRLF, FIELD_VALUE, HEX, LF, SP, TCHAR } from './chars.js';
import { H1Error, parseFieldLines, parseRequestHead, parseResponseHead, type RequestHead, type ResponseHead } from './head.js';

/** Envoy's default `max_request_headers_kb`: 60 KiB for the whole header section. */
export const MAX_HEADER_BYTES = 60 * 1024;
/** Longest chunk-size line (size plus extensions) accepted. */
const MAX_CHUNK_LINE = 4096;
const STATUS_PREFIX = Buffer.from('HTTP/1.', 'latin1');

const enum State {
  Head,
  BodyLength,
  ChunkSize,
  ChunkData,
  ChunkDataEnd,
  Trailers,
  BodyUntilClose,
  Paused,
  Dead,
}

export interface DecoderCallbacks<H> {
  onHead(head: H): void;
  onBody(data: Buffer): void;
  onComplete(trailers: HeaderMap | null): void;
  onError(error: H1Error): void;
}

export type BodyKind = 'none' | 'length' | 'chunked' | 'close';

abstract class H1Decoder<H extends RequestHead | ResponseHead> {
  #state = State.Head;
  /** Bytes received but not yet consumed (a partial head or chunk line, or data after a pause). */
  #held: Buffer | null = null;
  /** Bytes of `#held` already checked for a bare LF while waiting for the end of a head. */
  #scanned = 0;
  #remaining = 0;
  /** Who receives the decoded message; may be replaced between messages (a reused decoder). */
  callbacks: DecoderCallbacks<H>;

  constructor(callbacks: DecoderCallbacks<H>) {
    this.callbacks = callbacks;
  }

  /** Whether a message is partly read (head seen, body not complete). */
  get midMessage(): boolean {
    return this.#state !== State.Head && this.#state !== State.Paused && this.#state !== State.Dead;
  }

  /** Whether the current body ends when the connection closes (no length, not chunked). */
  get readingUntilClose(): boolean {
    return this.#state === State.BodyUntilClose;
  }

  get idle(): boolean {
    return this.#state === State.Head && this.#held === null;
  }

  /** Bytes received but not yet decoded (a partial head or chunk line, or data after a pause). */
  get heldBytes(): number {
    return this.#held === null ? 0 : this.#held.length;
  }

  /** Parses one head from buf[start, end) and returns how its body is framed, or an error. */
  protected abstract decodeHead(buf: Buffer, start: number, end: number): { head: H; body: BodyKind; length: number } | H1Error;

  /**
   * Checks the start of a head that has not fully arrived, so a peer that speaks something other
   * than HTTP is refused at once instead of after a terminator that may never come.
   */
  protected abstract checkPartialHead(buf: Buffer, start: number, end: number): H1Error | null;

  push(data: Buffer): void {
    if (this.#state === State.Dead) return;
    if (this.#held !== null) {
      data = Buffer.concat([this.#held, data]);
      this.#held = null;
    }
    if (this.#state === State.Paused) {
      this.#held = data;
      return;
    }
    this.#run(data, 0);
  }

  resume(): void {
    if (this.#state !== State.Paused) return;
    this.#state = State.Head;
    const held = this.#held;
    this.#held = null;
    this.#scanned = 0;
    if (held !== null && held.length > 0) this.#run(held, 0);
  }

  /** Stops decoding for good (the connection is closing). */
  stop(): void {
    this.#state = State.Dead;
    this.#held = null;
  }

  end(): void {
    if (this.#state === State.BodyUntilClose) {
      this.#complete(null);
      return;
    }
    if (this.midMessage || (this.#state === State.Head && this.#held !== null && this.#held.length > 0)) {
      this.#fail(new H1Error(400, 'http1.codec_error', 'connection closed mid-message'));
    }
  }

  /** Read through a method so the compiler does not narrow `#state` across callbacks. */
  #stopped(): boolean {
    return this.#state === State.Dead;
  }

  #fail(error: H1Error): void {
    this.#state = State.Dead;
    this.#held = null;
    this.callbacks.onError(error);
  }

  /**
   * Ends the current message. Bytes after it (data[pos…]) are held before the callback runs, so
   * an owner that calls `resume()` from `onComplete` sees them.
   */
  #complete(trailers: HeaderMap | null, data?: Buffer, pos = 0): void {
    this.#state = State.Paused;
    if (data !== undefined && pos < data.length) this.#held = data.subarray(pos);
    this.callbacks.onComplete(trailers);
  }

  /** Takes the bytes held after a completed message (e.g. tunnel data after a CONNECT head). */
  takeHeld(): Buffer | null {
    const held = this.#held;
    this.#held = null;
    return held;
  }

  #hold(data: Buffer, pos: number): void {
    this.#held = pos === 0 ? data : data.subarray(pos);
  }

  #run(data: Buffer, pos: number): void {
    const len = data.length;
    while (pos < len) {
      switch (this.#state) {
        case State.Head: {
          if (data[pos] === CR && data[pos + 1] === LF) {
            // RFC 9112 §2.2: empty lines before a start line are ignored (as Envoy's parsers do).
            pos += 2;
            this.#scanned = 0;
            break;
          }
          const end = data.indexOf(CRLFCRLF, pos);
          if (end === -1) {
            if (len - pos > MAX_HEADER_BYTES) {
              this.#fail(new H1Error(431, 'http1.headers_too_large', 'header section exceeds 60 KiB'));
              return;
            }
            const early = this.checkPartialHead(data, pos, len);
            if (early !== null) {
              this.#fail(early);
              return;
            }
            // Fail fast on a bare LF rather than waiting for a terminator that may never come.
            for (let i = pos + this.#scanned; i < len; i++) {
              if (data[i] === LF && (i === pos || data[i - 1] !== CR)) {
                this.#fail(new H1Error(400, 'http1.codec_error', 'bare LF in header section'));
                return;
              }
            }
            this.#scanned = len - pos;
            this.#hold(data, pos);
            return;
          }
          if (end + 4 - pos > MAX_HEADER_BYTES) {
            this.#fail(new H1Error(431, 'http1.headers_too_large', 'header section exceeds 60 KiB'));
            return;
          }
          this.#scanned = 0;
          const r = this.decodeHead(data, pos, end);
          if (r instanceof H1Error) {
            this.#fail(r);
            return;
          }
          pos = end + 4;
          switch (r.body) {
            case 'none':
              this.callbacks.onHead(r.head);
              if (this.#state !== State.Head) return; // stopped by the callback
              this.#complete(null, data, pos);
              return;
            case 'length':
              this.#state = State.BodyLength;
              this.#remaining = r.length;
              this.callbacks.onHead(r.head);
              break;
            case 'chunked':
              this.#state = State.ChunkSize;
              this.callbacks.onHead(r.head);
              break;
            case 'close':
              this.#state = State.BodyUntilClose;
              this.callbacks.onHead(r.head);
              break;
          }
          break;
        }
        case State.BodyLength:
        case State.ChunkData: {
          const n = Math.min(this.#remaining, len - pos);
          this.#remaining -= n;
          const chunk = n === len && pos === 0 ? data : data.subarray(pos, pos + n);
          pos += n;
          const messageDone = this.#remaining === 0 && this.#state === State.BodyLength;
          if (this.#remaining === 0 && this.#state === State.ChunkData) this.#state = State.ChunkDataEnd;
          this.callbacks.onBody(chunk);
          if (this.#stopped()) return;
          if (messageDone) {
            this.#complete(null, data, pos);
            return;
          }
          break;
        }
        case State.ChunkSize: {
          const lf = data.indexOf(LF, pos);
          if (lf === -1) {
            if (len - pos > MAX_CHUNK_LINE) return this.#fail(new H1Error(400, 'http1.codec_error', 'chunk size line too long'));
            this.#hold(data, pos);
            return;
          }
          const size = parseChunkSize(data, pos, lf);
          if (size < 0) return this.#fail(new H1Error(400, 'http1.codec_error', 'invalid chunk size line'));
          pos = lf + 1;
          if (size === 0) {
            this.#state = State.Trailers;
          } else {
            this.#remaining = size;
            this.#state = State.ChunkData;
          }
          break;
        }
        case State.ChunkDataEnd: {
          if (len - pos < 2) {
            if (data[pos] !== CR) return this.#fail(new H1Error(400, 'http1.codec_error', 'chunk data not followed by CRLF'));
            this.#hold(data, pos);
            return;
          }
          if (data[pos] !== CR || data[pos + 1] !== LF) {
            return this.#fail(new H1Error(400, 'http1.codec_error', 'chunk data not followed by CRLF'));
          }
          pos += 2;
          this.#state = State.ChunkSize;
          break;
        }
        case State.Trailers: {
          // Either an empty trailer section (CRLF) or field lines ending with CRLFCRLF.
          if (len - pos < 2) {
            if (data[pos] === LF) return this.#fail(new H1Error(400, 'http1.codec_error', 'bare LF in trailers'));
            this.#hold(data, pos);
            return;
          }
          if (data[pos] === CR && data[pos + 1] === LF) {
            this.#complete(null, data, pos + 2);
            return;
          }
          const end = data.indexOf(CRLFCRLF, pos);
          if (end === -1) {
            if (len - pos > MAX_HEADER_BYTES) return this.#fail(new H1Error(431, 'http1.headers_too_large', 'trailers too large'));
            for (let i = pos; i < len; i++) {
              if (data[i] === LF && (i === pos || data[i - 1] !== CR)) {
                return this.#fail(new H1Error(400, 'http1.codec_error', 'bare LF in trailers'));
              }
            }
            this.#hold(data, pos);
            return;
          }
          const trailers = new HeaderMap();
          const err = parseFieldLines(data.toString('latin1', pos, end + 2), 0, end - pos, trailers);
          if (err !== null) return this.#fail(err);
          this.#complete(trailers, data, end + 4);
          return;
        }
        case State.BodyUntilClose: {
          this.callbacks.onBody(pos === 0 ? data : data.subarray(pos));
          return;
        }
        case State.Paused:
          this.#hold(data, pos);
          return;
        case State.Dead:
          return;
      }
    }
  }
}

/**
 * Parses `1*HEXDIG [ chunk-ext ] CRLF` in buf[pos, lf] (lf is the index of the LF). Returns the
 * size, or -1 when the line is malformed (no digits, too many digits, bare LF, bad extension).
 */
function parseChunkSize(buf: Buffer, pos: number, lf: number): number {
  if (lf === pos || buf[lf - 1] !== CR) return -1;
  const end = lf - 1;
  let size = 0;
  let digits = 0;
  while (pos < end) {
    const h = HEX[buf[pos]!]!;
    if (h < 0) break;
    size = size * 16 + h;
    digits++;
    pos++;
  }
  if (digits === 0 || digits > 13) return -1; // 13 hex digits stay below 2^53
  if (pos < end) {
    if (buf[pos] !== 0x3b /* ; */) return -1;
    for (; pos < end; pos++) {
      const b = buf[pos]!;
      if (FIELD_VALUE[b] === 0) return -1;
    }
  }
  return size;
}

/** Decodes requests on a downstream connection. */
export class RequestDecoder extends H1Decoder<RequestHead> {
  /** The method must be token characters up to the first space. */
  protected checkPartialHead(buf: Buffer, start: number, end: number): H1Error | null {
    for (let i = start; i < end; i++) {
      const b = buf[i]!;
      if (b === SP) return i === start ? new H1Error(400, 'http1.codec_error', 'malformed request line: invalid method') : null;
      if (TCHAR[b] === 0) return b === CR || b === LF ? null : new H1Error(400, 'http1.codec_error', 'malformed request line: invalid method');
    }
    return null;
  }

  protected decodeHead(buf: Buffer, start: number, end: number) {
    const head = parseRequestHead(buf, start, end);
    if (head instanceof H1Error) return head;
    const body: BodyKind = head.chunked ? 'chunked' : head.contentLength > 0 ? 'length' : 'none';
    return { head, body, length: head.contentLength };
  }
}

/**
 * Decodes responses on an upstream connection. The owner sets `expectBodylessResponse` before
 * each request whose response carries no body (HEAD).
 */
export class ResponseDecoder extends H1Decoder<ResponseHead> {
  expectBodylessResponse = false;

  /** A response starts with `HTTP/1.`; anything else is not an HTTP/1 server. */
  protected checkPartialHead(buf: Buffer, start: number, end: number): H1Error | null {
    const n = Math.min(end - start, STATUS_PREFIX.length);
    for (let i = 0; i < n; i++) {
      if (buf[start + i] !== STATUS_PREFIX[i]) return new H1Error(400, 'http1.codec_error', 'malformed status line');
    }
    return null;
  }

  protected decodeHead(buf: Buffer, start: number, end: number) {
    const head = parseResponseHead(buf, start, end);
    if (head instanceof H1Error) return head;
    const s = head.status;
    if (this.expectBodylessResponse || (s >= 100 && s < 200) || s === 204 || s === 304) {
      return { head, body: 'none' as const, length: 0 };
    }
    if (head.chunked) return { head, body: 'chunked' as const, length: 0 };
    if (head.contentLength >= 0) return { head, body: head.contentLength > 0 ? ('length' as const) : ('none' as const), length: head.contentLength };
    return { head, body: 'close' as const, length: 0 };
  }
}
