/** String matching, as Envoy's StringMatcher. */

/** Envoy StringMatcher. `regex` is RE2 and must match the whole input. */
export type StringMatch =
  | { readonly kind: 'exact'; readonly value: string; readonly ignoreCase?: boolean }
  | { readonly kind: 'prefix'; readonly value: string; readonly ignoreCase?: boolean }
  | { readonly kind: 'suffix'; readonly value: string; readonly ignoreCase?: boolean }
  | { readonly kind: 'contains'; readonly value: string; readonly ignoreCase?: boolean }
  | { readonly kind: 'regex'; readonly value: string };

/**
 * Envoy HeaderMatcher. Pseudo-headers `:method`, `:authority`, `:scheme` and `:path` are
 * matchable. `match` absent means presence. `invert` negates the result; with
 * `treatMissingAsEmpty` an absent header is matched as the empty string.
 */
export interface HeaderMatch {
  readonly name: string;
  readonly match?: StringMatch;
  readonly invert: boolean;
  readonly treatMissingAsEmpty: boolean;
}
