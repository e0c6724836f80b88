/**
 * What compiled matchers and mutations need from a request. The data path's HeaderMap and
 * stream satisfy these structurally; `compile/` never imports the data path.
 */

export interface HeaderLookup {
  get(name: string): string | undefined;
  /** All values of a repeated header joined with "," (Envoy's matching view). */
  getJoined(name: string): string | undefined;
}

export interface MutableHeaders extends HeaderLookup {
  set(name: string, value: string): void;
  addValue(name: string, value: string): void;
  remove(name: string): void;
}

/** The request line: what the pseudo-headers name. */
export interface RequestLine {
  readonly method: string;
  readonly authority: string;
  readonly scheme: string;
  /** Full `:path`, with query. */
  readonly path: string;
}

/** A pseudo-header's value from the request line (`host` is `:authority`); undefined for other names. */
export function pseudoHeaderValue(req: RequestLine, name: string): string | undefined {
  switch (name) {
    case ':method':
      return req.method;
    case ':authority':
    case 'host':
      return req.authority;
    case ':scheme':
      return req.scheme;
    case ':path':
      return req.path;
    default:
      return undefined;
  }
}

export interface RouteRequest {
  readonly method: string;
  readonly authority: string;
  readonly scheme: string;
  readonly headers: HeaderLookup;
  /** `:path` without the query string. */
  readonly pathOnly: string;
  /** Text after `?`, or ''. */
  readonly query: string;
  /** Full `:path`, with query. */
  readonly path: string;
}
