/**
 * Istio resources for tests, built as plain objects and written as YAML documents (JSON is
 * valid YAML, so a config file is the JSON of each resource joined by `---`).
 */

export type Resource = Record<string, unknown>;

/** One config file holding `resources` as a multi-document YAML stream. */
export function yamlDocs(...resources: Resource[]): string {
  return resources.map((r) => JSON.stringify(r, null, 1)).join('\n---\n') + '\n';
}

export function virtualService(name: string, spec: Resource): Resource {
  return { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name }, spec };
}

export function destinationRule(name: string, spec: Resource): Resource {
  return { apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name }, spec };
}

export function meshConfig(spec: Resource): Resource {
  return { apiVersion: 'skiff.dev/v1alpha1', kind: 'MeshConfig', metadata: { name: 'mesh' }, spec };
}

export interface PortSpec {
  readonly number: number;
  readonly name: string;
  readonly protocol?: string;
}

export interface EndpointSpec {
  readonly address?: string;
  /** Port name → endpoint port. */
  readonly ports: Record<string, number>;
  readonly labels?: Record<string, string>;
  readonly weight?: number;
}

/** A STATIC ServiceEntry with any number of ports and 127.0.0.1 endpoints. */
export function staticService(host: string, ports: readonly PortSpec[], endpoints: readonly EndpointSpec[]): Resource {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'ServiceEntry',
    metadata: { name: host.replace(/[^a-z0-9-]/g, '-').replace(/^-+|-+$/g, '') },
    spec: {
      hosts: [host],
      ports: ports.map((p) => ({ protocol: 'HTTP', ...p })),
      resolution: 'STATIC',
      endpoints: endpoints.map((e) => ({ address: '127.0.0.1', ...e })),
    },
  };
}

/** A STATIC ServiceEntry on one HTTP port named `http`, one endpoint per upstream port. */
export function httpService(host: string, port: number, endpoints: ReadonlyArray<number | { port: number; labels?: Record<string, string> }>): Resource {
  return staticService(
    host,
    [{ number: port, name: 'http' }],
    endpoints.map((e) => (typeof e === 'number' ? { ports: { http: e } } : { ports: { http: e.port }, ...(e.labels ? { labels: e.labels } : {}) })),
  );
}
