/**
 * Istio AuthorizationPolicy as the model holds it: the policies that apply to this proxy's
 * workload, grouped by action, with rules normalised (CIDRs canonical, service accounts as
 * `ns/sa`, condition keys as written). CUSTOM never reaches the model (refused at load).
 */
import type { HeaderMatch, StringMatch } from './string-match.js';

/** `values` ORed; the field matches when one value matches and no `notValues` does. */
export interface AuthzField {
  readonly values: readonly string[];
  readonly notValues: readonly string[];
}

/** Istio Source: every present field must match. */
export interface AuthzSource {
  /** Peer identities `td/ns/NS/sa/SA` (exact, `prefix*`, `*suffix`, `*`). */
  readonly principals?: AuthzField;
  /** JWT `iss/sub`. HTTP only. */
  readonly requestPrincipals?: AuthzField;
  readonly namespaces?: AuthzField;
  /** `ns/sa`, the namespace filled in from the policy's when omitted. */
  readonly serviceAccounts?: AuthzField;
  /** Canonical address or CIDR, matched against the connection's peer address. */
  readonly ipBlocks?: AuthzField;
  /** Canonical address or CIDR, matched against the XFF-derived client address. */
  readonly remoteIpBlocks?: AuthzField;
}

/** Istio Operation: every present field must match. */
export interface AuthzOperation {
  /** HTTP only; case-insensitive, compared with the whole Host header (a port included). */
  readonly hosts?: AuthzField;
  /** Destination ports, decimal strings. */
  readonly ports?: AuthzField;
  /** HTTP only. */
  readonly methods?: AuthzField;
  /** HTTP only; string forms or `{*}` / `{**}` templates. */
  readonly paths?: AuthzField;
}

/** A `when` condition: `key` is one skiff evaluates (validated at load). */
export interface AuthzCondition {
  readonly key: string;
  readonly values: readonly string[];
  readonly notValues: readonly string[];
}

/**
 * A rule matches when one `from` source (any when empty) and one `to` operation (any when empty)
 * and every `when` condition match.
 */
export interface AuthzRule {
  readonly from: readonly AuthzSource[];
  readonly to: readonly AuthzOperation[];
  readonly when: readonly AuthzCondition[];
}

/**
 * An Envoy RBAC matcher (config.rbac.v3 Permission or Principal), for policies that arrive as
 * Envoy RBAC filters over xDS. Evaluated as Envoy does; attributes a TCP connection lacks (HTTP
 * headers and path, request principal, claims) are absent there, so a leaf on them does not
 * match (a header matcher follows Envoy's rules for an absent header, so `invert` matches).
 */
export type RbacMatcher =
  | { readonly kind: 'any' }
  /** `and` of none matches; `or` of none does not (Envoy forbids both, so translators refuse them). */
  | { readonly kind: 'and' | 'or'; readonly of: readonly RbacMatcher[] }
  | { readonly kind: 'not'; readonly of: RbacMatcher }
  /** A request header, Envoy HeaderMatcher semantics (pseudo-headers `:method`, `:authority`, `:path`, `:scheme`). */
  | { readonly kind: 'header'; readonly header: HeaderMatch }
  /** The request path without the query (Envoy `url_path`). */
  | { readonly kind: 'path'; readonly match: StringMatch }
  /** The request path against an Istio path template: `{*}` one segment, `{**}` any remainder. */
  | { readonly kind: 'pathTemplate'; readonly template: string }
  /**
   * A CIDR (canonical `address/bits`) against the connection's peer (`source`), the original
   * client (`remote`) or the original destination address.
   */
  | { readonly kind: 'ip'; readonly of: 'source' | 'remote' | 'destination'; readonly cidr: string }
  /** The destination port in [start, end). */
  | { readonly kind: 'port'; readonly start: number; readonly end: number }
  /** The TLS SNI, `''` when none was sent (Envoy `requested_server_name`). */
  | { readonly kind: 'sni'; readonly match: StringMatch }
  /**
   * The peer certificate's principal name (URI SAN, else DNS SAN, else subject). Never matches
   * without a peer certificate; `match` absent: any peer certificate.
   */
  | { readonly kind: 'peer'; readonly match?: StringMatch }
  /** The JWT request principal `iss/sub`; never matches without a validated token. */
  | { readonly kind: 'requestPrincipal'; readonly match: StringMatch }
  /**
   * A claim of the validated JWT at `path`: a string claim that matches, or a list with a string
   * element that matches (Istio's normalised claims). Never matches without a validated token.
   */
  | { readonly kind: 'claim'; readonly path: readonly string[]; readonly match: StringMatch };

/** An Envoy RBAC Policy: it matches when one permission and one principal match. */
export interface RbacPolicy {
  readonly permissions: readonly RbacMatcher[];
  readonly principals: readonly RbacMatcher[];
}

export interface AuthzPolicy {
  /** `namespace.name` (Istio YAML), or the Envoy RBAC policy's name (xDS). */
  readonly name: string;
  /** Empty: the policy matches nothing (Istio: `rules` unset). */
  readonly rules: readonly AuthzRule[];
  /**
   * xDS only: the policy as Envoy RBAC gives it (`rules` is then empty). The policy matches when
   * one of `rules` matches or `rbac` matches. It is evaluated as it stands on HTTP requests and
   * TCP connections alike (no Istio HTTP-only rewriting: istiod did that when it built the filter).
   */
  readonly rbac?: RbacPolicy;
}

/**
 * The policies in force. Evaluation (Istio): any matching DENY → deny; else no ALLOW policy →
 * allow; else allow iff an ALLOW policy matches. AUDIT never changes the decision.
 */
export interface Authorization {
  readonly deny: readonly AuthzPolicy[];
  readonly allow: readonly AuthzPolicy[];
  readonly audit: readonly AuthzPolicy[];
}

export const NO_AUTHORIZATION: Authorization = { deny: [], allow: [], audit: [] };
