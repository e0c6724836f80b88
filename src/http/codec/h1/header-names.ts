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

/** Candidates by length; each entry is [name, its bytes]. */
const BY_LENGTH: Array<Array<[string, Buffer]>> = [];
for (const name of COMMON) (BY_LENGTH[name.length] ??= []).push([name, Buffer.from(name, 'latin1')]);

/** The interned name for buf[start, end) if it is a common header (any case), else undefined. */
export function internHeaderName(buf: Buffer, start: number, end: number): string | undefined {
  const candidates = BY_LENGTH[end - start];
  if (candidates === undefined) return undefined;
  outer: for (const [name, bytes] of candidates) {
    for (let i = 0; i < bytes.length; i++) {
      // ASCII letters compare case-insensitively via the 0x20 bit; other token bytes exactly.
      const b = buf[start + i]!;
      const c = bytes[i]!;
      if (b !== c && (b | 0x20) !== c) continue outer;
    }
    return name;
  }
  return undefined;
}
