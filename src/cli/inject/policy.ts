/**
 * Whether a pod gets a sidecar: Istio's `injectRequired` (IST:pkg/kube/inject/inject.go) as
 * `istioctl kube-inject` applies it (injection policy "enabled", no namespace label needed),
 * plus the already-injected check that makes injection idempotent.
 */
import { ANNOTATION, INJECT_LABEL, type Annotations } from './annotations.js';

/** Kubernetes' own namespaces, never injected (Istio's IgnoredNamespaces). */
export const IGNORED_NAMESPACES: ReadonlySet<string> = new Set(['kube-system', 'kube-public', 'kube-node-lease', 'local-path-storage']);

export interface PodFacts {
  readonly annotations: Annotations;
  readonly labels: Readonly<Record<string, string>>;
  readonly namespace: string | undefined;
  readonly hostNetwork: boolean;
}

export type Decision =
  | { readonly inject: true }
  | { readonly inject: false; readonly reason: 'already injected' | 'hostNetwork' | 'ignored namespace' | 'opted out' };

export function injectionDecision(pod: PodFacts): Decision {
  if (pod.annotations[ANNOTATION.status] !== undefined) return { inject: false, reason: 'already injected' };
  // iptables rules in a host-network pod would rewrite the node's routing, not the pod's.
  if (pod.hostNetwork) return { inject: false, reason: 'hostNetwork' };
  if (pod.namespace !== undefined && IGNORED_NAMESPACES.has(pod.namespace)) return { inject: false, reason: 'ignored namespace' };
  const selector = pod.labels[INJECT_LABEL] ?? pod.annotations[ANNOTATION.inject] ?? '';
  // Istio: y/yes/true/on inject, empty means the policy default (inject), anything else opts out.
  switch (selector.toLowerCase()) {
    case '':
    case 'y':
    case 'yes':
    case 'true':
    case 'on':
      return { inject: true };
    default:
      return { inject: false, reason: 'opted out' };
  }
}
