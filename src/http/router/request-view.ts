/** The request as route matching sees it: the stream plus its path split at `?`. */
import type { RouteRequest } from '../../compile/request-view.js';
import type { HeaderMap } from '../headers.js';
import type { DownstreamStream } from '../stream.js';

export class RequestView implements RouteRequest {
  readonly method: string;
  readonly authority: string;
  readonly scheme: string;
  readonly headers: HeaderMap;
  readonly path: string;
  readonly pathOnly: string;
  readonly query: string;

  constructor(stream: DownstreamStream) {
    this.method = stream.method;
    this.authority = stream.authority;
    this.scheme = stream.scheme;
    this.headers = stream.headers;
    this.path = stream.path;
    const q = this.path.indexOf('?');
    this.pathOnly = q === -1 ? this.path : this.path.slice(0, q);
    this.query = q === -1 ? '' : this.path.slice(q + 1);
  }
}

/** Splits an authority into a lowercase host and an explicit port (undefined when absent). */
export function splitAuthority(authority: string): { host: string; port: number | undefined } {
  let host = authority;
  let port: number | undefined;
  const colon = authority.lastIndexOf(':');
  if (colon !== -1 && authority.indexOf(']', colon) === -1) {
    const p = Number(authority.slice(colon + 1));
    if (Number.isInteger(p) && p > 0 && p < 65536) {
      port = p;
      host = authority.slice(0, colon);
    }
  }
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  return { host: host.toLowerCase(), port };
}
