/**
 * Which RequestAuthentications apply to this proxy's workload, merged into the model
 * (IST:pilot/pkg/model/authentication.go getConfigsForWorkload): a policy in the proxy's namespace
 * or in the root namespace applies without a selector or with one matching the workload's labels;
 * policies in other namespaces do not apply. Every applying policy's jwtRules are merged: the
 * proxy namespace first, then the root namespace; in one namespace the oldest (creationTimestamp,
 * then name) first.
 */
import { DEFAULT_JWKS_TIMEOUT_MS, type JwtRule, type MeshSettings, type RequestAuthentication } from '../../model/index.js';
import type { Diagnostic } from '../diagnostics.js';
import { labelsMatch } from './registry.js';
import { openIdConfigurationUri, type JwtRuleSpec } from './request-authentication.js';
import { creationTime, resourceDiagnostic, type IstioResource } from './resources.js';

export type RequestAuthenticationResource = Extract<IstioResource, { kind: 'RequestAuthentication' }>;

const created = (r: RequestAuthenticationResource): number => creationTime(r.metadata);

function rule(r: JwtRuleSpec, policy: string): JwtRule {
  const out: JwtRule = {
    policy,
    issuer: r.issuer!,
    audiences: r.audiences ?? [],
    // The schema guarantees one of them; inline wins when both are set (as istiod builds it).
    jwks:
      (r.jwks ?? '') !== ''
        ? { kind: 'inline', json: r.jwks! }
        : (r.jwksUri ?? '') !== ''
          ? { kind: 'remote', uri: r.jwksUri! }
          : { kind: 'discovery', documentUri: openIdConfigurationUri(r.issuer!) },
    timeoutMs: r.timeout ?? DEFAULT_JWKS_TIMEOUT_MS,
    fromHeaders: (r.fromHeaders ?? []).map((h) => ({ name: h.name!, prefix: h.prefix ?? '' })),
    fromParams: r.fromParams ?? [],
    fromCookies: r.fromCookies ?? [],
    forwardOriginalToken: r.forwardOriginalToken ?? false,
    outputClaimToHeaders: (r.outputClaimToHeaders ?? []).map((c) => ({ header: c.header!, claim: c.claim! })),
    spaceDelimitedClaims: r.spaceDelimitedClaims ?? [],
  };
  return (r.outputPayloadToHeader ?? '') !== '' ? { ...out, outputPayloadToHeader: r.outputPayloadToHeader! } : out;
}

/** The JWT rules in force for this proxy's workload. */
export function requestAuthenticationFor(
  all: readonly RequestAuthenticationResource[],
  mesh: MeshSettings,
  diagnostics: Diagnostic[] = [],
): RequestAuthentication {
  const ns = (p: RequestAuthenticationResource): string => p.metadata.namespace ?? mesh.defaultNamespace;
  const order = [mesh.defaultNamespace, ...(mesh.rootNamespace === mesh.defaultNamespace ? [] : [mesh.rootNamespace])];
  const rules: JwtRule[] = [];
  const seen = new Map<string, string>();
  for (const namespace of order) {
    const policies = all
      .filter((p) => ns(p) === namespace && labelsMatch(p.spec.selector?.matchLabels ?? {}, mesh.workloadLabels))
      .sort((a, b) => created(a) - created(b) || a.metadata.name.localeCompare(b.metadata.name));
    for (const p of policies) {
      const name = `${namespace}.${p.metadata.name}`;
      (p.spec.jwtRules ?? []).forEach((r, i) => {
        const first = seen.get(r.issuer!);
        if (first !== undefined) {
          diagnostics.push(
            resourceDiagnostic(p, ['spec', 'jwtRules', i, 'issuer'], `issuer ${JSON.stringify(r.issuer)} is also configured by ${first}; a token of this issuer is verified by the first of them that reads the place it was found`, 'warning'),
          );
        } else {
          seen.set(r.issuer!, name);
        }
        rules.push(rule(r, name));
      });
    }
  }
  return { rules };
}
