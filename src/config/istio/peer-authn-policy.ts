/**
 * The mTLS mode this proxy's inbound listener enforces, from the PeerAuthentication resources,
 * resolved as Istio does (policy_applier.go): a workload policy (selector matching this proxy's
 * labels, outside the root namespace) over the namespace policy (no selector, the proxy's
 * namespace) over the mesh policy (no selector, the root namespace). In one scope the oldest
 * (creationTimestamp, then file order) wins. UNSET inherits from the next scope; no policy at all
 * is PERMISSIVE. portLevelMtls applies only with a selector, and an UNSET port inherits.
 */
import { DEFAULT_PEER_AUTHENTICATION, type MeshSettings, type MtlsMode, type PeerAuthentication } from '../../model/index.js';
import type { Diagnostic } from '../diagnostics.js';
import type { Infer } from '../schema.js';
import type { modeSchema } from './peer-authentication.js';
import { labelsMatch } from './registry.js';
import { creationTime, resourceDiagnostic, type IstioResource } from './resources.js';

type PeerAuthenticationResource = Extract<IstioResource, { kind: 'PeerAuthentication' }>;
type Mode = Infer<typeof modeSchema>;

/** Oldest by creationTimestamp (none counts as the oldest possible, as in Istio); ties in the order read. */
function oldest(policies: readonly PeerAuthenticationResource[]): PeerAuthenticationResource | undefined {
  const created = (p: PeerAuthenticationResource): number => creationTime(p.metadata);
  let best: PeerAuthenticationResource | undefined;
  for (const p of policies) if (best === undefined || created(p) < created(best)) best = p;
  return best;
}

function set(mode: Mode | undefined): MtlsMode | undefined {
  return mode === undefined || mode === 'UNSET' ? undefined : mode;
}

export function resolvePeerAuthentication(all: readonly PeerAuthenticationResource[], mesh: MeshSettings, diagnostics: Diagnostic[]): PeerAuthentication {
  const ns = (p: PeerAuthenticationResource): string => p.metadata.namespace ?? mesh.defaultNamespace;
  const selects = (p: PeerAuthenticationResource): boolean => Object.keys(p.spec.selector?.matchLabels ?? {}).length > 0;
  for (const p of all) {
    if (selects(p) && ns(p) === mesh.rootNamespace) {
      diagnostics.push(resourceDiagnostic(p, ['spec', 'selector'], 'a PeerAuthentication with a selector in the root namespace is ignored (as in Istio)', 'warning'));
    }
  }
  const meshPolicy = oldest(all.filter((p) => !selects(p) && ns(p) === mesh.rootNamespace));
  const namespacePolicy = oldest(all.filter((p) => !selects(p) && ns(p) === mesh.defaultNamespace && ns(p) !== mesh.rootNamespace));
  const workloadPolicy = oldest(
    all.filter((p) => selects(p) && ns(p) === mesh.defaultNamespace && ns(p) !== mesh.rootNamespace && labelsMatch(p.spec.selector!.matchLabels!, mesh.workloadLabels)),
  );
  const mode =
    set(workloadPolicy?.spec.mtls?.mode) ?? set(namespacePolicy?.spec.mtls?.mode) ?? set(meshPolicy?.spec.mtls?.mode) ?? DEFAULT_PEER_AUTHENTICATION.mode;
  const portModes: Record<number, MtlsMode> = {};
  for (const [port, level] of Object.entries(workloadPolicy?.spec.portLevelMtls ?? {})) {
    portModes[Number(port)] = set(level.mode) ?? mode;
  }
  return { mode, portModes };
}
