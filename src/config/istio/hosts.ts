/**
 * Host names as Istio treats them: short names resolve against the resource's namespace
 * (`reviews` in `default` is `reviews.default.svc.cluster.local`), wildcards match suffixes, and
 * a Kubernetes-style service is reachable by its short forms from clients in its namespace.
 */

export const CLUSTER_DOMAIN = 'cluster.local';

/** Istio's ResolveShortnameToFQDN, lowercased. */
export function toFqdn(host: string, namespace: string): string {
  const h = host.toLowerCase();
  if (h === '*' || h.includes('.')) return h;
  return `${h}.${namespace}.svc.${CLUSTER_DOMAIN}`;
}

/** Whether `pattern` (possibly `*` or `*.suffix`) covers `name` (possibly itself a wildcard). */
export function hostMatches(pattern: string, name: string): boolean {
  if (pattern === name || pattern === '*') return true;
  if (!pattern.startsWith('*')) return false;
  const suffix = pattern.slice(1);
  if (name.startsWith('*')) return name.slice(1).endsWith(suffix);
  return name.length > suffix.length && name.endsWith(suffix);
}

const KUBE_SERVICE = new RegExp(`^([^.]+)\\.([^.]+)\\.svc\\.${CLUSTER_DOMAIN.replace('.', '\\.')}$`);

/**
 * The names a client in `clientNamespace` may use for `fqdn` in a Host header, as Istio's
 * virtual host domains list them: the FQDN, `name.ns.svc`, `name.ns`, and `name` when the
 * client shares the namespace.
 */
export function nameForms(fqdn: string, clientNamespace: string): string[] {
  const m = KUBE_SERVICE.exec(fqdn);
  if (m === null) return [fqdn];
  const [, name, ns] = m;
  const forms = [fqdn, `${name}.${ns}.svc`, `${name}.${ns}`];
  if (ns === clientNamespace) forms.push(name!);
  return forms;
}
