/**
 * Strict parsing of HTTP/1.1 request and response heads (RFC 9112), one byte loop per section.
 * Anything ambiguous is refused: that is how a proxy avoids request smuggling. Rejected:
 * obs-fold, bare CR or LF, whitespace before the colon, control characters, invalid or
 * duplicate Content-Length, Transfer-Encoding other than exactly `chunked`, both framings at
 * once, a missing or repeated Host, non-ASCII request targets and userinfo in absolute URLs.
 */
import { HeaderMap } from '../../headers.js';
import { COLON, CR, FIELD_VALUE, HTAB, LF, SP, TARGET, TCHAR } from './chars.js';
import { internHeaderName } from './header-names.js';

/** A parse failure, carrying the status a server answers with and Envoy's response code details. */
export class H1Error {
  constructor(
    readonly status: number,
    readonly details: string,
    readonly message: string,
  ) {}
}

export const MAX_HEADERS_COUNT = 100;

function bad(message: string, details = 'http1.codec_error'): H1Error {
  return new H1Error(400, details, message);
}

/** Framing and connection semantics derived from the header section. */
interface Framing {
  /** -1 when absent. */
  contentLength: number;
  chunked: boolean;
  /** Lowercase tokens of the Connection header. */
  connection: readonly string[];
}

/** HTTP/1.1 persists unless `close` is listed; HTTP/1.0 only with `keep-alive`. */
function keepsAlive(minorVersion: number, connection: readonly string[]): boolean {
  if (connection.includes('close')) return false;
  return minorVersion === 1 || connection.includes('keep-alive');
}

export type TargetForm = 'origin' | 'absolute' | 'authority' | 'asterisk';

export class RequestHead implements Framing {
  contentLength = -1;
  chunked = false;
  connection: readonly string[] = [];
  /** Authority from the Host header, or from the URL in absolute-form. */
  authority = '';
  /** Path and query to send upstream ('' for CONNECT). */
  path = '';
  /** Scheme named by an absolute-form target, else undefined. */
  scheme: string | undefined = undefined;
  form: TargetForm = 'origin';

  constructor(
    readonly method: string,
    readonly target: string,
    readonly minorVersion: number,
    readonly headers: HeaderMap,
  ) {}

  get keepAlive(): boolean {
    return keepsAlive(this.minorVersion, this.connection);
  }

  get expectsContinue(): boolean {
    return this.headers.get('expect')?.toLowerCase() === '100-continue';
  }
}

export class ResponseHead implements Framing {
  contentLength = -1;
  chunked = false;
  connection: readonly string[] = [];

  constructor(
    readonly status: number,
    readonly reason: string,
    readonly minorVersion: number,
    readonly headers: HeaderMap,
  ) {}

  get keepAlive(): boolean {
    return keepsAlive(this.minorVersion, this.connection);
  }
}

/**
 * Parses header lines in text[pos, end), where `end` is the index of the CRLF that ends the last
 * line (so the section is followed by CRLFCRLF at `end`, and `text` extends at least two chars
 * past it). `text` is the head decoded as latin1, one char per byte: names and values are
 * slices of it. Fills `headers`; returns an error or null.
 */
export function parseFieldLines(text: string, pos: number, end: number, headers: HeaderMap): H1Error | null {
  while (pos < end) {
    // pos is at the start of a line; the previous line ended with CRLF.
    const first = text.charCodeAt(pos);
    if (first === SP || first === HTAB) return bad('obsolete line folding is not allowed');
    const nameStart = pos;
    let upper = false;
    while (pos < end) {
      const b = text.charCodeAt(pos);
      if (b === COLON) break;
      if (TCHAR[b] !== 1) {
        if (b === SP || b === HTAB) return bad('whitespace between header name and colon');
        if (b === CR || b === LF) return bad('header line without a colon');
        return bad('invalid character in header name', 'http1.invalid_characters');
      }
      if (b >= 0x41 && b <= 0x5a) upper = true;
      pos++;
    }
    if (pos === nameStart) return bad('empty header name');
    if (pos >= end) return bad('header line without a colon');
    let name = internHeaderName(text, nameStart, pos);
    if (name === undefined) {
      name = text.slice(nameStart, pos);
      if (upper) name = name.toLowerCase();
    }
    pos++; // colon
    let b = text.charCodeAt(pos);
    while (pos < end && (b === SP || b === HTAB)) b = text.charCodeAt(++pos);
    const valueStart = pos;
    let valueEnd = pos;
    for (;;) {
      b = text.charCodeAt(pos);
      if (b === CR) {
        if (text.charCodeAt(pos + 1) !== LF) return bad('bare CR in header section');
        break;
      }
      if (FIELD_VALUE[b] !== 1) {
        return b === LF ? bad('bare LF in header section') : bad('invalid character in header value', 'http1.invalid_characters');
      }
      pos++;
      if (b !== SP && b !== HTAB) valueEnd = pos;
    }
    headers.append(name, valueEnd === valueStart ? '' : text.slice(valueStart, valueEnd));
    if (headers.size > MAX_HEADERS_COUNT) return new H1Error(431, 'http1.too_many_headers', 'too many headers');
    pos += 2; // CRLF
  }
  return null;
}

const SINGLE_TOKENS: Readonly<Record<string, readonly string[]>> = {
  'keep-alive': ['keep-alive'],
  close: ['close'],
  upgrade: ['upgrade'],
};

/** Lowercase tokens of a Connection header value (usually just `keep-alive` or `close`). */
function connectionTokens(value: string): readonly string[] {
  const lower = value.toLowerCase();
  return SINGLE_TOKENS[lower] ?? lower.split(',').map((t) => t.trim()).filter((t) => t !== '');
}

/** Applies framing headers to `head`. Shared by requests and responses. */
function readFraming(head: Framing, headers: HeaderMap, isRequest: boolean): H1Error | null {
  const names = headers.names;
  const values = headers.values;
  let sawLength = false;
  /** Every Transfer-Encoding value, joined with "," as Envoy's header map joins repeated ones. */
  let encoding: string | undefined;
  for (let i = 0; i < names.length; i++) {
    switch (names[i]) {
      case 'content-length': {
        if (sawLength) return bad('multiple Content-Length headers');
        sawLength = true;
        const v = values[i]!;
        if (!/^\d{1,15}$/.test(v)) return bad('invalid Content-Length');
        head.contentLength = Number(v);
        break;
      }
      case 'transfer-encoding':
        encoding = encoding === undefined ? values[i]! : `${encoding},${values[i]!}`;
        break;
      case 'connection': {
        const tokens = connectionTokens(values[i]!);
        head.connection = head.connection.length === 0 ? tokens : head.connection.concat(tokens);
        break;
      }
    }
  }
  if (encoding === undefined) return null;
  // Envoy's order: both framings is a 400 whatever the coding; then only exactly `chunked` is
  // understood. Any other value (gzip, identity, "chunked, gzip", a repeated "chunked") is 501
  // on a request (RFC 9112 §6.1) and a protocol error on a response.
  if (sawLength) return bad('both Content-Length and Transfer-Encoding', 'http1.content_length_and_chunked_not_allowed');
  if (encoding.toLowerCase() !== 'chunked') {
    const message = `unsupported Transfer-Encoding "${encoding}"`;
    return isRequest ? new H1Error(501, 'http1.invalid_transfer_encoding', message) : bad(message, 'http1.invalid_transfer_encoding');
  }
  head.chunked = true;
  return null;
}

const HOST_SYNTAX = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+)(?::\d{1,5})?$/;
const ABSOLUTE_FORM = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^#]*)$/;

/** Parses a request head in buf[start, end) where `end` is the index of the final CRLFCRLF. */
export function parseRequestHead(buf: Buffer, start: number, end: number): RequestHead | H1Error {
  // One native call decodes the whole head; every string below is a slice of it.
  const text = buf.toString('latin1', start, end + 2);
  const last = end - start;
  let pos = 0;
  // method SP
  while (pos < last && TCHAR[text.charCodeAt(pos)] === 1) pos++;
  if (pos === 0 || text.charCodeAt(pos) !== SP) return bad('malformed request line: invalid method');
  const method = text.slice(0, pos);
  pos++;
  // request-target SP
  const targetStart = pos;
  while (pos < last && TARGET[text.charCodeAt(pos)] === 1) pos++;
  if (pos === targetStart || text.charCodeAt(pos) !== SP) return bad('malformed request line: invalid request target', 'http1.invalid_url');
  const target = text.slice(targetStart, pos);
  pos++;
  // HTTP-version CRLF
  if (last - pos < 8 || !text.startsWith('HTTP/', pos) || text.charCodeAt(pos + 6) !== 0x2e || text.charCodeAt(pos + 8) !== CR || text.charCodeAt(pos + 9) !== LF) {
    return bad('malformed request line: invalid HTTP version');
  }
  const major = text.charCodeAt(pos + 5) - 0x30;
  const minor = text.charCodeAt(pos + 7) - 0x30;
  if (major < 0 || major > 9 || minor < 0 || minor > 9) return bad('malformed request line: invalid HTTP version');
  if (major !== 1 || minor > 1) return new H1Error(505, 'http1.codec_error', 'HTTP version not supported');
  pos += 10;

  const headers = new HeaderMap();
  const err = parseFieldLines(text, pos, last, headers);
  if (err !== null) return err;
  const head = new RequestHead(method, target, minor, headers);
  const framing = readFraming(head, headers, true);
  if (framing !== null) return framing;
  return readTarget(head);
}

function readTarget(head: RequestHead): RequestHead | H1Error {
  const { target, method, headers } = head;
  let host: string | undefined;
  let hostCount = 0;
  for (let i = 0; i < headers.names.length; i++) {
    if (headers.names[i] === 'host') {
      hostCount++;
      host = headers.values[i];
    }
  }
  if (hostCount > 1) return bad('multiple Host headers');
  if (host !== undefined && host !== '' && !HOST_SYNTAX.test(host)) return bad('invalid Host header');

  if (method === 'CONNECT') {
    if (!HOST_SYNTAX.test(target) || !/:\d{1,5}$/.test(target)) {
      return bad('CONNECT needs an authority-form target (host:port)', 'http1.invalid_url');
    }
    // As Envoy: a chunked CONNECT is an unsupported coding (501), a CONNECT with a length a 400.
    if (head.chunked) return new H1Error(501, 'http1.invalid_transfer_encoding', 'CONNECT request with Transfer-Encoding');
    if (head.contentLength > 0) return bad('CONNECT request with a body');
    head.form = 'authority';
    head.authority = target;
    head.path = '';
    return head;
  }
  const c = target.charCodeAt(0);
  if (c === 0x2f /* / */) {
    head.form = 'origin';
    head.path = target;
  } else if (target === '*') {
    if (method !== 'OPTIONS') return bad('asterisk-form target is only valid for OPTIONS', 'http1.invalid_url');
    head.form = 'asterisk';
    head.path = '*';
  } else {
    const m = ABSOLUTE_FORM.exec(target);
    if (m === null) return bad('malformed request target', 'http1.invalid_url');
    const authority = m[2]!;
    if (authority.includes('@')) return bad('userinfo is not allowed in the request target', 'http1.invalid_url');
    if (authority === '' || !HOST_SYNTAX.test(authority)) return bad('invalid authority in request target', 'http1.invalid_url');
    head.form = 'absolute';
    head.scheme = m[1]!.toLowerCase();
    const rest = m[3]!;
    head.path = rest === '' ? '/' : rest.charCodeAt(0) === 0x3f /* ? */ ? '/' + rest : rest;
    // RFC 9112 §3.2.2: the target's authority replaces the Host header.
    head.authority = authority;
    return head;
  }
  if (hostCount === 0) {
    if (head.minorVersion === 1) return bad('missing Host header', 'missing_host_header');
  } else if (host === '') {
    return bad('empty Host header', 'missing_host_header');
  }
  head.authority = host ?? '';
  return head;
}

/** Parses a response head in buf[start, end) where `end` is the index of the final CRLFCRLF. */
export function parseResponseHead(buf: Buffer, start: number, end: number): ResponseHead | H1Error {
  const text = buf.toString('latin1', start, end + 2);
  const last = end - start;
  if (last < 12 || !text.startsWith('HTTP/1.') || text.charCodeAt(8) !== SP) return bad('malformed status line');
  const minor = text.charCodeAt(7) - 0x30;
  if (minor < 0 || minor > 9) return bad('malformed status line');
  const d0 = text.charCodeAt(9) - 0x30;
  const d1 = text.charCodeAt(10) - 0x30;
  const d2 = text.charCodeAt(11) - 0x30;
  if (d0 < 1 || d0 > 5 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9) return bad('malformed status code');
  const status = d0 * 100 + d1 * 10 + d2;
  let pos = 12;
  let reason = '';
  if (text.charCodeAt(pos) === SP) {
    const rs = ++pos;
    for (;;) {
      const b = text.charCodeAt(pos);
      if (b === CR) break;
      if (FIELD_VALUE[b] !== 1) return bad('invalid character in reason phrase');
      pos++;
    }
    reason = text.slice(rs, pos);
  }
  if (text.charCodeAt(pos) !== CR || text.charCodeAt(pos + 1) !== LF) return bad('malformed status line');
  pos += 2;
  const headers = new HeaderMap();
  const err = parseFieldLines(text, pos, last, headers);
  if (err !== null) return err;
  const head = new ResponseHead(status, reason, minor, headers);
  return readFraming(head, headers, false) ?? head;
}
