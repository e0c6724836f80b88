/**
 * Interned lowercase names for common headers. The parser matches a raw name against this table
 * case-insensitively and reuses the constant string, so the usual headers cost no allocation
 * and no lowercasing.
 */

const COMMON = [
  'host', 'user-agent', 'accept', 'accept-encoding', 'accept-language', 'connection', 'content-length',
  'content-type', 'transfer-encoding', 'date', 'server', 'cookie', 'set-cookie', 'authorization',
  'cache-control', 'keep-alive', 'x-request-id', 'x-forwarded-for', 'x-forwarded-proto', 'expect', 'upgrade',
  'te', 'trailer', 'etag', 'last-modified', 'location', 'vary', 'origin', 'referer', 'pragma',
  'if-none-match', 'if-modified-since', 'content-encoding', 'x-envoy-attempt-count',
  'x-envoy-upstream-service-time', 'x-envoy-original-path', 'traceparent', 'tracestate', 'end-user',
  'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'access-control-allow-origin',
  'grpc-status', 'grpc-message', 'proxy-connection', 'x-forwarded-client-cert',
];

/** Candidates by length. */
const BY_LENGTH: string[][] = [];
for (const name of COMMON) (BY_LENGTH[name.length] ??= []).push(name);

/**
 * The interned name for text[start, end) (a header name as decoded from the wire, one char per
 * byte) if it is a common header in any case, else undefined.
 */
export function internHeaderName(text: string, start: number, end: number): string | undefined {
  const candidates = BY_LENGTH[end - start];
  if (candidates === undefined) return undefined;
  outer: for (const name of candidates) {
    for (let i = 0; i < name.length; i++) {
      // ASCII letters compare case-insensitively via the 0x20 bit; other token chars exactly.
      const b = text.charCodeAt(start + i);
      const c = name.charCodeAt(i);
      if (b !== c && (b | 0x20) !== c) continue outer;
    }
    return name;
  }
  return undefined;
}
