/**
 * Byte classes for strict HTTP/1.1 parsing (RFC 9110 §5.6.2, RFC 9112). Lookup tables keep the
 * per-byte checks on the hot path to one array read.
 */

export const CR = 0x0d;
export const LF = 0x0a;
export const SP = 0x20;
export const HTAB = 0x09;
export const COLON = 0x3a;

function table(accept: (b: number) => boolean): Uint8Array {
  const t = new Uint8Array(256);
  for (let b = 0; b < 256; b++) t[b] = accept(b) ? 1 : 0;
  return t;
}

const TCHAR_PUNCT = "!#$%&'*+-.^_`|~";

/** token characters: field names, methods. */
export const TCHAR = table(
  (b) =>
    (b >= 0x30 && b <= 0x39) ||
    (b >= 0x41 && b <= 0x5a) ||
    (b >= 0x61 && b <= 0x7a) ||
    TCHAR_PUNCT.includes(String.fromCharCode(b)),
);

/** field-value characters: HTAB, SP, VCHAR, obs-text. No CR, LF, NUL or other controls. */
export const FIELD_VALUE = table((b) => b === HTAB || (b >= 0x20 && b <= 0x7e) || b >= 0x80);

/** request-target characters: visible ASCII only. */
export const TARGET = table((b) => b >= 0x21 && b <= 0x7e);

/** Hex digit values, or -1. */
export const HEX = (() => {
  const t = new Int8Array(256).fill(-1);
  for (let b = 0; b < 256; b++) {
    if (b >= 0x30 && b <= 0x39) t[b] = b - 0x30;
    else if (b >= 0x41 && b <= 0x46) t[b] = b - 0x41 + 10;
    else if (b >= 0x61 && b <= 0x66) t[b] = b - 0x61 + 10;
  }
  return t;
})();

/** The sequence that ends a header section. */
export const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');
