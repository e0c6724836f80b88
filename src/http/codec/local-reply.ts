/**
 * The response a proxy-generated reply becomes, whatever the codec. For a gRPC request
 * (content-type application/grpc…) it is a trailers-only gRPC response as Envoy sends it: HTTP
 * 200, `content-type: application/grpc`, `grpc-status` (the reply's own, or the HTTP status
 * mapped as Envoy maps it) and the body text as a percent-encoded `grpc-message`; gRPC clients
 * then see e.g. PERMISSION_DENIED for a 403 or UNAVAILABLE for a 503.
 */
import { httpDate } from '../../core/http-date.js';
import { HeaderMap } from '../headers.js';
import type { LocalReplyOptions } from '../stream.js';

/** gRPC status codes Envoy answers local replies with. */
export const GRPC_STATUS = { UNKNOWN: 2, PERMISSION_DENIED: 7, UNIMPLEMENTED: 12, INTERNAL: 13, UNAVAILABLE: 14, UNAUTHENTICATED: 16 } as const;

/** Envoy's Grpc::Utility::httpToGrpcStatus. */
export function grpcStatusForHttp(status: number): number {
  switch (status) {
    case 400:
      return GRPC_STATUS.INTERNAL;
    case 401:
      return GRPC_STATUS.UNAUTHENTICATED;
    case 403:
      return GRPC_STATUS.PERMISSION_DENIED;
    case 404:
      return GRPC_STATUS.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return GRPC_STATUS.UNAVAILABLE;
    default:
      return GRPC_STATUS.UNKNOWN;
  }
}

/** Whether a request is gRPC (Envoy's Grpc::Common: `application/grpc` or `application/grpc+…`). */
export function isGrpcRequest(headers: HeaderMap): boolean {
  const type = headers.get('content-type');
  if (type === undefined || !type.startsWith('application/grpc')) return false;
  return type.length === 16 || type[16] === '+';
}

/** Envoy's PercentEncoding::encode for grpc-message: bytes below space or from `~` up, and `%`. */
function percentEncode(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    out += byte < 0x20 || byte >= 0x7e || byte === 0x25 ? `%${byte.toString(16).toUpperCase().padStart(2, '0')}` : String.fromCharCode(byte);
  }
  return out;
}

export interface LocalReply {
  readonly status: number;
  readonly headers: HeaderMap;
  readonly body: Buffer;
}

/** The reply to send for `status` and `body` to a request with `requestHeaders`. */
export function buildLocalReply(requestHeaders: HeaderMap, status: number, body: string | Buffer, options: LocalReplyOptions, server: string): LocalReply {
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  const headers = new HeaderMap();
  if (isGrpcRequest(requestHeaders)) {
    headers.append('content-type', 'application/grpc');
    headers.append('grpc-status', String(options.grpcStatus ?? grpcStatusForHttp(status)));
    if (bytes.length > 0) headers.append('grpc-message', percentEncode(bytes.toString('utf8')));
    for (const [n, v] of options.headers ?? []) headers.append(n, v);
    headers.append('date', httpDate());
    headers.append('server', server);
    return { status: 200, headers, body: Buffer.alloc(0) };
  }
  if (bytes.length > 0) {
    headers.append('content-length', String(bytes.length));
    headers.append('content-type', options.contentType ?? 'text/plain');
  }
  for (const [n, v] of options.headers ?? []) headers.append(n, v);
  headers.append('date', httpDate());
  headers.append('server', server);
  return { status, headers, body: bytes };
}
