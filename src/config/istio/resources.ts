/**
 * Recognising resources in parsed documents: the Kubernetes envelope (apiVersion, kind,
 * metadata, spec), dispatch to each kind's schema, and located diagnostics for every problem.
 */
import { didYouMean } from '../../core/did-you-mean.js';
import type { Diagnostic } from '../diagnostics.js';
import { formatPath } from '../diagnostics.js';
import type { ParsedDocument } from '../documents.js';
import { Issues, type Infer, type Schema } from '../schema.js';
import { authorizationPolicySpecSchema, type AuthorizationPolicySpec } from './authorization-policy.js';
import { metadataSchema } from './common.js';
import { destinationRuleSpecSchema, type DestinationRuleSpec } from './destination-rule.js';
import { gatewaySpecSchema, type GatewaySpec } from './gateway.js';
import { localRateLimitSpecSchema, type LocalRateLimitSpec } from './local-rate-limit.js';
import { meshConfigSpecSchema, type MeshConfigSpec } from './mesh-config.js';
import { peerAuthenticationSpecSchema, type PeerAuthenticationSpec } from './peer-authentication.js';
import { requestAuthenticationSpecSchema, type RequestAuthenticationSpec } from './request-authentication.js';
import { serviceEntrySpecSchema, type ServiceEntrySpec } from './service-entry.js';
import { virtualServiceSpecSchema, type VirtualServiceSpec } from './virtual-service.js';

export type Metadata = Infer<typeof metadataSchema> & { name: string };

/**
 * A resource's creationTimestamp in ms, for Istio's "oldest wins" orders; a missing or
 * unparsable one counts as the oldest possible, as in Istio.
 */
export function creationTime(metadata: Metadata): number {
  const t = metadata.creationTimestamp === undefined ? Number.NEGATIVE_INFINITY : Date.parse(metadata.creationTimestamp);
  return Number.isNaN(t) ? Number.NEGATIVE_INFINITY : t;
}

interface ResourceBase {
  readonly metadata: Metadata;
  /** `Kind/name`, as diagnostics show it. */
  readonly label: string;
  readonly document: ParsedDocument;
}

export type IstioResource =
  | (ResourceBase & { readonly kind: 'VirtualService'; readonly spec: VirtualServiceSpec })
  | (ResourceBase & { readonly kind: 'DestinationRule'; readonly spec: DestinationRuleSpec })
  | (ResourceBase & { readonly kind: 'ServiceEntry'; readonly spec: ServiceEntrySpec })
  | (ResourceBase & { readonly kind: 'Gateway'; readonly spec: GatewaySpec })
  | (ResourceBase & { readonly kind: 'MeshConfig'; readonly spec: MeshConfigSpec })
  | (ResourceBase & { readonly kind: 'LocalRateLimit'; readonly spec: LocalRateLimitSpec })
  | (ResourceBase & { readonly kind: 'PeerAuthentication'; readonly spec: PeerAuthenticationSpec })
  | (ResourceBase & { readonly kind: 'AuthorizationPolicy'; readonly spec: AuthorizationPolicySpec })
  | (ResourceBase & { readonly kind: 'RequestAuthentication'; readonly spec: RequestAuthenticationSpec });

export type ResourceKind = IstioResource['kind'];

const NETWORKING_VERSIONS = ['networking.istio.io/v1alpha3', 'networking.istio.io/v1beta1', 'networking.istio.io/v1'];
const SKIFF_VERSIONS = ['skiff.dev/v1alpha1'];
const SECURITY_VERSIONS = ['security.istio.io/v1beta1', 'security.istio.io/v1'];

const KINDS: Readonly<Record<ResourceKind, { versions: readonly string[]; spec: Schema<object> }>> = {
  VirtualService: { versions: NETWORKING_VERSIONS, spec: virtualServiceSpecSchema },
  DestinationRule: { versions: NETWORKING_VERSIONS, spec: destinationRuleSpecSchema },
  ServiceEntry: { versions: NETWORKING_VERSIONS, spec: serviceEntrySpecSchema },
  Gateway: { versions: NETWORKING_VERSIONS, spec: gatewaySpecSchema },
  MeshConfig: { versions: SKIFF_VERSIONS, spec: meshConfigSpecSchema },
  LocalRateLimit: { versions: SKIFF_VERSIONS, spec: localRateLimitSpecSchema },
  PeerAuthentication: { versions: SECURITY_VERSIONS, spec: peerAuthenticationSpecSchema },
  AuthorizationPolicy: { versions: SECURITY_VERSIONS, spec: authorizationPolicySpecSchema },
  RequestAuthentication: { versions: SECURITY_VERSIONS, spec: requestAuthenticationSpecSchema },
};

/**
 * Istio kinds skiff knows but does not implement yet. Loading them is an error rather than a
 * silent no-op: ignoring a security policy would fail open.
 */
const NOT_YET_SUPPORTED: Readonly<Record<string, string>> = {
  Sidecar: 'Sidecar is not supported yet',
  EnvoyFilter: 'EnvoyFilter is not supported',
  WorkloadEntry: 'WorkloadEntry is not supported yet; list endpoints in the ServiceEntry instead',
  WorkloadGroup: 'WorkloadGroup is not supported yet',
  Telemetry: 'Telemetry is not supported yet',
  WasmPlugin: 'WasmPlugin is not supported',
};

const ENVELOPE_FIELDS = ['apiVersion', 'kind', 'metadata', 'spec', 'status'];

export interface RecognisedDocuments {
  readonly resources: IstioResource[];
  readonly diagnostics: Diagnostic[];
}

export function recogniseResources(documents: readonly ParsedDocument[]): RecognisedDocuments {
  const resources: IstioResource[] = [];
  const diagnostics: Diagnostic[] = [];
  for (const doc of documents) {
    const r = recognise(doc, diagnostics);
    if (r !== undefined) resources.push(r);
  }
  return { resources, diagnostics };
}

function recognise(doc: ParsedDocument, out: Diagnostic[]): IstioResource | undefined {
  const value = doc.value;
  const report = (label: string, issues: Issues): void => {
    for (const i of issues.list) {
      const pos = doc.locate(i.path, i.atKey);
      out.push({
        file: doc.file.name,
        line: pos.line,
        col: pos.col,
        resource: label,
        field: formatPath(i.path),
        message: i.message,
        severity: i.severity,
      });
    }
  };
  const docLabel = `document ${doc.index}`;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    const issues = new Issues();
    issues.error([], 'expected a Kubernetes-style resource (a map with apiVersion, kind, metadata and spec)');
    report(docLabel, issues);
    return undefined;
  }
  const v = value as Record<string, unknown>;
  const issues = new Issues();
  const kind = v['kind'];
  const name = (v['metadata'] as Record<string, unknown> | undefined)?.['name'];
  const label = typeof kind === 'string' && typeof name === 'string' ? `${kind}/${name}` : docLabel;

  if (typeof kind !== 'string') {
    issues.error(['kind'], kind === undefined ? 'required field is missing' : 'expected a string');
    report(label, issues);
    return undefined;
  }
  const known = KINDS[kind as ResourceKind];
  if (known === undefined) {
    const why = NOT_YET_SUPPORTED[kind];
    issues.error(['kind'], why ?? `unknown kind "${kind}"${didYouMean(kind, [...Object.keys(KINDS), ...Object.keys(NOT_YET_SUPPORTED)])}`);
    report(label, issues);
    return undefined;
  }
  const apiVersion = v['apiVersion'];
  if (typeof apiVersion !== 'string' || !known.versions.includes(apiVersion)) {
    issues.error(
      ['apiVersion'],
      apiVersion === undefined
        ? `required field is missing (expected ${known.versions.join(' or ')})`
        : `unsupported apiVersion ${JSON.stringify(apiVersion)} for ${kind}: expected ${known.versions.join(' or ')}`,
    );
  }
  for (const key of Object.keys(v)) {
    if (!ENVELOPE_FIELDS.includes(key)) issues.error([key], `unknown field "${key}"${didYouMean(key, ENVELOPE_FIELDS)}`, true);
  }
  const metadata = v['metadata'] === undefined ? undefined : metadataSchema.parse(v['metadata'], ['metadata'], issues);
  if (v['metadata'] === undefined) issues.error(['metadata'], 'required field is missing');
  // A missing spec is an empty one: its required fields are then reported like any others.
  const spec = known.spec.parse(v['spec'] ?? {}, ['spec'], issues);
  report(label, issues);
  if (issues.hasErrors || metadata === undefined || metadata.name === undefined || spec === undefined) return undefined;
  return { kind, metadata: metadata as Metadata, spec, label, document: doc } as IstioResource;
}

/**
 * Istio exportTo: whether a resource in `resourceNamespace` is visible to proxies in
 * `namespace`. Unset or `*` is every namespace, `.` the resource's own, `~` none.
 */
export function exportedTo(exportTo: readonly string[] | undefined, resourceNamespace: string, namespace: string): boolean {
  if (exportTo === undefined || exportTo.length === 0) return true;
  return exportTo.some((e) => e === '*' || e === namespace || (e === '.' && resourceNamespace === namespace));
}

/** A diagnostic anchored at a field of an already recognised resource. */
export function resourceDiagnostic(
  r: IstioResource,
  path: ReadonlyArray<string | number>,
  message: string,
  severity: 'error' | 'warning',
): Diagnostic {
  const pos = r.document.locate(path, false);
  return {
    file: r.document.file.name,
    line: pos.line,
    col: pos.col,
    resource: r.label,
    field: formatPath(path),
    message,
    severity,
  };
}
