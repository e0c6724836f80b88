/**
 * Protocol detection on the first bytes of a connection (Envoy's tls_inspector and
 * http_inspector listener filters, and linkerd's detect stack): a TLS ClientHello with its SNI
 * and ALPN, the HTTP/2 prior-knowledge preface, an HTTP/1.x request line, or opaque TCP.
 *
 * Contract: `sniff` is pure. The caller passes everything received so far (each call sees the
 * previous bytes plus more) and gets `undefined` while the bytes so far are a prefix of more than
 * one answer. Once it answers, every longer input with the same prefix gives the same answer.
 * It never throws and never reads past `data.length`. From `MAX_SNIFF_BYTES` on it always
 * answers, so the caller bounds its buffer by that and its wait by a timeout (on which it treats
 * the connection as 'tcp', as Envoy's inspectors do).
 *
 * Decisions are made as early as the bytes allow:
 * - HTTP/1.x: `token SP target SP HTTP/1.0|1 CRLF` (RFC 9112 request-line; method any RFC 9110
 *   token of at most 20 bytes except PRI, which RFC 9113 §3.4 reserves for the h2 preface).
 *   The first byte that cannot continue that shape decides 'tcp'; a line longer than 8 KiB too.
 * - h2: the 24-byte preface; any mismatch falls through to the HTTP/1 rules above.
 * - TLS: handshake records (type 22, version 3.x) carrying a ClientHello, reassembled across
 *   records. Every length is checked against its container; one that overruns it, or a record
 *   that is not a handshake fragment, decides 'tcp' (where Envoy would close the connection).
 *   SSLv2-compatible hellos (first byte 0x80) are 'tcp'. If the hello is still incomplete at
 *   `MAX_SNIFF_BYTES` (Envoy's default max_client_hello_size), the answer is 'tls' with the SNI
 *   and ALPN found in the part that arrived.
 */

export type Sniffed =
  | { readonly kind: 'http1' }
  | { readonly kind: 'h2' }
  | { readonly kind: 'tls'; readonly sni: string | undefined; readonly alpn: readonly string[] }
  | { readonly kind: 'tcp' };

const TLS_RECORD_HEADER = 5;
/** RFC 8446 §5.1: a TLSPlaintext fragment is at most 2^14 bytes. */
const MAX_TLS_FRAGMENT = 16 * 1024;
/** One full-size record: Envoy's default max_client_hello_size plus its record header. */
export const MAX_SNIFF_BYTES = MAX_TLS_FRAGMENT + TLS_RECORD_HEADER;

const HTTP1: Sniffed = Object.freeze({ kind: 'http1' });
const H2: Sniffed = Object.freeze({ kind: 'h2' });
const TCP: Sniffed = Object.freeze({ kind: 'tcp' });

// === HTTP/2 preface and HTTP/1.x request line ===

const H2_PREFACE = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';
const MAX_METHOD_BYTES = 20;
const MAX_REQUEST_LINE_BYTES = 8 * 1024;
const VERSION_PREFIX = 'HTTP/1.';
const SP = 0x20;
const CR = 0x0d;
const LF = 0x0a;

/** RFC 9110 §5.6.2 tchar: ALPHA / DIGIT / "!#$%&'*+-.^_`|~". */
function isTchar(b: number): boolean {
  if ((b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a)) return true;
  switch (b) {
    case 0x21: case 0x23: case 0x24: case 0x25: case 0x26: case 0x27: case 0x2a:
    case 0x2b: case 0x2d: case 0x2e: case 0x5e: case 0x5f: case 0x60: case 0x7c: case 0x7e:
      return true;
    default:
      return false;
  }
}

/** A request-target byte: visible ASCII, or obs-text (sent raw by some clients, as llhttp allows). */
function isTargetByte(b: number): boolean {
  return (b > SP && b < 0x7f) || b >= 0x80;
}

/** Whether `data[at..end)` starts with `text` (latin1): 1 yes, 0 a proper prefix of it so far, -1 no. */
function matchLiteral(data: Buffer, at: number, end: number, text: string): number {
  const n = Math.min(end - at, text.length);
  for (let i = 0; i < n; i++) if (data[at + i] !== text.charCodeAt(i)) return -1;
  return n === text.length ? 1 : 0;
}

function sniffPlaintext(data: Buffer): Sniffed | undefined {
  const preface = matchLiteral(data, 0, data.length, H2_PREFACE);
  if (preface === 1) return H2;
  if (preface === 0) return undefined;
  return sniffRequestLine(data);
}

/** The request-line state machine; `undefined` only while the line is a viable prefix. */
function sniffRequestLine(data: Buffer): Sniffed | undefined {
  const end = Math.min(data.length, MAX_REQUEST_LINE_BYTES);
  // Past the line limit the line can no longer end in time.
  const short = data.length >= MAX_REQUEST_LINE_BYTES ? TCP : undefined;
  let i = 0;
  while (i < end && isTchar(data[i]!)) if (++i > MAX_METHOD_BYTES) return TCP;
  if (i === end) return short;
  if (i === 0 || data[i] !== SP) return TCP;
  if (i === 3 && data[0] === 0x50 && data[1] === 0x52 && data[2] === 0x49) return TCP; // PRI
  const targetStart = ++i;
  while (i < end && isTargetByte(data[i]!)) i++;
  if (i === end) return short;
  if (i === targetStart || data[i] !== SP) return TCP;
  i++;
  const version = matchLiteral(data, i, end, VERSION_PREFIX);
  if (version < 0) return TCP;
  if (version === 0) return short;
  i += VERSION_PREFIX.length;
  if (i === end) return short;
  if (data[i] !== 0x30 && data[i] !== 0x31) return TCP;
  if (++i === end) return short;
  if (data[i] !== CR) return TCP;
  if (++i === end) return short;
  return data[i] === LF ? HTTP1 : TCP;
}

// === TLS ClientHello ===

const CONTENT_TYPE_HANDSHAKE = 0x16;
const HANDSHAKE_HEADER = 4;
const HANDSHAKE_CLIENT_HELLO = 1;
const RANDOM_BYTES = 32;
const MAX_SESSION_ID_BYTES = 32;
const EXT_SERVER_NAME = 0;
const EXT_ALPN = 16;
const NAME_TYPE_HOST_NAME = 0;
const MAX_HOST_NAME_BYTES = 255;

/**
 * The handshake-layer bytes carried by the leading handshake records within `limit`:
 * the first record's fragment when it holds the whole message (no copy), else a concatenation.
 * Null when a record header is invalid or a non-handshake record interrupts the message.
 */
function handshakeBytes(data: Buffer, limit: number): Buffer | null {
  let offset = 0;
  let first: Buffer | undefined;
  let rest: Buffer[] | undefined;
  let collected = 0;
  // Invariant: `wanted` is the whole message's size once its header has been collected.
  let wanted = Infinity;
  while (offset < limit && collected < wanted) {
    if (data[offset] !== CONTENT_TYPE_HANDSHAKE) return null;
    if (offset + 1 < limit && data[offset + 1] !== 0x03) return null;
    if (offset + TLS_RECORD_HEADER > limit) break;
    const length = data.readUInt16BE(offset + 3);
    if (length === 0 || length > MAX_TLS_FRAGMENT) return null;
    const start = offset + TLS_RECORD_HEADER;
    const fragment = data.subarray(start, Math.min(start + length, limit));
    if (first === undefined) first = fragment;
    else (rest ??= []).push(fragment);
    collected += fragment.length;
    if (collected >= HANDSHAKE_HEADER && wanted === Infinity) {
      const header = rest === undefined ? first : Buffer.concat([first, ...rest], HANDSHAKE_HEADER);
      wanted = HANDSHAKE_HEADER + header.readUIntBE(1, 3);
    }
    offset = start + length;
  }
  if (first === undefined) return Buffer.alloc(0);
  return rest === undefined ? first : Buffer.concat([first, ...rest]);
}

const FITS = 0;
const SHORT = 1;
const OVERRUN = 2;
/** How a field of `n` bytes at `p` fits: within the bytes so far, past them, or past its container. */
function fit(p: number, n: number, have: number, container: number): number {
  if (p + n > container) return OVERRUN;
  return p + n > have ? SHORT : FITS;
}

/** Lowercases ASCII letters only (SNI is compared case-insensitively, RFC 6066 §3). */
function lowerAscii(s: string): string {
  return /[A-Z]/.test(s) ? s.replace(/[A-Z]+/g, (m) => m.toLowerCase()) : s;
}

/**
 * RFC 6066 §3 ServerNameList, as BoringSSL reads it: the first host_name entry, which must be
 * 1..255 bytes without NUL. Null when the extension is malformed.
 */
function parseServerName(ext: Buffer): string | undefined | null {
  if (ext.length < 2 || ext.readUInt16BE(0) !== ext.length - 2 || ext.length === 2) return null;
  let sni: string | undefined;
  for (let q = 2; q < ext.length; ) {
    if (q + 3 > ext.length) return null;
    const type = ext[q]!;
    const length = ext.readUInt16BE(q + 1);
    q += 3;
    if (q + length > ext.length) return null;
    if (type === NAME_TYPE_HOST_NAME && sni === undefined) {
      if (length === 0 || length > MAX_HOST_NAME_BYTES) return null;
      const name = ext.subarray(q, q + length);
      if (name.includes(0)) return null;
      sni = lowerAscii(name.toString('latin1'));
    }
    q += length;
  }
  return sni;
}

/** RFC 7301 §3.1 ProtocolNameList: a non-empty list of non-empty names. Null when malformed. */
function parseAlpn(ext: Buffer): string[] | null {
  if (ext.length < 2 || ext.readUInt16BE(0) !== ext.length - 2 || ext.length === 2) return null;
  const names: string[] = [];
  for (let q = 2; q < ext.length; ) {
    const length = ext[q]!;
    q += 1;
    if (length === 0 || q + length > ext.length) return null;
    names.push(ext.toString('latin1', q, q + length));
    q += length;
  }
  return names;
}

/**
 * Parses the ClientHello body (RFC 8446 §4.1.2) in `body`, of which `size` bytes are claimed.
 * When it runs out of bytes it answers 'tls' with what it found if `final`, else undefined.
 */
function parseClientHello(body: Buffer, size: number, final: boolean): Sniffed | undefined {
  const have = body.length;
  let sni: string | undefined;
  let alpn: readonly string[] = [];
  const partial = (): Sniffed | undefined => (final ? { kind: 'tls', sni, alpn } : undefined);
  let p = 0;
  // legacy_version, random, legacy_session_id length
  let f = fit(p, 2 + RANDOM_BYTES + 1, have, size);
  if (f !== FITS) return f === OVERRUN ? TCP : have > 0 && body[0] !== 0x03 ? TCP : partial();
  if (body[0] !== 0x03) return TCP;
  p += 2 + RANDOM_BYTES;
  const sessionId = body[p]!;
  if (sessionId > MAX_SESSION_ID_BYTES) return TCP;
  p += 1 + sessionId;
  // cipher_suites<2..2^16-2>
  if ((f = fit(p, 2, have, size)) !== FITS) return f === OVERRUN ? TCP : partial();
  const suites = body.readUInt16BE(p);
  if (suites < 2 || suites % 2 !== 0) return TCP;
  p += 2 + suites;
  // legacy_compression_methods<1..2^8-1>
  if ((f = fit(p, 1, have, size)) !== FITS) return f === OVERRUN ? TCP : partial();
  const methods = body[p]!;
  if (methods < 1) return TCP;
  p += 1 + methods;
  if (p > size) return TCP;
  // A hello without extensions (TLS 1.2 and below) ends here.
  if (p === size) return have >= size ? { kind: 'tls', sni, alpn } : partial();
  if ((f = fit(p, 2, have, size)) !== FITS) return f === OVERRUN ? TCP : partial();
  if (body.readUInt16BE(p) !== size - p - 2) return TCP;
  p += 2;
  let seenSni = false;
  let seenAlpn = false;
  while (p < size) {
    if ((f = fit(p, 4, have, size)) !== FITS) return f === OVERRUN ? TCP : partial();
    const type = body.readUInt16BE(p);
    const length = body.readUInt16BE(p + 2);
    p += 4;
    if (type !== EXT_SERVER_NAME && type !== EXT_ALPN) {
      if (p + length > size) return TCP;
      p += length;
      continue;
    }
    if ((f = fit(p, length, have, size)) !== FITS) return f === OVERRUN ? TCP : partial();
    const ext = body.subarray(p, p + length);
    if (type === EXT_SERVER_NAME) {
      const name = parseServerName(ext);
      if (name === null || seenSni) return TCP;
      seenSni = true;
      sni = name;
    } else {
      const names = parseAlpn(ext);
      if (names === null || seenAlpn) return TCP;
      seenAlpn = true;
      alpn = names;
    }
    p += length;
  }
  return have >= size ? { kind: 'tls', sni, alpn } : partial();
}

function sniffTls(data: Buffer): Sniffed | undefined {
  const final = data.length >= MAX_SNIFF_BYTES;
  const handshake = handshakeBytes(data, Math.min(data.length, MAX_SNIFF_BYTES));
  if (handshake === null) return TCP;
  if (handshake.length > 0 && handshake[0] !== HANDSHAKE_CLIENT_HELLO) return TCP;
  if (handshake.length < HANDSHAKE_HEADER) return final ? TCP : undefined;
  const size = handshake.readUIntBE(1, 3);
  const body = handshake.subarray(HANDSHAKE_HEADER, HANDSHAKE_HEADER + size);
  return parseClientHello(body, size, final);
}

// === impl sniff ===

/** Returns undefined while more bytes are needed to decide (see the contract above). */
export function sniff(data: Buffer): Sniffed | undefined {
  if (data.length === 0) return undefined;
  return data[0] === CONTENT_TYPE_HANDSHAKE ? sniffTls(data) : sniffPlaintext(data);
}
