/**
 * The service registry a standalone proxy knows: one entry per ServiceEntry host, with its ports
 * and endpoints. It plays the part of Kubernetes Services plus ServiceEntries in istiod.
 */
import type { Diagnostic } from '../diagnostics.js';
import { canonicalCidr, canonicalIp } from './addresses.js';
import { toFqdn } from './hosts.js';
import { resourceDiagnostic, type IstioResource } from './resources.js';
import type { ServiceEntrySpec, WorkloadEntrySpec } from './service-entry.js';

export type ServiceEntryResource = Extract<IstioResource, { kind: 'ServiceEntry' }>;

export interface ServicePort {
  readonly number: number;
  readonly name: string | undefined;
  readonly protocol: string | undefined;
  readonly targetPort: number | undefined;
  /** HTTP, HTTP2, gRPC or unspecified (sniffed): served by HTTP route tables. */
  readonly http: boolean;
}

export interface Service {
  /** Lowercase FQDN (short names resolved in the entry's namespace). */
  readonly hostname: string;
  /** The host as written, for DNS resolution when the entry lists no endpoints. */
  readonly writtenHost: string;
  readonly namespace: string;
  readonly ports: readonly ServicePort[];
  readonly resolution: NonNullable<ServiceEntrySpec['resolution']>;
  readonly endpoints: readonly WorkloadEntrySpec[];
  /** VIPs declared in `addresses` (CIDR ranges excluded), canonical; also reachable as Host names. */
  readonly addresses: readonly string[];
  /** CIDR ranges declared in `addresses`, canonical: connections to any address in them are this service's. */
  readonly subnets: readonly string[];
  readonly resource: ServiceEntryResource;
}

/** Protocols served by HTTP route tables (Istio's IsHTTP). */
export const HTTP_PROTOCOLS: ReadonlySet<string> = new Set(['HTTP', 'HTTP2', 'GRPC', 'GRPC-WEB']);

export function buildRegistry(
  entries: readonly ServiceEntryResource[],
  defaultNamespace: string,
  diagnostics: Diagnostic[],
): Map<string, Service> {
  const registry = new Map<string, Service>();
  for (const se of entries) {
    const spec = se.spec;
    const namespace = se.metadata.namespace ?? defaultNamespace;
    const ports: ServicePort[] = (spec.ports ?? []).map((p) => ({
      number: p.number!,
      name: p.name,
      protocol: p.protocol,
      targetPort: p.targetPort,
      http: p.protocol === undefined || HTTP_PROTOCOLS.has(p.protocol),
    }));
    (spec.hosts ?? []).forEach((written, i) => {
      const hostname = toFqdn(written, namespace);
      const existing = registry.get(hostname);
      if (existing !== undefined) {
        diagnostics.push(
          resourceDiagnostic(se, ['spec', 'hosts', i], `host ${hostname} is already declared by ${existing.resource.label}; this one is ignored`, 'warning'),
        );
        return;
      }
      registry.set(hostname, {
        hostname,
        writtenHost: written,
        namespace,
        ports,
        resolution: spec.resolution ?? 'NONE',
        endpoints: spec.endpoints ?? [],
        addresses: (spec.addresses ?? []).filter((a) => !a.includes('/')).map((a) => canonicalIp(a) ?? a),
        subnets: (spec.addresses ?? []).filter((a) => a.includes('/')).map((a) => canonicalCidr(a) ?? a),
        resource: se,
      });
    });
  }
  return registry;
}

/** The port an endpoint serves `port` on: its named port, else targetPort, else the port itself. */
export function endpointPort(endpoint: WorkloadEntrySpec, port: ServicePort): number {
  const named = port.name === undefined ? undefined : endpoint.ports?.[port.name];
  return named ?? port.targetPort ?? port.number;
}

/** Istio label selection: every selector label present with the same value. */
export function labelsMatch(selector: Readonly<Record<string, string>>, labels: Readonly<Record<string, string>>): boolean {
  for (const [k, v] of Object.entries(selector)) if (labels[k] !== v) return false;
  return true;
}
