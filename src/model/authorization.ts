/**
 * Istio AuthorizationPolicy as the model holds it: the policies that apply to this proxy's
 * workload, grouped by action, with rules normalised (CIDRs canonical, service accounts as
 * `ns/sa`, condition keys as written). CUSTOM never reaches the model (refused at load).
 */

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

export interface AuthzPolicy {
  /** `namespace.name`. */
  readonly name: string;
  /** Empty: the policy matches nothing (Istio: `rules` unset). */
  readonly rules: readonly AuthzRule[];
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
