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
