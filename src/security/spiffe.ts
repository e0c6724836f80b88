/**
 * SPIFFE identities as Istio uses them (IST:pkg/spiffe/spiffe.go): a workload is
 * `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`, carried as the URI SAN of its
 * certificate. Authorization policies name the same identity without the scheme
 * (`<trust-domain>/ns/<namespace>/sa/<service-account>`), the "principal".
 *
 * Parsing is strict: exactly that path shape, the lowercase `spiffe://` scheme, and each part
 * within the SPIFFE character sets (trust domain `[a-z0-9._-]`, path segments `[A-Za-z0-9._-]`,
 * no `.`/`..` segments), so a query, fragment, port, percent-escape or extra segment never
 * parses. Pure: no I/O, nothing done on import.
 */

export const SPIFFE_SCHEME = 'spiffe://';

/** Istio's default trust domain (MeshConfig.trustDomain). */
export const DEFAULT_TRUST_DOMAIN = 'cluster.local';

export interface SpiffeIdentity {
  readonly trustDomain: string;
  readonly namespace: string;
  readonly serviceAccount: string;
}

const TRUST_DOMAIN = /^[a-z0-9._-]+$/;
const SEGMENT = /^[A-Za-z0-9._-]+$/;

/** Why `value` cannot be a trust domain, or undefined when it can. */
export function trustDomainError(value: string): string | undefined {
  if (value === '') return 'must not be empty';
  if (!TRUST_DOMAIN.test(value)) return `"${value}" may hold only lowercase letters, digits, ".", "-" and "_"`;
  return undefined;
}

/** Why `value` cannot be a namespace or service-account segment, or undefined when it can. */
export function segmentError(value: string): string | undefined {
  if (value === '') return 'must not be empty';
  if (value === '.' || value === '..') return `"${value}" is not a valid path segment`;
  if (!SEGMENT.test(value)) return `"${value}" may hold only letters, digits, ".", "-" and "_"`;
  return undefined;
}

/** `spiffe://<td>/ns/<ns>/sa/<sa>`; throws RangeError when a part is not valid. */
export function spiffeId(trustDomain: string, namespace: string, serviceAccount: string): string {
  const problem =
    describe('trust domain', trustDomainError(trustDomain)) ??
    describe('namespace', segmentError(namespace)) ??
    describe('service account', segmentError(serviceAccount));
  if (problem !== undefined) throw new RangeError(`invalid SPIFFE identity: ${problem}`);
  return `${SPIFFE_SCHEME}${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
}

/** The parts of an Istio workload SPIFFE id, or undefined when `uri` is not exactly one. */
export function parseSpiffeId(uri: string): SpiffeIdentity | undefined {
  if (!uri.startsWith(SPIFFE_SCHEME)) return undefined;
  const parts = uri.slice(SPIFFE_SCHEME.length).split('/');
  if (parts.length !== 5) return undefined;
  const [trustDomain, ns, namespace, sa, serviceAccount] = parts as [string, string, string, string, string];
  if (ns !== 'ns' || sa !== 'sa') return undefined;
  if (trustDomainError(trustDomain) !== undefined || segmentError(namespace) !== undefined || segmentError(serviceAccount) !== undefined) return undefined;
  return { trustDomain, namespace, serviceAccount };
}

/**
 * The authorization principal (`<td>/ns/<ns>/sa/<sa>`) of an identity; for a URI, undefined
 * when it is not an Istio workload SPIFFE id.
 */
export function principalOf(identity: SpiffeIdentity): string;
export function principalOf(uri: string): string | undefined;
export function principalOf(id: SpiffeIdentity | string): string | undefined {
  const identity = typeof id === 'string' ? parseSpiffeId(id) : id;
  if (identity === undefined) return undefined;
  return `${identity.trustDomain}/ns/${identity.namespace}/sa/${identity.serviceAccount}`;
}

function describe(what: string, error: string | undefined): string | undefined {
  return error === undefined ? undefined : `${what} ${error}`;
}
