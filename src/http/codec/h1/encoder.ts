/**
 * HTTP/1.1 serialisation: heads as one latin1 string (header values arrive latin1-decoded, so
 * bytes round-trip exactly), and chunked framing for bodies of unknown length.
 */
import { reasonPhrase } from '../../../core/http-status.js';
import type { HeaderMap } from '../../headers.js';

function appendFields(out: string, headers: HeaderMap): string {
  const { names, values } = headers;
  for (let i = 0; i < names.length; i++) out += `${names[i]}: ${values[i]}\r\n`;
  return out;
}

/** A request head; `extraLines` are header lines already serialized (`name: value\r\n`…). */
export function requestHead(method: string, path: string, headers: HeaderMap, extraLines = ''): string {
  return appendFields(`${method} ${path} HTTP/1.1\r\n`, headers) + extraLines + '\r\n';
}

export function responseHead(status: number, headers: HeaderMap, reason?: string): string {
  return appendFields(`HTTP/1.1 ${status} ${reason || reasonPhrase(status)}\r\n`, headers) + '\r\n';
}

export function chunkPrefix(length: number): string {
  return `${length.toString(16)}\r\n`;
}

export const CHUNK_SUFFIX = '\r\n';

/** The last chunk and trailer section that end a chunked body. */
export function lastChunk(trailers: HeaderMap | null): string {
  return trailers === null || trailers.size === 0 ? '0\r\n\r\n' : appendFields('0\r\n', trailers) + '\r\n';
}
